"""Opening HDF5 files (paths, file objects, open h5py files) and walking their tree in the
canonical order (spec/format.md §7.5 "Walk"). h5py is imported on first use."""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError, NotFoundError

EXIT_DIFFERENT = 1
"""`capsa diff` exit code when the files differ (0: identical or equivalent)."""
MAGIC = b"capsa-hdf5-content/1"
"""First frame of the digest stream; changes if the stream's definition ever changes."""

KINDS = ("missing", "extra", "kind", "dtype", "shape", "attribute", "data", "link")
_OBJECTS = ("group", "dataset", "datatype")
_SUMMARY_INDICES = 5
_U64 = struct.Struct("<Q")
Array = np.ndarray[Any, Any]


def _h5py() -> Any:
    """h5py, imported on first use (``capsa --help`` must not load it)."""
    import h5py  # type: ignore[import-untyped]

    return h5py


def _label(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "filename", None) or getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(source).__name__}>"


@contextlib.contextmanager
def _open_h5(source: Any, label: str | None = None) -> Iterator[tuple[Any, str]]:
    h5py = _h5py()

    where = label or _label(source)
    if isinstance(source, h5py.Group):  # an open file: used as is, not closed
        yield source.file, where
        return
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.lexists(path):
            raise NotFoundError("no such file", where=where)
        if Path(path).is_dir():
            raise FormatError("not an HDF5 file (a directory)", where=where)
        with Path(path).open("rb"):  # permission problems are I/O errors, not format errors
            pass
        target: Any = path
    else:
        source.seek(0)
        target = source
    try:
        f = h5py.File(target, "r", locking=False)
    except OSError as e:
        if e.errno is not None and not isinstance(target, str):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "signature not found" in msg:
            raise FormatError("not an HDF5 file (no HDF5 signature)", where=where) from None
        raise FormatError(f"not a readable HDF5 file ({msg})", where=where) from None
    try:
        with f:
            yield f, where
    except (OSError, RuntimeError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FormatError(f"cannot read HDF5 content ({msg})", where=where) from e


@dataclass
class _Node:
    path: str
    kind: str  # group | dataset | datatype | softlink | extlink | hardlink | udlink
    target: str = ""  # link target; for hardlink the first path of the object
    file: str = ""  # extlink file name


def _name_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _path_key(path: str) -> tuple[bytes, ...]:
    return tuple(_name_key(p) for p in path.split("/") if p)


def _walk(f: Any) -> tuple[list[_Node], dict[int, str]]:
    """Depth-first, children by the UTF-8 bytes of their link names; the first path that reaches
    an object is its canonical path, later hard links to it are ``hardlink`` nodes."""
    h5py = _h5py()
    h5l, h5o, h5i = h5py.h5l, h5py.h5o, h5py.h5i

    nodes = [_Node("/", "group")]
    seen = {_addr_of(f.id): "/"}
    stack: list[tuple[Any, bytes, str]] = _children(f.id, "")
    while stack:
        gid, name, path = stack.pop()
        info = gid.links.get_info(name)
        if info.type == h5l.TYPE_SOFT:
            nodes.append(_Node(path, "softlink", target=_text(gid.links.get_val(name))))
            continue
        if info.type == h5l.TYPE_EXTERNAL:
            filename, target = gid.links.get_val(name)
            nodes.append(_Node(path, "extlink", target=_text(target), file=_text(filename)))
            continue
        if info.type != h5l.TYPE_HARD:
            nodes.append(_Node(path, "udlink", target=str(info.type)))
            continue
        oid = h5o.open(gid, name)
        addr = info.u if isinstance(info.u, int) and info.u > 0 else _addr_of(oid)
        if addr in seen:
            nodes.append(_Node(path, "hardlink", target=seen[addr]))
            continue
        seen[addr] = path
        kind = h5i.get_type(oid)
        if kind == h5i.GROUP:
            nodes.append(_Node(path, "group"))
            stack.extend(_children(oid, path))
        elif kind == h5i.DATASET:
            nodes.append(_Node(path, "dataset"))
        else:
            nodes.append(_Node(path, "datatype"))
    return nodes, seen


def _children(gid: Any, path: str) -> list[tuple[Any, bytes, str]]:
    """(group, link name, path) of a group's links in reverse order (popped from a stack)."""
    names: list[bytes] = []
    gid.links.iterate(names.append)
    names.sort(reverse=True)
    return [(gid, n, f"{path}/{_text(n)}") for n in names]


def _text(b: bytes | str) -> str:
    return b if isinstance(b, str) else b.decode("utf-8", "surrogateescape")


def _open_object(f: Any, node: _Node) -> tuple[Any, Any]:
    """(low-level id, h5py.Dataset or None) of a group, dataset or datatype node."""
    h5py = _h5py()
    oid = h5py.h5o.open(f.id, node.path.encode("utf-8", "surrogateescape"))
    return oid, (h5py.Dataset(oid) if node.kind == "dataset" else None)


def _num(x: float) -> float | str:
    """JSON-safe number: non-finite values as strings."""
    return float(x) if math.isfinite(x) else str(x)


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _addr_of(oid: Any) -> int:
    h5py = _h5py()

    return int(h5py.h5o.get_info(oid).addr)
