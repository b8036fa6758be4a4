"""Extracted image root file systems, cached by image digest (spec: README "Runtimes").

The SIF's primary squashfs partition is unpacked with ``unsquashfs -o OFFSET`` into a temporary
directory beside the cache entry, a completion marker is written, and the directory is renamed
into place: a cache entry either exists complete or not at all, and an interrupted extraction
is cleaned up on the next use.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..._internal.lock import locked
from ...errors import FormatError, RuntimeError_
from ...format.digest import parse_digest
from ..sif import Descriptor, SifImage, arch_of_machine

__all__ = ["MARKER", "CacheEntry", "ImageCache", "cache_root"]

MARKER = ".capsa-complete"
USED = ".capsa-used"
"""Its modification time is an entry's last use (``capsa image cache ls|prune``)."""
MOUNT_POINTS = ("work", "home", "tmp", "proc", "dev")


def cache_root() -> Path:
    env = os.environ.get("CAPSA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capsa"


def check_arch(image_arch: str, where: str) -> None:
    here = arch_of_machine(platform.machine())
    if image_arch not in ("unknown", here):
        raise RuntimeError_(
            f"image is built for {image_arch}, this machine is {here}",
            where=where,
            hint="run it on a matching machine (or under qemu-user binfmt)",
        )


@dataclass(frozen=True)
class CacheEntry:
    """One unpacked image: its digest ('' for leftovers of an interrupted unpacking), the
    directory, the bytes it occupies on disk and when it was last used (Unix seconds)."""

    digest: str
    path: Path
    size: int
    last_used: float
    complete: bool


def _disk_usage(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(f"{root}/{name}").st_blocks * 512
    return total


class ImageCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "images"

    def entries(self) -> list[CacheEntry]:
        """Every unpacked image (and leftover), most recently used first."""
        out: list[CacheEntry] = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.iterdir()):
            marker = p / MARKER
            try:
                digest = str(json.loads(marker.read_text())["digest"])
                complete = True
                used = max(marker.stat().st_mtime, _mtime(p / USED))
            except (OSError, ValueError, KeyError):
                digest, complete = "", False
                used = p.lstat().st_mtime
            out.append(CacheEntry(digest, p, _disk_usage(p), used, complete))
        return sorted(out, key=lambda e: -e.last_used)

    def prune(self, older_than: float | None = None) -> list[CacheEntry]:
        """Remove the entries not used for ``older_than`` seconds (all when None), each under
        its image's lock so a run that is unpacking or starting it is not pulled from under."""
        cutoff = time.time() - (older_than or 0)
        removed = []
        locks = self.root.parent / "locks"
        for e in self.entries():
            if older_than is not None and e.last_used > cutoff:
                continue
            name = e.path.name.lstrip(".").split(".")[0]
            if len(name) == 64:  # an entry, or an unpacking of one in progress
                locks.mkdir(parents=True, exist_ok=True)
                with locked(locks / f"{name}.lock"):
                    remove_tree(e.path)
            else:
                remove_tree(e.path)
            removed.append(e)
        return removed

    def rootfs(
        self, image: SifImage, digest: str, *, extent: tuple[Path, int] | None = None
    ) -> Path:
        """Root file system of ``image``, unpacked once. ``extent`` is (file, offset) where the
        SIF's bytes lie locally; without one (a remote image) the squashfs partition is copied
        into the cache first, since unsquashfs needs a file."""
        hexd = parse_digest(digest)
        final = self.root / hexd
        if _complete(final, digest):
            _touch(final / USED)
            return final / "rootfs"
        prim = image.primary_partition()
        check_arch(prim.partition()["arch"], image.where)
        unsquashfs = shutil.which("unsquashfs")
        if unsquashfs is None:
            raise RuntimeError_(
                "unsquashfs is not installed",
                where=image.where,
                hint="Debian: apt-get install squashfs-tools",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        # Concurrent steps unpack an image once: one unpacks, the others wait for it.
        locks = self.root.parent / "locks"
        locks.mkdir(exist_ok=True)
        with locked(locks / f"{hexd}.lock"):
            # Another process may have finished unpacking this image while we waited.
            if _complete(final, digest):
                return final / "rootfs"
            return self._unpack(image, prim, unsquashfs, hexd, digest, extent)

    def _unpack(
        self,
        image: SifImage,
        prim: Descriptor,
        unsquashfs: str,
        hexd: str,
        digest: str,
        extent: tuple[Path, int] | None,
    ) -> Path:
        final = self.root / hexd
        # Leftovers of an interrupted extraction of this image, or a damaged entry (no other
        # process unpacks this image now: we hold its lock).
        for stale in self.root.glob(f".{hexd}.*"):
            remove_tree(stale)
        if final.exists():
            remove_tree(final)
        tmp = self.root / f".{hexd}.{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            if extent is None:
                source, offset = tmp / "partition.squashfs", 0
                _copy_partition(image, prim, source)
            else:
                source, offset = extent[0], extent[1] + prim.offset
            # 32 MB data and fragment queues (default 256 each) bound unsquashfs's memory.
            cmd = [
                unsquashfs,
                "-n",
                "-q",
                "-da",
                "32",
                "-fr",
                "32",
                "-d",
                str(tmp / "rootfs"),
                "-o",
                str(offset),
            ]
            root = os.geteuid() == 0
            if not root:
                cmd.append("-no-xattrs")  # an unprivileged user cannot restore them
            cmd.append(str(source))
            r = subprocess.run(cmd, capture_output=True, text=True)
            if extent is None:
                source.unlink()
            # Exit 2 = non-fatal errors (device nodes, ownership) that only root could fix.
            if r.returncode != 0 and not (r.returncode == 2 and not root):
                tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
                raise FormatError(
                    f"cannot unpack the image's squashfs partition: {tail[0]}", where=image.where
                )
            rootfs = tmp / "rootfs"
            if not (rootfs / "bin").exists() and not (rootfs / "usr").exists():
                raise FormatError(
                    "image root file system has neither /bin nor /usr", where=image.where
                )
            for d in MOUNT_POINTS:  # read-only root: mount points must exist beforehand
                p = rootfs / d
                if not p.exists() and not p.is_symlink():
                    p.mkdir(mode=0o755)
            (tmp / MARKER).write_text(json.dumps({"digest": digest, "offset": prim.offset}))
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished the same image first
                if not (final / MARKER).is_file():
                    raise
                remove_tree(tmp)
        except BaseException:
            remove_tree(tmp)
            raise
        return final / "rootfs"


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _complete(entry: Path, digest: str) -> bool:
    """Whether a cache entry holds a completely unpacked image of ``digest``."""
    try:
        return bool(json.loads((entry / MARKER).read_text())["digest"] == digest)
    except (ValueError, KeyError, OSError):
        return False


def _copy_partition(image: SifImage, prim: Descriptor, dest: Path) -> None:
    with dest.open("wb") as out:
        done = 0
        while done < prim.size:
            n = min(8 << 20, prim.size - done)
            out.write(image.read_range(prim.offset + done, n))
            done += n


def remove_tree(path: Path) -> None:
    """Remove an unpacked image or work directory, whose read-only directories rmtree alone
    cannot empty as an unprivileged user."""
    if not path.exists():
        return
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            p = Path(root) / d
            if not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)
