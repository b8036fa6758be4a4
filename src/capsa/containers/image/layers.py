"""Applying image layers in order (OCI image-spec "Applying Changesets") to one in-memory tree,
then writing it as one sorted tar stream with fixed times.

Nothing is extracted on the host: entries (modes, owners, links, device nodes, xattrs) stay tar
headers, and file contents are spooled to one temporary file. Whiteouts: ``.wh.NAME`` removes
NAME of the lower layers, ``.wh..wh..opq`` empties its directory of them; both apply before the
layer's own entries, so a layer may whiteout a path and recreate it.
"""

from __future__ import annotations

import copy
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from ...errors import FormatError

__all__ = ["Tree"]

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_KEEP_PAX = ("SCHILY.xattr.",)


@dataclass
class _Node:
    """One inode: a tar header (name excluded) and, for a regular file, its spooled bytes.
    Hard links are several paths sharing one node."""

    info: tarfile.TarInfo
    offset: int = 0
    paths: set[str] = field(default_factory=set)


def _norm(name: str) -> str | None:
    """A member name as a clean relative path ('' is the root), or None when it leaves it."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


class Tree:
    """The merged root file system of a sequence of layers."""

    def __init__(self) -> None:
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._end = 0
        self.nodes: dict[str, _Node] = {}
        self.children: dict[str, set[str]] = {"": set()}

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------------------

    def _remove(self, path: str) -> None:
        """Remove ``path`` and everything below it."""
        for child in list(self.children.pop(path, ())):
            self._remove(f"{path}/{child}" if path else child)
        node = self.nodes.pop(path, None)
        if node is not None:
            node.paths.discard(path)
        if path:
            parent, _, base = path.rpartition("/")
            self.children.get(parent, set()).discard(base)

    def _ensure_dir(self, path: str) -> None:
        """Make ``path`` and its parents directories (replacing anything else in the way)."""
        if path == "" or (path in self.nodes and self.nodes[path].info.isdir()):
            return
        parent = path.rpartition("/")[0]
        self._ensure_dir(parent)
        self._remove(path)
        info = tarfile.TarInfo(path)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._link(path, _Node(info))

    def _link(self, path: str, node: _Node) -> None:
        parent, _, base = path.rpartition("/")
        self.children.setdefault(parent, set()).add(base)
        if node.info.isdir():
            self.children.setdefault(path, set())
        node.paths.add(path)
        self.nodes[path] = node

    def _put(self, path: str, node: _Node) -> None:
        old = self.nodes.get(path)
        if old is not None and old.info.isdir() and node.info.isdir():
            self.nodes[path] = node  # a directory over a directory keeps its contents
            node.paths.add(path)
            return
        self._remove(path)
        self._ensure_dir(path.rpartition("/")[0])
        self._link(path, node)

    def _spool_data(self, src: IO[bytes], size: int) -> int:
        offset = self._end
        self._spool.seek(offset)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise FormatError("layer ends inside a file")
            self._spool.write(chunk)
            left -= len(chunk)
        self._end += size
        return offset

    def add_layer(self, stream: BinaryIO, where: str) -> None:
        """Apply one uncompressed tar layer read from ``stream``."""
        whiteouts: list[str] = []
        opaque: list[str] = []
        entries: list[tuple[str, _Node | str]] = []
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for m in tar:
                    path = _norm(m.name)
                    if path is None:
                        continue  # outside the root: never part of an image
                    base = path.rpartition("/")[2]
                    if base == OPAQUE:
                        opaque.append(path.rpartition("/")[0])
                        continue
                    if base.startswith(WHITEOUT):
                        parent = path.rpartition("/")[0]
                        name = base[len(WHITEOUT) :]
                        whiteouts.append(f"{parent}/{name}" if parent else name)
                        continue
                    if path == "":
                        continue  # the root's own header: capsa keeps root 0755 root:root
                    if m.islnk():
                        target = _norm(m.linkname)
                        if target is not None:
                            entries.append((path, target))
                        continue
                    info = copy.copy(m)
                    info.pax_headers = {
                        k: v for k, v in m.pax_headers.items() if k.startswith(_KEEP_PAX)
                    }
                    node = _Node(info)
                    if m.isreg():
                        f = tar.extractfile(m)
                        assert f is not None
                        node.offset = self._spool_data(f, m.size)
                    entries.append((path, node))
        except (tarfile.TarError, EOFError, ValueError, OSError) as e:
            if isinstance(e, OSError) and e.errno:
                raise  # the disk, not the layer (a bad gzip stream is an OSError without errno)
            raise FormatError(f"layer is not a readable tar archive: {e}", where=where) from e
        for d in opaque:
            for child in list(self.children.get(d, ())):
                self._remove(f"{d}/{child}" if d else child)
        for w in whiteouts:
            self._remove(w)
        for path, item in entries:
            if isinstance(item, str):
                linked = self.nodes.get(item)
                if linked is None or linked.info.isdir():
                    continue  # a link to nothing: tar would refuse it too
                self._put(path, linked)
            else:
                self._put(path, item)

    def add_directory(self, root: str) -> None:
        """Add a root file system directory as one layer (lstat: links and devices kept)."""
        inodes: dict[tuple[int, int], _Node] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = f"{dirpath}/{name}"
                path = _norm(os.path.relpath(full, root))
                if not path:
                    continue
                st = os.lstat(full)
                key = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in inodes:
                    self._put(path, inodes[key])
                    continue
                info = tarfile.TarInfo(path)
                info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                elif stat.S_ISLNK(st.st_mode):
                    info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)  # noqa: PTH115
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                elif stat.S_ISFIFO(st.st_mode):
                    info.type = tarfile.FIFOTYPE
                elif stat.S_ISREG(st.st_mode):
                    info.type, info.size = tarfile.REGTYPE, st.st_size
                else:
                    continue  # sockets: not part of an image
                node = _Node(info)
                if info.isreg():
                    with open(full, "rb") as f:  # noqa: PTH123
                        node.offset = self._spool_data(f, st.st_size)
                    inodes[key] = node
                self._put(path, node)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add (or replace) a regular file owned by root: capsa's own metadata files."""
        info = tarfile.TarInfo(path)
        info.mode, info.size = mode, len(data)
        node = _Node(info, self._spool_data(io.BytesIO(data), len(data)))
        self._put(path, node)

    def add_dir(self, path: str) -> None:
        """Make ``path`` a directory (0755, root) unless it already is one."""
        self._ensure_dir(path)

    def add_symlink(self, path: str, target: str) -> None:
        info = tarfile.TarInfo(path)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self._put(path, _Node(info))

    # -- reading -----------------------------------------------------------------------------

    def read(self, path: str, limit: int = 64 << 20) -> bytes | None:
        """Contents of regular file ``path`` (symbolic links followed within the tree)."""
        for _ in range(16):
            node = self.nodes.get(path)
            if node is None:
                return None
            if node.info.issym():
                target = node.info.linkname
                base = "" if target.startswith("/") else path.rpartition("/")[0]
                resolved = _norm(f"{base}/{target}")
                if resolved is None:
                    return None
                path = resolved
                continue
            if not node.info.isreg() or node.info.size > limit:
                return None
            self._spool.seek(node.offset)
            return self._spool.read(node.info.size)
        return None

    def listdir(self, path: str) -> list[str]:
        return sorted(self.children.get(path, ()))

    # -- writing -----------------------------------------------------------------------------

    def _walk(self, path: str = "") -> Iterator[str]:
        for name in sorted(self.children.get(path, ()), key=os.fsencode):
            child = f"{path}/{name}" if path else name
            yield child
            node = self.nodes.get(child)
            if node is not None and node.info.isdir():
                yield from self._walk(child)

    def write_tar(self, out: BinaryIO, mtime: int) -> None:
        """The whole tree as one PAX tar stream: depth-first in byte order of names, every time
        ``mtime``, owner names dropped (squashfs keeps numbers); a hard link's first path holds
        the data and the others link to it."""
        first: dict[int, str] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            root = tarfile.TarInfo("./")
            root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(root)
            for path in self._walk():
                node = self.nodes[path]
                info = copy.copy(node.info)
                info.name, info.mtime, info.uname, info.gname = f"./{path}", mtime, "", ""
                info.pax_headers = dict(node.info.pax_headers)
                if info.isreg() and len(node.paths) > 1:
                    if id(node) in first:
                        info.type, info.linkname, info.size = (
                            tarfile.LNKTYPE,
                            f"./{first[id(node)]}",
                            0,
                        )
                        tar.addfile(info)
                        continue
                    first[id(node)] = path
                if info.isreg():
                    self._spool.seek(node.offset)
                    tar.addfile(info, self._spool)
                else:
                    info.size = 0
                    tar.addfile(info)
