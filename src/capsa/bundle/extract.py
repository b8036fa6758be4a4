"""Extraction that cannot escape its target directory (spec/format.md §10.3).

Directories are walked with ``dir_fd`` and ``O_NOFOLLOW``, so neither ``..``, an absolute name
nor a symbolic link planted in the target can redirect a write. Each file is written to a
temporary name, its digest checked, then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .._internal.atomic import NO_ROOM
from .._internal.fs import open_dir, open_root, segments
from .._internal.progress import make_progress
from ..errors import ExistsError, IntegrityError, NotFoundError, UsageError
from ..format.digest import copy_hashed
from .reader import BundleReader, crc_mismatch

__all__ = ["extract_bundle"]

_CHUNK = 4 << 20
TMP_PREFIX = ".capsa-tmp."
"""Temporary files are ``.capsa-tmp.<pid>.<hex>``: short whatever the member's name (a name near
255 bytes still fits), and a leftover of a killed extraction is recognised by its dead pid."""
_TMP_RE = re.compile(r"^\.capsa-tmp\.([0-9]+)\.[0-9a-f]{12}$")


def _remove_stale_temporaries(dir_fd: int) -> None:
    """Remove what an extraction killed before it could clean up left in this directory."""
    with os.scandir(dir_fd) as it:
        names = [e.name for e in it if _TMP_RE.match(e.name)]
    for name in names:
        pid = int(_TMP_RE.match(name).group(1))  # type: ignore[union-attr]
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=dir_fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def extract_bundle(
    bundle: BundleReader,
    dest: str | os.PathLike[str],
    paths: list[str] | None = None,
    *,
    force: bool = False,
    progress: bool | None = None,
) -> list[Path]:
    files = bundle.manifest.files
    if paths:
        selected = []
        for p in paths:
            p = p.strip("/")
            hits = [q for q in files if q == p or q.startswith(p + "/")]
            if not hits:
                raise NotFoundError(
                    "no such member",
                    where=f"{bundle.path}: {p}",
                    hint="`capsa ls` lists the members",
                )
            selected.extend(hits)
        selected = sorted(set(selected))
    else:
        selected = sorted(files)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    # DIR itself may be a symbolic link the user chose (e.g. to scratch space); below it, none.
    root_fd = open_root(root)
    try:
        # First pass: refuse before writing anything, so a refusal leaves the target untouched.
        for p in selected:
            parts = segments(p)
            where = str(root / p)
            fd = open_dir(root_fd, parts[:-1], where=where)
            if fd < 0:
                continue
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            finally:
                os.close(fd)
            if not force:
                raise ExistsError("file exists", where=where, hint="use --force to replace it")
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise UsageError("refusing to replace a non-file", where=where)
        total = sum(bundle.manifest.blobs[files[p].digest].size for p in selected)
        bar = make_progress("extract", total, progress)
        written = []
        try:
            cleaned: set[tuple[str, ...]] = set()
            with ThreadPoolExecutor(1, thread_name_prefix="capsa-sha") as hasher:
                for p in selected:
                    written.append(
                        _extract_one(bundle, root_fd, root, p, bar, force, hasher, cleaned)
                    )
        finally:
            bar.close()
        return written
    finally:
        os.close(root_fd)


def _extract_one(
    bundle: BundleReader,
    root_fd: int,
    root: Path,
    path: str,
    bar: object,
    force: bool,
    hasher: ThreadPoolExecutor,
    cleaned: set[tuple[str, ...]],
) -> Path:
    entry = bundle.manifest.files[path]
    parts = segments(path)
    where = str(root / path)
    fd = open_dir(root_fd, parts[:-1], create=True, where=where)
    if tuple(parts[:-1]) not in cleaned:
        cleaned.add(tuple(parts[:-1]))
        _remove_stale_temporaries(fd)
    tmp = f"{TMP_PREFIX}{os.getpid()}.{secrets.token_hex(6)}"
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        try:
            with bundle.open_member(path) as src, os.fdopen(out, "wb", closefd=False) as dst:
                found = copy_hashed(src, dst, hasher, bar)
                crc_ok = src.crc_matches()
            if found != entry.digest:
                raise IntegrityError(
                    "digest mismatch",
                    where=f"{bundle.path}: {path}",
                    expected=entry.digest,
                    found=found,
                )
            if crc_ok is False:
                raise crc_mismatch(f"{bundle.path}: {path}")
            os.fchmod(out, 0o755 if entry.mode == "0755" else 0o644)
        finally:
            os.close(out)
        if force:
            os.replace(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        else:  # a link fails if the name appeared since the first pass; never overwrite
            try:
                os.link(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                raise ExistsError(
                    "file exists", where=where, hint="use --force to replace it"
                ) from None
            os.unlink(tmp, dir_fd=fd)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        if isinstance(e, OSError) and e.errno in NO_ROOM and e.filename is None:
            e.filename = where  # a failed write() names no file: say which one
        raise
    finally:
        os.close(fd)
    return root / path
