"""File system access confined to a directory (spec/format.md §2.1).

A path that comes from a manifest, a journal or a step is opened one segment at a time relative to
its parent directory's file descriptor, with ``O_NOFOLLOW``: neither ``..``, an absolute name nor a
symbolic link planted by a step (or by anyone who can write the directory) can redirect a read or
a write outside the directory the caller opened. Only regular files are read; a FIFO or device
does not block or leak (opened non-blocking, then checked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError, UsageError

__all__ = [
    "DIR_FLAGS",
    "ConfinedPath",
    "UnsafePath",
    "create_file",
    "open_dir",
    "open_input",
    "open_parent",
    "open_regular",
    "open_root",
    "segments",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class UnsafePath(UsageError):
    """A path that is not a plain relative path to a regular file reached without symlinks."""


def segments(path: str, *, where: str | None = None) -> list[str]:
    """The segments of a relative ``/``-separated path; UnsafePath for anything else.

    The manifest models enforce the same rule; it is checked again here because this is the last
    line before a path touches the file system.
    """
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise FormatError(
            "unsafe path (absolute, empty, '.' or '..' segment) in a manifest", where=where or path
        )
    return parts


def open_root(path: str | os.PathLike[str], *, follow: bool = True) -> int:
    """fd of the directory everything else is confined to. The root itself may be a symbolic
    link the user chose (``follow``); nothing below it may."""
    return os.open(path, DIR_FLAGS if not follow else DIR_FLAGS & ~os.O_NOFOLLOW)


def _refuse(name: str, where: str, e: OSError) -> UnsafePath:
    return UnsafePath(
        f"refusing to go through {name!r}: a symbolic link or not a directory",
        where=where,
        hint=f"remove or rename {name!r}",
    )


def open_dir(root_fd: int, parts: list[str], *, create: bool = False, where: str = "") -> int:
    """fd of the directory ``parts`` below ``root_fd``; -1 if a segment does not exist (and
    ``create`` is false). Symbolic links and non-directories on the way are refused."""
    for name in parts:  # one segment each, never a path
        if "/" in name:
            raise FormatError("unsafe path segment (contains '/')", where=where or name)
        segments(name, where=where or name)
    fd = os.dup(root_fd)
    try:
        for name in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return -1
            except (NotADirectoryError, OSError) as e:
                if isinstance(e, PermissionError):
                    raise
                raise _refuse(name, where or "/".join(parts), e) from e
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_parent(root_fd: int, path: str, *, create: bool = False, where: str = "") -> int:
    """fd of the directory that holds the last segment of ``path`` (see :func:`open_dir`)."""
    parts = segments(path, where=where or path)
    return open_dir(root_fd, parts[:-1], create=create, where=where or path)


def open_regular(root_fd: int, path: str, *, where: str = "") -> int:
    """A read-only fd of the regular file ``path`` below ``root_fd``.

    FileNotFoundError if it does not exist; UnsafePath if it or a directory above it is a
    symbolic link, or it is not a regular file.
    """
    where = where or path
    parent = open_parent(root_fd, path, where=where)
    if parent < 0:
        raise FileNotFoundError(2, "No such file or directory", where)
    name = path.rsplit("/", 1)[-1]
    try:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno == 40:  # ELOOP: the last segment is a symbolic link
                raise UnsafePath(
                    "is a symbolic link; it is not followed (capsa records regular files only)",
                    where=where,
                ) from e
            raise
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath("not a regular file", where=where)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def create_file(
    root_fd: int, path: str, *, mode: int = 0o644, where: str = ""
) -> Iterator[tuple[int, int, str]]:
    """Create ``path`` below ``root_fd`` (directories as needed, none followed), exclusively.

    Yields (parent fd, file fd, name); both fds are closed afterwards. An existing name — file or
    symbolic link — is refused with FileExistsError.
    """
    parent = open_parent(root_fd, path, create=True, where=where or path)
    name = path.rsplit("/", 1)[-1]
    try:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
            dir_fd=parent,
        )
        try:
            yield parent, fd, name
        finally:
            os.close(fd)
    finally:
        os.close(parent)


@dataclass(frozen=True)
class ConfinedPath:
    """A file named by a path relative to ``root`` that must be reached without following any
    symbolic link below ``root`` (a step's input or output, packed from the journal)."""

    root: Path
    rel: str

    def open_fd(self) -> int:
        """A read-only fd of the regular file (see :func:`open_regular`)."""
        root_fd = open_root(self.root)
        try:
            return open_regular(root_fd, self.rel, where=str(self))
        finally:
            os.close(root_fd)

    def __str__(self) -> str:
        return str(self.root / self.rel)


def open_input(path: str | os.PathLike[str] | ConfinedPath) -> int:
    """A read-only fd of a file to pack: a ConfinedPath strictly, a path the user named as given
    (a symbolic link the user names is the user's choice). Only regular files are read."""
    if isinstance(path, ConfinedPath):
        return path.open_fd()
    fd = os.open(path, _READ_FLAGS & ~os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath("not a regular file", where=os.fspath(path))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd
