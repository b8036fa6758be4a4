"""Datatypes, their canonical descriptions, and values as canonical bytes (spec/format.md §7.5
"Datatype description", "Value bytes"); reading datasets and attributes in bounded blocks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import FormatError
from . import limits
from ._h5 import _U64, Array, _addr_of, _h5py, _text


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
        return limits.OBJECT_BLOCK
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
