"""HDF5 *content*: a canonical digest and a semantic diff (spec/format.md §7.5, "HDF5 content").

Replay (spec/replay.md §3, §4) must decide whether a re-made HDF5 output is the same as the recorded
one when its bytes are not: HDF5 writes object modification times, and the same data can be stored
contiguous or chunked, compressed or not, with old or new file-format structures. Those are never
content. What is content: the tree of groups, datasets and committed datatypes (by sorted link
name), soft and external links by their target, each dataset's datatype, shape and values, and
every attribute's datatype, shape and value. A comparison policy (`ComparePolicy`, recorded per
output in the manifest) can also ignore named attributes (`/path@name`, `*@name`) and allow
numeric tolerances (`|a - b| <= atol + rtol * |b|`, numpy ``isclose``).

- `content_digest` hashes that content into one ``sha256:<hex>`` (the stream is specified in
  spec/format.md §7.5 so a second implementation can reproduce it);
- `diff` lists every difference: missing/extra objects, kind/link/dtype/shape changes, attribute
  values, and per dataset the number of differing elements, the first differing indices and the
  largest absolute/relative difference; what the policy allowed is listed as ``ignored``;
- `compare` gives replay's verdict: ``identical`` (same bytes), ``equivalent`` (same content under
  the policy) or ``different``.

Datasets are read in blocks of at most `BLOCK_BYTES` (the two files in step, block by block), so
memory stays bounded whatever the file size. ``b`` is the reference: "missing" means in ``b`` but
not in ``a``, relative differences are relative to ``|b|``. h5py is imported only when used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, NotFoundError, UsageError
from .manifest import ComparePolicy

__all__ = [
    "BLOCK_BYTES",
    "EXIT_DIFFERENT",
    "Comparison",
    "Difference",
    "H5Diff",
    "compare",
    "content_digest",
    "diff",
    "make_policy",
    "open_source",
]

BLOCK_BYTES = 16 << 20
"""Dataset values are read in blocks of at most this many bytes (a diff holds one per file)."""
OBJECT_BLOCK = 4096
"""Elements per block for variable-length and reference types (their size is not known ahead)."""
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


# -- results --------------------------------------------------------------------------------------


@dataclass
class Difference:
    """One difference at one HDF5 object; ``detail`` is JSON-ready (no NaN/inf floats)."""

    path: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        where = self.path
        if self.kind == "attribute":
            where = f"{self.path}@{self.detail.get('attribute', '?')}"
        return f"{self.kind} {where}: {_describe_difference(self)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail,
            "summary": self.summary,
        }


@dataclass
class H5Diff:
    """Every difference between ``a`` and the reference ``b``; ``ignored``: what the policy
    allowed."""

    a: str
    b: str
    differences: list[Difference] = field(default_factory=list)
    ignored: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """Same content under the policy."""
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "equal": self.equal,
            "differences": [d.as_dict() for d in self.differences],
            "ignored": [d.as_dict() for d in self.ignored],
        }


@dataclass
class Comparison:
    """Replay's verdict on two files: ``identical``, ``equivalent`` or ``different``."""

    verdict: str
    diff: H5Diff
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {"verdict": self.verdict} | self.diff.as_dict()
        if self.note:
            d["note"] = self.note
        return d

    def report(self) -> list[str]:
        """Human-readable lines: each difference, each ignored one, then the verdict."""
        lines = [d.summary for d in self.diff.differences]
        lines += [f"ignored {d.summary}" for d in self.diff.ignored]
        counts = []
        if self.diff.differences:
            counts.append(_plural(len(self.diff.differences), "difference"))
        if self.diff.ignored:
            counts.append(f"{len(self.diff.ignored)} ignored")
        if self.note:
            counts.append(self.note)
        lines.append(self.verdict + (f" ({', '.join(counts)})" if counts else ""))
        return lines


# -- policy ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    exact: frozenset[tuple[str, str]] = frozenset()
    anywhere: frozenset[str] = frozenset()
    rtol: float = 0.0
    atol: float = 0.0
    tolerance: bool = False  # rtol or atol given: floats compare with isclose
    int_atol: bool = False  # atol given: integers may differ by up to atol

    def ignored(self, path: str, name: str) -> str | None:
        """The ignore_attrs rule that covers attribute ``name`` of ``path``, if any."""
        if (path, name) in self.exact:
            return f"{path}@{name}"
        if name in self.anywhere:
            return f"*@{name}"
        return None


def _split_rule(rule: str) -> tuple[str, str]:
    obj, sep, name = rule.rpartition("@")
    if not sep or not name or not (obj == "*" or obj.startswith("/")):
        raise UsageError(
            f"ignored attribute {rule!r} is not OBJECT@NAME",
            hint="e.g. /@kid, /group/dataset@name, or *@kid for any object",
        )
    if obj not in ("*", "/"):
        obj = "/" + "/".join(p for p in obj.split("/") if p)
    return obj, name


def _rules(policy: ComparePolicy | None) -> _Rules:
    if policy is None:
        return _Rules()
    if not isinstance(policy, ComparePolicy):
        raise UsageError(
            f"a comparison policy must be a ComparePolicy, not {type(policy).__name__}"
        )
    exact, anywhere = set(), set()
    for rule in policy.ignore_attrs:
        obj, name = _split_rule(rule)
        if obj == "*":
            anywhere.add(name)
        else:
            exact.add((obj, name))
    rtol = float(policy.rtol) if policy.rtol is not None else 0.0
    atol = float(policy.atol) if policy.atol is not None else 0.0
    return _Rules(
        frozenset(exact),
        frozenset(anywhere),
        rtol,
        atol,
        tolerance=policy.rtol is not None or policy.atol is not None,
        int_atol=policy.atol is not None,
    )


def make_policy(
    ignore_attrs: Sequence[str] = (), rtol: str | None = None, atol: str | None = None
) -> ComparePolicy:
    """An ``hdf5`` policy from command-line values; bad values are a `UsageError`."""
    try:
        policy = ComparePolicy(
            method="hdf5", ignore_attrs=tuple(ignore_attrs), rtol=rtol, atol=atol
        )
    except ValueError:
        bad = next(
            (
                f"--{k} {v!r}"
                for k, v in (("rtol", rtol), ("atol", atol))
                if v is not None and not _is_decimal(v)
            ),
            "the comparison policy",
        )
        raise UsageError(
            f"{bad} is not a non-negative decimal number", hint="e.g. 1e-6 or 0.001"
        ) from None
    _rules(policy)  # checks the attribute rules
    return policy


def _is_decimal(v: str) -> bool:
    return re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?", v) is not None


# -- opening --------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_source(spec: str | os.PathLike[str]) -> Iterator[Any]:
    """A path as given, or for ``BUNDLE.capsa:member/path`` the member read in place."""
    text = os.fspath(spec)
    if ".capsa:" in text and not Path(text).exists():
        import capsa

        bundle, _, member = text.partition(".capsa:")
        with capsa.open(bundle + ".capsa") as b, b.open_member(member) as f:
            yield f
    else:
        yield text


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


def _same_bytes(a: Any, b: Any) -> bool:
    """Whether the two sources hold the same bytes (size first, then block by block)."""
    with contextlib.ExitStack() as stack:
        files = []
        sizes = []
        for s in (a, b):
            if isinstance(s, (str, os.PathLike)):
                f = stack.enter_context(Path(s).open("rb"))
            elif hasattr(s, "seek") and hasattr(s, "read"):
                f = s
            else:
                return False  # an open h5py.File: bytes are not compared
            f.seek(0, os.SEEK_END)
            sizes.append(f.tell())
            f.seek(0)
            files.append(f)
        try:
            if sizes[0] != sizes[1]:
                return False
            while True:
                x, y = _read_full(files[0], 1 << 20), _read_full(files[1], 1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
        finally:
            for f in files:
                f.seek(0)


def _read_full(f: Any, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end (raw files may return short reads)."""
    data = f.read(n)
    while data and len(data) < n:
        more = f.read(n - len(data))
        if not more:
            break
        data += more
    return bytes(data)


# -- walking --------------------------------------------------------------------------------------


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


# -- datatypes ------------------------------------------------------------------------------------


def _describe_dtype(dt: np.dtype[Any]) -> Any:
    """The canonical, JSON-ready description of an HDF5 datatype as h5py maps it to numpy.

    Byte order, padding and field offsets are storage, not content, and never appear.
    """
    h5py = _h5py()

    s = h5py.check_string_dtype(dt)
    if s is not None:
        return {"string": s.encoding, "length": "variable" if s.length is None else s.length}
    r = h5py.check_ref_dtype(dt)
    if r is not None:
        return "region-reference" if r is h5py.RegionReference else "object-reference"
    v = h5py.check_vlen_dtype(dt)
    if v is not None:
        return {"vlen": _describe_dtype(np.dtype(v))}
    e = h5py.check_enum_dtype(dt)
    if e is not None:
        members = sorted(([k, int(x)] for k, x in e.items()), key=lambda m: (m[1], m[0]))
        return {"enum": _describe_dtype(np.dtype(dt.str)), "members": members}
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return {"array": _describe_dtype(base), "shape": list(shape)}
    if dt.names is not None:
        return {"compound": [[n, _describe_dtype(dt[n])] for n in dt.names]}
    kind, bits = dt.kind, dt.itemsize * 8
    if kind == "b":
        return "bool"
    if kind in "iufc":
        return {"i": "int", "u": "uint", "f": "float", "c": "complex"}[kind] + str(bits)
    if kind == "V":
        return {"opaque": dt.itemsize}
    raise FormatError(f"unsupported datatype {dt}")


def _canonical_dtype(dt: np.dtype[Any]) -> np.dtype[Any] | None:
    """Little-endian, packed numpy dtype of the value bytes; None if variable-length inside."""
    if dt.kind == "O":
        return None
    if dt.subdtype is not None:
        base = _canonical_dtype(dt.subdtype[0])
        return None if base is None else np.dtype((base, dt.subdtype[1]))
    if dt.names is not None:
        fields = [(n, _canonical_dtype(dt[n])) for n in dt.names]
        if any(c is None for _, c in fields):
            return None
        return np.dtype([(n, c) for n, c in fields])
    if dt.kind in "iufc":
        return np.dtype(dt.str).newbyteorder("<")
    return np.dtype(dt.str)


def _canonical_floats(x: Array) -> None:
    """In place: -0.0 becomes 0.0 and every NaN the same quiet NaN, field by field."""
    dt = x.dtype
    if dt.names is not None:
        for n in dt.names:
            _canonical_floats(x[n])
    elif dt.kind == "c":
        _canonical_floats(x.real)
        _canonical_floats(x.imag)
    elif dt.kind == "f" and x.size:
        np.add(x, 0.0, out=x)  # -0.0 + 0.0 == +0.0
        nan = np.isnan(x)
        if nan.any():
            x[nan] = np.nan


def _has_floats(dt: np.dtype[Any]) -> bool:
    if dt.subdtype is not None:
        return _has_floats(dt.subdtype[0])
    if dt.names is not None:
        return any(_has_floats(dt[n]) for n in dt.names)
    return dt.kind in "fc"


class _Encoder:
    """Canonical value bytes of arrays read from one file (references resolve in that file)."""

    def __init__(self, f: Any, seen: dict[int, str]) -> None:
        self.f = f
        self.seen = seen

    def array(
        self, x: Array, dt: np.dtype[Any] | None = None, *, inplace: bool = False
    ) -> bytes | Array:
        """Bytes (or a C-contiguous array to hash) for ``x``'s elements in C order; with
        ``inplace``, ``x`` (an array nobody else uses) may be changed."""
        dt = x.dtype if dt is None else dt
        cdt = _canonical_dtype(dt)
        if cdt is not None:
            floats = _has_floats(cdt)
            if x.dtype != cdt or not x.flags.c_contiguous or (floats and not inplace):
                x = np.ascontiguousarray(x.astype(cdt))
            if floats:
                _canonical_floats(x)
            return x
        out = bytearray()
        for v in x.reshape(-1):
            self._element(v, dt, out)
        return bytes(out)

    def element(self, v: Any, dt: np.dtype[Any]) -> bytes:
        out = bytearray()
        self._element(v, dt, out)
        return bytes(out)

    def _element(self, v: Any, dt: np.dtype[Any], out: bytearray) -> None:
        h5py = _h5py()

        if dt.subdtype is not None:
            base, _shape = dt.subdtype
            for item in np.asarray(v).reshape(-1):
                self._element(item, base, out)
            return
        if dt.names is not None:
            for n in dt.names:
                self._element(v[n], dt[n], out)
            return
        if dt.kind != "O":
            y = np.array(v, dtype=_canonical_dtype(dt))
            _canonical_floats(y)
            out += y.tobytes()
            return
        if h5py.check_string_dtype(dt) is not None:
            data = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)
            out += _U64.pack(len(data)) + data
            return
        r = h5py.check_ref_dtype(dt)
        if r is not None:
            self._reference(v, r is h5py.RegionReference, out)
            return
        base = h5py.check_vlen_dtype(dt)
        if base is None:
            raise FormatError(f"unsupported datatype {dt}")
        seq = np.asarray(v, dtype=base).reshape(-1)
        out += _U64.pack(seq.size)
        enc = self.array(seq, np.dtype(base))
        out += enc if isinstance(enc, bytes) else enc.tobytes()

    def _reference(self, ref: Any, region: bool, out: bytearray) -> None:
        h5py = _h5py()

        if not ref:
            out += _U64.pack(0)
            return
        oid = h5py.h5r.dereference(ref, self.f.id)
        path = self.seen.get(_addr_of(oid)) if oid is not None else None
        if path is None:  # not reachable by a hard link from the root
            path = (h5py.h5r.get_name(ref, self.f.id) or b"?").decode("utf-8", "surrogateescape")
        data = path.encode("utf-8", "surrogateescape")
        out += _U64.pack(len(data)) + data
        if region:
            space = h5py.h5r.get_region(ref, self.f.id)
            sel = space.get_select_type()
            if sel == h5py.h5s.SEL_POINTS:
                pts = np.asarray(space.get_select_elem_pointlist(), dtype="<u8")
                out += b"P" + _U64.pack(pts.size) + pts.tobytes()
            elif sel == h5py.h5s.SEL_HYPERSLABS:
                blocks = np.asarray(space.get_select_hyper_blocklist(), dtype="<u8")
                out += b"H" + _U64.pack(blocks.size) + blocks.tobytes()
            else:
                out += b"A" if sel == h5py.h5s.SEL_ALL else b"N"


def _addr_of(oid: Any) -> int:
    h5py = _h5py()

    return int(h5py.h5o.get_info(oid).addr)


# -- reading --------------------------------------------------------------------------------------


@dataclass
class _Attr:
    dtype: np.dtype[Any]
    shape: tuple[int, ...] | None  # None: empty (null) dataspace
    value: Array | None

    def header(self, name: str) -> dict[str, Any]:
        return {
            "attribute": name,
            "dtype": _describe_dtype(self.dtype),
            "shape": None if self.shape is None else list(self.shape),
        }


def _attr_names(oid: Any) -> list[str]:
    names: list[bytes] = []
    _h5py().h5a.iterate(oid, names.append)
    return [_text(n) for n in sorted(names)]


def _read_attr(oid: Any, name: str) -> _Attr:
    h5py = _h5py()

    aid = h5py.h5a.open(oid, name.encode("utf-8", "surrogateescape"))
    dt = aid.dtype
    if aid.get_space().get_simple_extent_type() == h5py.h5s.NULL:
        return _Attr(dt, None, None)
    shape = tuple(aid.shape)
    htype = h5py.h5t.py_create(dt)
    rshape, rdt = shape, dt
    if dt.subdtype is not None:  # numpy has no top-level array type (as h5py's attrs do)
        rdt, sub = dt.subdtype
        rshape = shape + sub
    value = np.zeros(rshape, dtype=rdt)
    aid.read(value, mtype=htype)
    return _Attr(dt, shape, value)


def _dataset_shape(ds: Any) -> tuple[int, ...] | None:
    h5py = _h5py()

    if ds.id.get_space().get_simple_extent_type() == h5py.h5s.NULL:
        return None
    return tuple(ds.shape)


def _block_elements(dt: np.dtype[Any], budget: int) -> int:
    if _canonical_dtype(dt) is None:
        return OBJECT_BLOCK
    return max(1, budget // max(dt.itemsize, 1))


def _selections(
    shape: tuple[int, ...],
    max_elements: int,
    chunks: tuple[int, ...] | None,
) -> Iterator[tuple[tuple[Any, ...], tuple[int, ...]]]:
    """Hyperslabs that tile ``shape`` in C order, each C-contiguous and at most ``max_elements``
    (at least one row of the last axis is split if it must be); aligned to ``chunks`` when they
    are smaller than a block. Yields (selection, global index of the block's first element)."""
    if not shape:
        yield (), ()
        return
    if 0 in shape:
        return
    inner = [1] * (len(shape) + 1)
    for i in reversed(range(len(shape))):
        inner[i] = inner[i + 1] * shape[i]
    k = next(i for i in range(len(shape)) if inner[i + 1] <= max_elements)
    step = max(1, max_elements // inner[k + 1])
    if chunks and step > chunks[k]:
        step -= step % chunks[k]
    tail = (0,) * (len(shape) - k - 1)
    for outer in np.ndindex(*shape[:k]):
        for start in range(0, shape[k], step):
            stop = min(start + step, shape[k])
            yield (*outer, slice(start, stop)), (*outer, start, *tail)


def _read(ds: Any, sel: tuple[Any, ...]) -> Array:
    x = ds[sel] if sel else ds[...]
    return np.asarray(x) if not isinstance(x, np.ndarray) else x


# -- digest ---------------------------------------------------------------------------------------


def _frame(h: Any, obj: Any) -> None:
    data = (
        obj
        if isinstance(obj, bytes)
        else json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8", "surrogateescape")
    )
    h.update(_U64.pack(len(data)))
    h.update(data)


def _buffer(x: bytes | Array) -> bytes:
    """What hashlib takes: bytes as they are, a C-contiguous array without a copy."""
    return x if isinstance(x, bytes) else x.reshape(-1).view(np.uint8)  # type: ignore[return-value]


def content_digest(source: Any, policy: ComparePolicy | None = None) -> str:
    """``sha256:<hex>`` of the HDF5 content (spec/format.md §7.5, "HDF5 content").

    ``source``: a path, a seekable binary file object, or an open ``h5py.File``. Of the policy
    only ``ignore_attrs`` counts (tolerances cannot be hashed). Raises `FormatError` for a file
    that is not HDF5, `NotFoundError` for a missing one.
    """
    rules = _rules(policy)
    h = hashlib.sha256()
    with _open_h5(source) as (f, _where):
        _frame(h, MAGIC)
        nodes, seen = _walk(f)
        enc = _Encoder(f, seen)
        for node in nodes:
            header: dict[str, Any] = {"path": node.path, "kind": node.kind}
            if node.kind not in _OBJECTS:
                header["target"] = node.target
                if node.kind == "extlink":
                    header["file"] = node.file
                _frame(h, header)
                continue
            oid, obj = _open_object(f, node)
            names = [n for n in _attr_names(oid) if rules.ignored(node.path, n) is None]
            header["attributes"] = len(names)
            if node.kind != "group":
                header["dtype"] = _describe_dtype(oid.dtype)
            shape = _dataset_shape(obj) if obj is not None else None
            if obj is not None:
                header["shape"] = None if shape is None else list(shape)
            _frame(h, header)
            for name in names:
                attr = _read_attr(oid, name)
                _frame(h, attr.header(name))
                if attr.value is not None:
                    vdt = attr.dtype if attr.dtype.kind == "O" else None
                    h.update(_buffer(enc.array(attr.value, vdt, inplace=True)))
            if shape is not None:
                limit = _block_elements(obj.dtype, BLOCK_BYTES)
                vdt = obj.dtype if obj.dtype.kind == "O" else None
                for sel, _start in _selections(shape, limit, obj.chunks):
                    h.update(_buffer(enc.array(_read(obj, sel), vdt, inplace=True)))
    return "sha256:" + h.hexdigest()


# -- diff -----------------------------------------------------------------------------------------


def _num(x: float) -> float | str:
    """JSON-safe number: non-finite values as strings."""
    return float(x) if math.isfinite(x) else str(x)


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class _Stats:
    """Counts and magnitudes for one category (beyond tolerance, or within it) of elements."""

    count: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    nan: int = 0  # scalars where one side is NaN and the other not

    def add(self, d: Array, rel: Array, mask: Array) -> None:
        """Magnitudes of ``d``/``rel`` where ``mask`` (counts are added by the caller)."""
        valid = mask & ~np.isnan(d)
        n_valid = int(np.count_nonzero(valid))
        self.nan += int(np.count_nonzero(mask)) - n_valid
        if n_valid:
            m = float(np.fmax.reduce(d, axis=None, where=valid, initial=-np.inf))
            r = float(np.fmax.reduce(rel, axis=None, where=valid, initial=-np.inf))
            self.merge(_Stats(0, m, r))

    def merge(self, s: _Stats) -> None:
        self.count += s.count
        self.nan += s.nan
        if s.max_abs is not None:
            self.max_abs = s.max_abs if self.max_abs is None else max(self.max_abs, s.max_abs)
        if s.max_rel is not None:
            self.max_rel = s.max_rel if self.max_rel is None else max(self.max_rel, s.max_rel)

    def as_detail(self) -> dict[str, Any]:
        d: dict[str, Any] = {"count": self.count}
        if self.max_abs is not None and self.max_rel is not None:
            d["max_abs"] = _num(self.max_abs)
            d["max_rel"] = _num(self.max_rel)
        if self.nan:
            d["nan"] = self.nan
        return d


@dataclass
class _Tally:
    """What differs in one dataset (or attribute), accumulated block by block."""

    elements: int
    max_indices: int
    bad: _Stats = field(default_factory=_Stats)
    tolerated: _Stats = field(default_factory=_Stats)
    first: list[tuple[int, ...]] = field(default_factory=list)
    fields: dict[str, tuple[_Stats, _Stats]] = field(default_factory=dict)


def _leaves(
    dt: np.dtype[Any],
    prefix: tuple[str, ...] = (),
) -> list[tuple[tuple[str, ...], np.dtype[Any]]]:
    if dt.subdtype is not None:
        return _leaves(dt.subdtype[0], prefix)
    if dt.names is not None:
        return [leaf for n in dt.names for leaf in _leaves(dt[n], (*prefix, n))]
    return [(prefix, dt)]


def _field(x: Array, names: tuple[str, ...]) -> Array:
    for n in names:
        x = x[n]
    return x


def _abs_diff(va: Array, vb: Array) -> tuple[Array, Array | None]:
    """(|a - b| as float64, exact |a - b| as uint64 for integers)."""
    if va.dtype.kind in "iu":
        wide = np.int64 if va.dtype.kind == "i" else np.uint64
        a, b = va.astype(wide), vb.astype(wide)
        exact = np.where(a >= b, a - b, b - a).view(np.uint64)  # wraps to the true magnitude
        return exact.astype(np.float64), exact
    with np.errstate(invalid="ignore", over="ignore"):
        if va.dtype.kind == "c":
            return np.abs(va.astype(np.complex128) - vb.astype(np.complex128)), None
        d = va.astype(np.float64) - vb.astype(np.float64)
        return np.abs(d, out=d), None


def _float_ne(a: Array, b: Array) -> Array:
    """a != b, except that NaN equals NaN."""
    ne = np.not_equal(a, b)
    if ne.any():
        nan = np.isnan(a)
        if nan.any():
            ne &= ~(nan & np.isnan(b))
    return ne


def _leaf_diff(
    av: Array,
    bv: Array,
    dt: np.dtype[Any],
    n_dims: int,
    rules: _Rules,
    enc_a: _Encoder,
    enc_b: _Encoder,
) -> tuple[Array, Array, _Stats, _Stats] | None:
    """One field of a block pair: (elements beyond tolerance, elements that differ at all, stats
    of both categories), masks over the block's ``n_dims`` element dimensions; None if equal."""
    h5py = _h5py()

    if dt.kind == "O":
        if h5py.check_string_dtype(dt) is not None:
            pairs = (_as_bytes(x) != _as_bytes(y) for x, y in zip(av.flat, bv.flat, strict=True))
        else:
            pairs = (
                enc_a.element(x, dt) != enc_b.element(y, dt)
                for x, y in zip(av.flat, bv.flat, strict=True)
            )
        ne = np.fromiter(pairs, dtype=bool, count=av.size).reshape(av.shape)
    elif dt.kind == "V":  # opaque: numpy has no comparison for unstructured void
        n = dt.itemsize
        ne = (
            np.ascontiguousarray(av).view(np.uint8).reshape((*av.shape, n))
            != np.ascontiguousarray(bv).view(np.uint8).reshape((*bv.shape, n))
        ).any(axis=-1)
    elif dt.kind == "c":  # component by component, NaN equals NaN
        ne = _float_ne(av.real, bv.real) | _float_ne(av.imag, bv.imag)
    elif dt.kind == "f":
        ne = _float_ne(av, bv)
    else:
        ne = np.not_equal(av, bv)
    if not ne.any():
        return None
    bad = ne
    sb, st = _Stats(), _Stats()
    if dt.kind in "fciu":
        d, exact = _abs_diff(av, bv)
        absb = (
            np.abs(bv).astype(np.float64, copy=False)
            if dt.kind == "c"
            else np.abs(bv.astype(np.float64))
        )
        if dt.kind in "fc" and rules.tolerance:
            with np.errstate(invalid="ignore", over="ignore"):
                limit = absb * rules.rtol
                limit += rules.atol
                bad = ne & ~(d <= limit)
            del limit
        elif exact is not None and rules.int_atol:
            bad = ne & (exact > rules.atol)
        del exact
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.divide(d, absb, out=absb)
        sb.add(d, rel, bad)
        if bad is not ne:
            st.add(d, rel, ne & ~bad)
        del d, rel
    if av.ndim > n_dims:  # array members: an element differs if any member does
        axes = tuple(range(n_dims, av.ndim))
        return np.any(bad, axis=axes), np.any(ne, axis=axes), sb, st
    return bad, ne, sb, st


def _as_bytes(v: Any) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


def _first_true(mask: Array, k: int) -> list[int]:
    """Flat indices of the first ``k`` true values, without indexing the whole mask."""
    flat = mask.reshape(-1)
    out: list[int] = []
    step = 1 << 16
    for i in range(0, flat.size, step):
        if len(out) >= k:
            break
        out.extend(int(j) + i for j in np.flatnonzero(flat[i : i + step])[: k - len(out)])
    return out


def _compare_block(
    xa: Array,
    xb: Array,
    eshape: tuple[int, ...],
    start: tuple[int, ...],
    tally: _Tally,
    rules: _Rules,
    enc_a: _Encoder,
    enc_b: _Encoder,
) -> None:
    """Add one aligned block pair to ``tally``; ``eshape`` is the block's element shape and
    ``start`` the global index of its first element."""
    leaves = _leaves(xa.dtype)
    bad = ne = None
    for names, dt in leaves:
        r = _leaf_diff(_field(xa, names), _field(xb, names), dt, len(eshape), rules, enc_a, enc_b)
        if r is None:
            continue
        lbad, lne, sb, st = r
        if len(leaves) > 1 or names:
            fb, ft = tally.fields.setdefault(".".join(names), (_Stats(), _Stats()))
            fb.merge(sb)
            ft.merge(st)
            fb.count += int(np.count_nonzero(lbad))
            ft.count += int(np.count_nonzero(lne & ~lbad)) if lbad is not lne else 0
        tally.bad.merge(sb)
        tally.tolerated.merge(st)
        bad = lbad if bad is None else bad | lbad
        ne = lne if ne is None else ne | lne
    if bad is None or ne is None:
        return
    n_bad = int(np.count_nonzero(bad))
    tally.bad.count += n_bad
    tally.tolerated.count += int(np.count_nonzero(ne)) - n_bad
    need = tally.max_indices - len(tally.first)
    if need > 0 and n_bad:
        k = len(start) - len(eshape)  # leading axes fixed by the selection
        for i in _first_true(bad, need):
            local = np.unravel_index(i, eshape) if eshape else ()
            glob = (*start[:k], *(int(s) + int(j) for s, j in zip(start[k:], local, strict=True)))
            tally.first.append(tuple(int(g) for g in glob))


class _Differ:
    def __init__(self, fa: Any, fb: Any, rules: _Rules, max_indices: int, result: H5Diff) -> None:
        self.fa, self.fb = fa, fb
        self.rules = rules
        self.max_indices = max_indices
        self.out = result

    def run(self) -> None:
        nodes_a, seen_a = _walk(self.fa)
        nodes_b, seen_b = _walk(self.fb)
        self.enc_a, self.enc_b = _Encoder(self.fa, seen_a), _Encoder(self.fb, seen_b)
        ma = {n.path: n for n in nodes_a}
        mb = {n.path: n for n in nodes_b}
        # Groups reported as a whole (missing, extra, other kind): their contents are only
        # counted, in the detail of that report, for the file(s) that have them.
        covered: list[tuple[str, dict[str, Any], list[dict[str, _Node]]]] = []
        for path in sorted(ma.keys() | mb.keys(), key=_path_key):
            if covered and path.startswith(covered[-1][0]):
                _prefix, detail, sides = covered[-1]
                if any(path in side for side in sides):
                    detail["objects_inside"] = detail.get("objects_inside", 0) + 1
                continue
            na, nb = ma.get(path), mb.get(path)
            if na is None or nb is None:
                present = nb if na is None else na
                assert present is not None
                kind = "missing" if na is None else "extra"
                detail = {"object": _node_kind(present)}
                self.out.differences.append(Difference(path, kind, detail))
                if present.kind == "group":
                    covered.append((path + "/", detail, [mb if na is None else ma]))
                continue
            self._node(na, nb, covered)

    def _node(
        self,
        na: _Node,
        nb: _Node,
        covered: list[tuple[str, dict[str, Any], list[dict[str, _Node]]]],
    ) -> None:
        path = na.path
        relinked = na.kind not in _OBJECTS and (na.target, na.file) != (nb.target, nb.file)
        if na.kind != nb.kind or relinked:
            links = na.kind not in _OBJECTS or nb.kind not in _OBJECTS
            detail = {"a": _node_kind(na), "b": _node_kind(nb)}
            self.out.differences.append(Difference(path, "link" if links else "kind", detail))
            if "group" in (na.kind, nb.kind):
                covered.append((path + "/", detail, []))
            return
        if na.kind not in _OBJECTS:
            return
        (ida, oa), (idb, ob) = _open_object(self.fa, na), _open_object(self.fb, nb)
        self._attributes(path, ida, idb)
        if na.kind == "group":
            return
        da, db = _describe_dtype(ida.dtype), _describe_dtype(idb.dtype)
        if da != db:
            self.out.differences.append(
                Difference(path, "dtype", {"a": _show_dtype(da), "b": _show_dtype(db)})
            )
            return
        if na.kind == "datatype":
            return
        sa, sb = _dataset_shape(oa), _dataset_shape(ob)
        if sa != sb:
            self.out.differences.append(
                Difference(path, "shape", {"a": _show_shape(sa), "b": _show_shape(sb)})
            )
            return
        if sa is not None:
            self._data(path, oa, ob, sa)

    def _attributes(self, path: str, oa: Any, ob: Any) -> None:
        names_a, names_b = set(_attr_names(oa)), set(_attr_names(ob))
        for name in sorted(names_a | names_b, key=_name_key):
            rule = self.rules.ignored(path, name)
            aa = _read_attr(oa, name) if name in names_a else None
            ab = _read_attr(ob, name) if name in names_b else None
            detail: dict[str, Any] = {"attribute": name}
            if aa is None or ab is None:
                detail["only_in"] = "a" if ab is None else "b"
                detail["a" if ab is None else "b"] = _show_attr(aa or ab)
                self._attr_difference(path, detail, rule)
                continue
            ha, hb = aa.header(name), ab.header(name)
            if ha != hb:
                detail["a"], detail["b"] = _show_attr(aa), _show_attr(ab)
                if ha["dtype"] != hb["dtype"]:
                    detail["dtypes"] = [_show_dtype(ha["dtype"]), _show_dtype(hb["dtype"])]
                if ha["shape"] != hb["shape"]:
                    detail["shapes"] = [_show_shape(aa.shape), _show_shape(ab.shape)]
                self._attr_difference(path, detail, rule)
                continue
            if aa.value is None or ab.value is None:
                continue
            va, vb = aa.value, ab.value
            eshape = tuple(aa.shape or ()) or (1,)
            if not aa.shape:
                va, vb = va.reshape((1, *va.shape)), vb.reshape((1, *vb.shape))
            tally = _Tally(math.prod(eshape), 0)
            _compare_block(
                va, vb, eshape, (0,) * len(eshape), tally, self.rules, self.enc_a, self.enc_b
            )
            if not tally.bad.count and not tally.tolerated.count:
                continue
            detail["a"], detail["b"] = _show_value(aa.value), _show_value(ab.value)
            if tally.bad.count:
                detail |= {k: v for k, v in tally.bad.as_detail().items() if k != "count"}
                self._attr_difference(path, detail, rule)
            else:
                detail |= {k: v for k, v in tally.tolerated.as_detail().items() if k != "count"}
                detail |= {"rule": rule} if rule else self._tolerance()
                self.out.ignored.append(Difference(path, "attribute", detail))

    def _attr_difference(self, path: str, detail: dict[str, Any], rule: str | None) -> None:
        if rule is None:
            self.out.differences.append(Difference(path, "attribute", detail))
        else:
            self.out.ignored.append(Difference(path, "attribute", detail | {"rule": rule}))

    def _tolerance(self) -> dict[str, Any]:
        return {"rtol": _num(self.rules.rtol), "atol": _num(self.rules.atol)}

    def _data(self, path: str, da: Any, db: Any, shape: tuple[int, ...]) -> None:
        dt = da.dtype
        tally = _Tally(math.prod(shape), self.max_indices)
        # A block of each file, and float64 temporaries for every scalar: ~8 bytes each.
        per_elem = max(dt.itemsize, 8 * _slots(dt))
        limit = (
            OBJECT_BLOCK if _canonical_dtype(dt) is None else max(1, (BLOCK_BYTES // 4) // per_elem)
        )
        for sel, start in _selections(shape, limit, da.chunks):
            xa, xb = _read(da, sel), _read(db, sel)
            eshape = _element_shape(shape, sel)
            if xa.shape != eshape:  # top-level array type: h5py appends its dimensions
                xa = xa.reshape((*eshape, -1))
                xb = xb.reshape((*eshape, -1))
            _compare_block(xa, xb, eshape, start, tally, self.rules, self.enc_a, self.enc_b)
            del xa, xb
        base = {"elements": tally.elements}
        if tally.bad.count:
            detail = base | tally.bad.as_detail() | {"first": tally.first}
            if tally.fields:
                detail["fields"] = {
                    k: b.as_detail() for k, (b, _t) in tally.fields.items() if b.count
                }
            self.out.differences.append(Difference(path, "data", detail))
        if tally.tolerated.count:
            detail = (
                base | tally.tolerated.as_detail() | self._tolerance() | {"within_tolerance": True}
            )
            if tally.fields:
                detail["fields"] = {
                    k: t.as_detail() for k, (_b, t) in tally.fields.items() if t.count
                }
            self.out.ignored.append(Difference(path, "data", detail))


def _slots(dt: np.dtype[Any]) -> int:
    """Scalars per element (compound fields and array members)."""
    if dt.subdtype is not None:
        return math.prod(dt.subdtype[1]) * _slots(dt.subdtype[0])
    if dt.names is not None:
        return sum((_slots(dt[n]) for n in dt.names), 0)
    return 1


def _element_shape(shape: tuple[int, ...], sel: tuple[Any, ...]) -> tuple[int, ...]:
    k = len(sel) - 1
    if k < 0:
        return ()
    s = sel[k]
    return (s.stop - s.start, *shape[k + 1 :])


def _node_kind(n: _Node) -> str:
    if n.kind == "softlink":
        return f"soft link to {n.target}"
    if n.kind == "extlink":
        return f"external link to {n.file}:{n.target}"
    if n.kind == "hardlink":
        return f"hard link to {n.target}"
    if n.kind == "udlink":
        return f"user-defined link (type {n.target})"
    return n.kind


def _show_dtype(desc: Any) -> str:
    return (
        desc if isinstance(desc, str) else json.dumps(desc, sort_keys=True, separators=(",", ":"))
    )


def _show_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "empty"
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _scalar(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.dtype.kind != "O":
        return v.tolist()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, np.ndarray):
        return [_scalar(x) for x in v.reshape(-1)[:4]]
    if isinstance(v, (tuple, list)):
        return [_scalar(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _show_value(x: Array) -> str:
    if x.size == 1:
        text = repr(_scalar(x.reshape(-1)[0]))
    else:
        items = [repr(_scalar(v)) for v in x.reshape(-1)[:4]]
        text = "[" + ", ".join(items) + (", …" if x.size > 4 else "") + f"] shape {x.shape}"
    return text if len(text) <= 60 else text[:59] + "…"


def _show_attr(a: _Attr | None) -> str:
    if a is None:
        return "absent"
    if a.value is None:
        return "empty"
    return _show_value(a.value)


def _describe_difference(d: Difference) -> str:
    x = d.detail
    if d.kind in ("missing", "extra"):
        where = "b" if d.kind == "missing" else "a"
        inside = x.get("objects_inside")
        return f"{x.get('object', 'object')} only in {where}" + (
            f" (with {_plural(inside, 'object')} inside)" if inside else ""
        )
    if d.kind in ("kind", "link", "dtype", "shape"):
        return f"{x.get('a')} vs {x.get('b')}"
    if d.kind == "attribute":
        if "only_in" in x:
            side = x["only_in"]
            text = f"only in {side} ({x.get(side)})"
        else:
            text = f"{x.get('a')} vs {x.get('b')}"
            if "dtypes" in x:
                text += f" (dtype {x['dtypes'][0]} vs {x['dtypes'][1]})"
            if "shapes" in x:
                text += f" (shape {x['shapes'][0]} vs {x['shapes'][1]})"
            text += _magnitudes(x)
        if "rule" in x:
            text += f" [{x['rule']}]"
        elif "within_tolerance" in x or ("rtol" in x and "atol" in x):
            text += f" (within rtol {_fmt(x['rtol'])}, atol {_fmt(x['atol'])})"
        return text
    if d.kind == "data":
        n, total = x.get("count", 0), x.get("elements", 0)
        if x.get("within_tolerance"):
            text = (
                f"{n} of {total} elements differ within rtol {_fmt(x['rtol'])}, "
                f"atol {_fmt(x['atol'])}"
            )
        else:
            text = f"{n} of {total} elements differ"
            first = x.get("first") or []
            if first:
                shown = ", ".join(_show_index(i) for i in first[:_SUMMARY_INDICES])
                text += f" (first at {shown}{', …' if n > len(first[:_SUMMARY_INDICES]) else ''})"
        text += _magnitudes(x)
        fields = x.get("fields")
        if fields:
            text += "; fields " + ", ".join(
                f"{k}: {v['count']}" + _magnitudes(v, short=True) for k, v in fields.items()
            )
        return text
    return json.dumps(x, sort_keys=True)


def _magnitudes(x: dict[str, Any], *, short: bool = False) -> str:
    parts = []
    if "max_abs" in x:
        parts.append(f"max abs {_fmt(x['max_abs'])}, max rel {_fmt(x['max_rel'])}")
    if x.get("nan"):
        parts.append(f"{x['nan']} NaN vs number")
    if not parts:
        return ""
    return (" (" + "; ".join(parts) + ")") if short else "; " + "; ".join(parts)


def _show_index(i: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, i)) + ("," if len(i) == 1 else "") + ")"


def _check_max_indices(max_indices: int) -> None:
    if max_indices < 0:
        raise UsageError("--max-indices must not be negative")


def diff(
    a: Any,
    b: Any,
    policy: ComparePolicy | None = None,
    *,
    max_indices: int = 10,
    names: tuple[str, str] | None = None,
) -> H5Diff:
    """Every content difference between ``a`` and the reference ``b`` (paths, file objects or
    open ``h5py.File``s); differences the policy allows are listed in ``ignored``."""
    rules = _rules(policy)
    _check_max_indices(max_indices)
    la, lb = names or (None, None)
    with _open_h5(a, la) as (fa, wa), _open_h5(b, lb) as (fb, wb):
        result = H5Diff(wa, wb)
        _Differ(fa, fb, rules, max_indices, result).run()
    return result


def compare(
    a: Any,
    b: Any,
    policy: ComparePolicy | None = None,
    *,
    max_indices: int = 10,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """Replay's verdict on output ``a`` against the recorded ``b``.

    ``identical``: the same bytes. ``equivalent``: the same HDF5 content under ``policy`` (None:
    content with no ignored attributes and no tolerances). ``different`` otherwise, and also when
    the policy's method is ``bytes`` and the bytes differ (the diff still says what differs, and
    ``note`` says when the content is the same).
    """
    rules = _rules(policy)
    _check_max_indices(max_indices)
    la, lb = names or (None, None)
    with _open_h5(a, la) as (fa, wa), _open_h5(b, lb) as (fb, wb):
        result = H5Diff(wa, wb)
        if _same_bytes(a, b):
            return Comparison("identical", result)
        _Differ(fa, fb, rules, max_indices, result).run()
    if result.differences:
        return Comparison("different", result)
    if policy is not None and policy.method == "bytes":
        return Comparison(
            "different", result, note="same HDF5 content but different bytes; the policy is bytes"
        )
    return Comparison("equivalent", result)
