"""``diff``: every content difference between two HDF5 files, streamed block by block in
bounded memory (spec/format.md §7.5 "Differences"), and the hdf5 comparator."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ...errors import UsageError
from ...format.policy import BytesPolicy, Hdf5Policy
from ..base import Comparison, Diff
from ..volatile import mark, volatile_kind
from . import limits
from ._encode import (
    _attr_names,
    _canonical_dtype,
    _dataset_shape,
    _describe_dtype,
    _Encoder,
    _read,
    _read_attr,
    _selections,
)
from ._h5 import (
    _OBJECTS,
    _name_key,
    _Node,
    _num,
    _open_h5,
    _open_object,
    _path_key,
    _walk,
)
from ._values import _compare_block, _Tally
from .policy import _Rules, _rules
from .report import H5Difference, _show_attr, _show_dtype, _show_shape, _show_value


class _Differ:
    def __init__(self, fa: Any, fb: Any, rules: _Rules, max_indices: int, result: Diff) -> None:
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
                self.out.differences.append(H5Difference(path, kind, detail))
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
            self.out.differences.append(H5Difference(path, "link" if links else "kind", detail))
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
                H5Difference(path, "dtype", {"a": _show_dtype(da), "b": _show_dtype(db)})
            )
            return
        if na.kind == "datatype":
            return
        sa, sb = _dataset_shape(oa), _dataset_shape(ob)
        if sa != sb:
            self.out.differences.append(
                H5Difference(path, "shape", {"a": _show_shape(sa), "b": _show_shape(sb)})
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
                self.out.ignored.append(H5Difference(path, "attribute", detail))

    def _attr_difference(self, path: str, detail: dict[str, Any], rule: str | None) -> None:
        if rule is None:
            d = H5Difference(path, "attribute", detail)
            if (
                "a" in detail
                and "b" in detail
                and not {"only_in", "dtypes", "shapes"} & set(detail)
            ):
                # An attribute whose values differ only in a time, a UUID, a hash: run-to-run
                # noise that ``--ignore-attr`` accepts (capsa run --check, replay suggestions).
                kind = volatile_kind(str(detail["a"]), str(detail["b"]))
                mark(d, kind, ignore_attrs=[f"{path}@{detail['attribute']}"])
            self.out.differences.append(d)
        else:
            self.out.ignored.append(H5Difference(path, "attribute", detail | {"rule": rule}))

    def _tolerance(self) -> dict[str, Any]:
        return {"rtol": _num(self.rules.rtol), "atol": _num(self.rules.atol)}

    def _data(self, path: str, da: Any, db: Any, shape: tuple[int, ...]) -> None:
        dt = da.dtype
        tally = _Tally(math.prod(shape), self.max_indices)
        # A block of each file, and float64 temporaries for every scalar: ~8 bytes each.
        per_elem = max(dt.itemsize, 8 * _slots(dt))
        limit = (
            limits.OBJECT_BLOCK
            if _canonical_dtype(dt) is None
            else max(1, (limits.BLOCK_BYTES // 4) // per_elem)
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
            self.out.differences.append(H5Difference(path, "data", detail))
        if tally.tolerated.count:
            detail = (
                base | tally.tolerated.as_detail() | self._tolerance() | {"within_tolerance": True}
            )
            if tally.fields:
                detail["fields"] = {
                    k: t.as_detail() for k, (_b, t) in tally.fields.items() if t.count
                }
            self.out.ignored.append(H5Difference(path, "data", detail))


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


def _check_max_indices(max_indices: int) -> None:
    if max_indices < 0:
        raise UsageError("--max-indices must not be negative")


def diff(
    a: Any,
    b: Any,
    policy: Hdf5Policy | BytesPolicy | None = None,
    *,
    max_indices: int = 10,
    names: tuple[str, str] | None = None,
) -> Diff:
    """Every content difference between ``a`` and the reference ``b`` (paths, file objects or
    open ``h5py.File``s); differences the policy allows are listed in ``ignored``."""
    rules = _rules(policy)
    _check_max_indices(max_indices)
    la, lb = names or (None, None)
    with _open_h5(a, la) as (fa, wa), _open_h5(b, lb) as (fb, wb):
        result = Diff(wa, wb)
        _Differ(fa, fb, rules, max_indices, result).run()
    return result


def compare(
    a: Any,
    b: Any,
    policy: Hdf5Policy | BytesPolicy | None = None,
    *,
    max_indices: int = 10,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """The verdict on HDF5 file ``a`` against the reference ``b``.

    ``identical``: the same bytes. ``equivalent``: the same HDF5 content under ``policy`` (None:
    content with no ignored attributes and no tolerances). ``different`` otherwise, and also when
    the policy's method is ``bytes`` and the bytes differ (the diff still says what differs, and
    ``note`` says when the content is the same). Both files must be HDF5 (FormatError).
    """
    from ..registry import compare as verdict

    _rules(policy)
    _check_max_indices(max_indices)
    la, lb = names or (None, None)
    with _open_h5(a, la) as (_, wa), _open_h5(b, lb) as (_, wb):
        pass  # both are HDF5: say so now, whatever their bytes
    return verdict(
        a,
        b,
        policy if policy is not None else Hdf5Policy(),
        method="hdf5",
        max_items=max_indices,
        names=(wa, wb),
    )


class Hdf5Comparator:
    """The ``hdf5`` method: HDF5 content (spec/format.md §7.5)."""

    method: ClassVar[str] = "hdf5"
    label: ClassVar[str] = "HDF5 content"

    def diff(
        self,
        a: Any,
        b: Any,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        return diff(a, b, policy, max_indices=max_items, names=names)
