"""Write-to-temporary-then-rename, so a destination is either untouched or complete."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import ExistsError, NotFoundError

__all__ = ["NO_ROOM", "atomic_output", "check_destination"]

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
"""OS errors about the destination's file system, not the data being written."""


def check_destination(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """The one check before writing a file: ``path`` must not exist (unless ``force``), must not
    be a directory, and its directory must exist. Raises ExistsError / NotFoundError."""
    dest = Path(path)
    if os.path.lexists(dest):
        if dest.is_dir() and not dest.is_symlink():
            raise ExistsError("destination is a directory", where=str(dest), hint="name a file")
        if not force:
            raise ExistsError(
                "destination exists", where=str(dest), hint="use --force to replace it"
            )
    if not dest.parent.is_dir():
        raise NotFoundError("directory does not exist", where=str(dest.parent))
    return dest


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    mode: int = 0o644,
    exact_mode: bool = False,
) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; on success rename it to ``path``.

    Without ``force`` an existing ``path`` is never replaced, not even one that appears while
    we write (the final step is a hard link, which fails if the name exists). The file is
    created with mode 0600 and gets ``mode`` (less the umask, unless ``exact_mode``: a file
    rewritten in place keeps its own) only once complete.
    """
    dest = check_destination(path, force=force)
    parent = dest.parent
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode if exact_mode else mode & ~_umask())
        if force:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise ExistsError(
                    "destination appeared while writing",
                    where=str(dest),
                    hint="use --force to replace it",
                ) from None
            os.unlink(tmp)
    except BaseException as e:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in NO_ROOM:
            # A failed write() names no file, mkstemp() its temporary name: name the output.
            e.filename = str(dest)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
