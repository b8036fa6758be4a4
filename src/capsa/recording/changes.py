"""What a step changed, read from its overlay's upper layer, and committing it into the project
(spec/recording.md §3.1).

The upper layer *is* the step's change set: a file or link in it was created or changed by the
step, a whiteout (a 0:0 character device, or an ``overlay.whiteout`` xattr) is a deletion, an
opaque directory replaced the project's. Committing moves each entry into the project with one
``rename`` (atomic per file; a new directory moves as a whole), under the project's commit lock,
after checking that nothing it replaces or deletes changed in the project while the step ran
(ctime at or after the step's start tick): concurrent steps never overwrite each other's files.
Every operation on the project goes through directory descriptors without following links.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .._internal.fs import open_dir, open_root

__all__ = ["ChangeSet", "Conflict", "commit", "scan", "start_tick"]

_XATTR_PREFIXES = ("user.overlay.", "trusted.overlay.")


@dataclass
class ChangeSet:
    """What the step did to the project, by path relative to it."""

    written: list[str] = field(default_factory=list)
    """Entries that are not directories (files, links, FIFOs) the step created or changed."""
    deleted: list[str] = field(default_factory=list)
    """Paths the step removed (files, or directories with everything below)."""
    new_dirs: list[str] = field(default_factory=list)
    """Directories the step created."""


class Conflict(Exception):
    """A path the commit would replace or delete changed in the project while the step ran."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def start_tick(marker: Path) -> int:
    """The ctime (ns) of the first timestamp tick from now: every later change in the project
    has a ctime at or after it, every change finished before has an earlier one."""

    def touch() -> int:
        with marker.open("a"):
            pass
        os.utime(marker)
        return marker.stat().st_ctime_ns

    first = touch()
    while (now := touch()) == first:
        pass
    return now


def _xattrs(name: str, dir_fd: int) -> dict[str, bytes]:
    path = f"/proc/self/fd/{dir_fd}/{name}"
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        if n.startswith(_XATTR_PREFIXES):
            with contextlib.suppress(OSError):
                out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def _kind(name: str, dir_fd: int) -> tuple[str, os.stat_result]:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return "whiteout", st
    xa = _xattrs(name, dir_fd) if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) else {}
    if stat.S_ISREG(st.st_mode) and any(k.endswith("overlay.whiteout") for k in xa):
        return "whiteout", st
    if stat.S_ISDIR(st.st_mode):
        opaque = any(k.endswith("overlay.opaque") and v in (b"y", b"x") for k, v in xa.items())
        return ("opaque" if opaque else "dir"), st
    return "entry", st


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _newer(name: str, dir_fd: int, t0: int) -> bool:
    """Whether ``name`` (or anything below it) changed at or after ``t0``."""
    st = _lstat(name, dir_fd)
    if st is None:
        return False
    if st.st_ctime_ns >= t0:
        return True
    if not stat.S_ISDIR(st.st_mode):
        return False
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return any(_newer(e, sub, t0) for e in os.listdir(sub))
    finally:
        os.close(sub)


@dataclass
class _Plan:
    t0: int
    changes: ChangeSet = field(default_factory=ChangeSet)
    ops: list[tuple[str, str]] = field(default_factory=list)  # (op, rel): remove | move | chmod
    modes: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def walk(self, rel: str, up_fd: int, proj_fd: int | None, opaque: bool) -> None:
        names = sorted(os.listdir(up_fd))
        if opaque and proj_fd is not None:
            # Everything the project holds here that the step did not keep was deleted by it.
            for n in sorted(set(os.listdir(proj_fd)) - set(names)):
                self._replace(f"{rel}{n}", n, proj_fd)
                self.changes.deleted.append(f"{rel}{n}")
        for n in names:
            r = f"{rel}{n}"
            kind, st = _kind(n, up_fd)
            there = _lstat(n, proj_fd) if proj_fd is not None else None
            if kind == "whiteout":
                if there is not None:
                    self._replace(r, n, proj_fd)
                    self.changes.deleted.append(r)
                continue
            if kind in ("dir", "opaque") and there is not None and stat.S_ISDIR(there.st_mode):
                if stat.S_IMODE(st.st_mode) != stat.S_IMODE(there.st_mode):
                    self.ops.append(("chmod", r))
                    self.modes[r] = stat.S_IMODE(st.st_mode)
                sub_up = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=up_fd)
                assert proj_fd is not None
                sub_proj = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=proj_fd)
                try:
                    self.walk(r + "/", sub_up, sub_proj, kind == "opaque")
                finally:
                    os.close(sub_up)
                    os.close(sub_proj)
                continue
            if there is not None:
                self._replace(r, n, proj_fd)
            self.ops.append(("move", r))
            if kind in ("dir", "opaque"):
                self.changes.new_dirs.append(r)
                self._collect(r + "/", n, up_fd)
            else:
                self.changes.written.append(r)

    def _collect(self, rel: str, name: str, up_fd: int) -> None:
        """A new directory: everything below it is written by the step."""
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=up_fd)
        try:
            for n in sorted(os.listdir(sub)):
                kind, _ = _kind(n, sub)
                if kind == "whiteout":
                    continue
                if kind in ("dir", "opaque"):
                    self.changes.new_dirs.append(rel + n)
                    self._collect(rel + n + "/", n, sub)
                else:
                    self.changes.written.append(rel + n)
        finally:
            os.close(sub)

    def _replace(self, rel: str, name: str, proj_fd: int | None) -> None:
        if proj_fd is None:
            return
        if _newer(name, proj_fd, self.t0):
            self.conflicts.append(rel)
        self.ops.append(("remove", rel))


def scan(upper: Path, project: Path, t0: int) -> _Plan:
    """Plan the commit of ``upper`` into ``project`` (nothing is changed yet)."""
    plan = _Plan(t0)
    up, proj = open_root(upper, follow=False), open_root(project)
    try:
        plan.walk("", up, proj, False)
    finally:
        os.close(up)
        os.close(proj)
    return plan


def _parent(root_fd: int, rel: str) -> tuple[int, str]:
    parts = rel.split("/")
    return open_dir(root_fd, parts[:-1]), parts[-1]


def _strip(name: str, dir_fd: int) -> None:
    """Remove overlay xattrs (and whiteouts) from a moved entry and everything below it, so the
    project never carries markers a later overlay would obey."""
    kind, st = _kind(name, dir_fd)
    if kind == "whiteout":
        os.unlink(name, dir_fd=dir_fd)
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        path = f"/proc/self/fd/{dir_fd}/{name}"
        for k in _xattrs(name, dir_fd):
            with contextlib.suppress(OSError):
                os.removexattr(path, k, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            for n in os.listdir(sub):
                _strip(n, sub)
        finally:
            os.close(sub)


def _remove(name: str, dir_fd: int, trash: Path) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        # One rename takes the whole directory out of the project; it is removed afterwards.
        trash.mkdir(exist_ok=True)
        os.rename(name, str(trash / str(len(os.listdir(trash)))), src_dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def commit(plan: _Plan, upper: Path, project: Path, trash: Path) -> None:
    """Apply a conflict-free plan: removals, then moves (each one rename), then modes."""
    if plan.conflicts:
        raise Conflict(plan.conflicts[0])
    up, proj = open_root(upper, follow=False), open_root(project)
    try:
        for op, rel in plan.ops:
            pfd, name = _parent(proj, rel)
            try:
                if op == "remove":
                    if _lstat(name, pfd) is not None:
                        _remove(name, pfd, trash)
                elif op == "chmod":
                    dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                    try:
                        os.fchmod(dfd, plan.modes[rel])
                    finally:
                        os.close(dfd)
                else:
                    ufd, uname = _parent(up, rel)
                    try:
                        _strip(uname, ufd)
                        os.rename(uname, name, src_dir_fd=ufd, dst_dir_fd=pfd)
                    finally:
                        os.close(ufd)
            finally:
                os.close(pfd)
    finally:
        os.close(up)
        os.close(proj)
