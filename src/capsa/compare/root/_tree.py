"""TTree and RNTuple content, branch by branch in chunks of about ``STEP_BYTES`` (both files in
lockstep, chunks aligned to the reference's baskets): memory stays bounded whatever the size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._read import reading, uproot

STEP_BYTES = 16 << 20
"""Uncompressed bytes of one branch read at a time from each file (as hdf5's BLOCK_BYTES)."""


@dataclass
class Tally:
    entries: int
    max_items: int
    count: int = 0
    tolerated: int = 0
    first: list[int] = field(default_factory=list)
    shown: tuple[Any, Any] | None = None
    max_abs: float = 0.0
    how: set[str] = field(default_factory=set)

    def add(self, start: int, bad: Any, tolerated: Any) -> None:
        import numpy as np

        n = int(np.count_nonzero(bad))
        self.count += n
        self.tolerated += int(np.count_nonzero(tolerated)) if tolerated is not None else 0
        if n and len(self.first) < self.max_items:
            for i in np.flatnonzero(bad)[: self.max_items - len(self.first)]:
                self.first.append(start + int(i))


def leaves(tree: Any, label: str) -> dict[str, Any]:
    """Branches that hold data (no sub-branches), by full name (``Evt/trks/trks.fitinf``)."""
    with reading(label):
        return {n: b for n, b in tree.iteritems(recursive=True) if not b.branches}


def signature(branch: Any) -> tuple[str, str]:
    """Its C++ type and how uproot reads it (the "unknown" reason names the file: left out)."""
    up = uproot()
    i = branch.interpretation
    unknown = isinstance(i, up.interpretation.identify.UnknownInterpretation)
    return str(branch.typename), "unknown" if unknown else repr(i)


def _steps(branch: Any, n: int) -> list[tuple[int, int]]:
    """Chunks of about STEP_BYTES, on the branch's basket boundaries."""
    per = max(1.0, branch.uncompressed_bytes / max(1, n))
    want = max(1, int(STEP_BYTES / per))
    offsets = [int(x) for x in branch.entry_offsets] or [0, n]
    if offsets[-1] < n:
        offsets.append(n)
    out, start = [], 0
    for edge in offsets[1:]:
        if edge - start >= want or edge >= n:
            out.append((start, min(edge, n)))
            start = edge
        if start >= n:
            break
    return [s for s in out if s[0] < s[1]]


def raw_entries(branch: Any, start: int, stop: int) -> list[bytes]:
    """Each entry's bytes straight from the (decompressed) baskets: for any branch uproot
    cannot interpret. Never a false "equal"; pointer payloads may differ with basket layout."""
    import numpy as np

    out = []
    for i in range(branch.num_baskets):
        b0, b1 = branch.basket_entry_start_stop(i)
        if b1 <= start or b0 >= stop:
            continue
        bk = branch.basket(i)
        data, off = bk.data, bk.byte_offsets
        if off is None:
            off = np.arange(bk.num_entries + 1) * (len(data) // max(1, bk.num_entries))
        out += [
            bytes(data[off[e - b0] : off[e - b0 + 1]].tobytes())
            for e in range(max(start, b0), min(stop, b1))
        ]
    return out


def _read(branch: Any, start: int, stop: int, how: str) -> Any:
    if how == "raw":
        return raw_entries(branch, start, stop)
    return branch.array(entry_start=start, entry_stop=stop, library=how)


def compare_branch(
    ba: Any, bb: Any, labels: tuple[str, str], tol: tuple[float, float], max_items: int
) -> Tally:
    """Entries of ``ba`` that differ from the reference ``bb`` (same entry count)."""
    import warnings

    n = int(bb.num_entries)
    tally = Tally(n, max_items)
    modes = ["ak", "np", "raw"]
    for start, stop in _steps(bb, n):
        while True:
            how = modes[0]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with reading(labels[1]):
                        xb = _read(bb, start, stop, how)
                    with reading(labels[0]):
                        xa = _read(ba, start, stop, how)
                    bad, tolerated = mismatch(xa, xb, how, tol, tally)
                break
            except Exception:
                if how == "raw":
                    raise
                modes.pop(0)  # for this branch for good; raw bytes always read (or are damage)
        tally.how.add(how)
        tally.add(start, bad, tolerated)
        if tally.shown is None and tally.first:
            i = tally.first[0] - start
            if 0 <= i < len(xa):
                tally.shown = (_item(xa[i]), _item(xb[i]))
        del xa, xb
    return tally


def _item(v: Any) -> Any:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, bytes):
        return v[:32].hex() + ("…" if len(v) > 32 else "")
    return v


def mismatch(xa: Any, xb: Any, how: str, tol: tuple[float, float], tally: Tally) -> tuple[Any, Any]:
    """(entries that differ, entries equal only within tolerance) as boolean arrays."""
    import numpy as np

    from ._objects import same

    if len(xa) != len(xb):
        raise ValueError("chunks of different lengths")
    if how == "ak":
        strict = entry_mismatch(xa, xb, (0.0, 0.0), tally)
        if tol == (0.0, 0.0) or not strict.any():
            return strict, None
        loose = entry_mismatch(xa, xb, tol, None)
        return loose, strict & ~loose
    if how == "np":
        strict = np.array(
            [not same(_plain(x), _plain(y)) for x, y in zip(xa, xb, strict=True)], bool
        )
        if tol == (0.0, 0.0) or not strict.any():
            return strict, None
        loose = np.array(
            [not same(_plain(x), _plain(y), *tol) for x, y in zip(xa, xb, strict=True)], bool
        )
        return loose, strict & ~loose
    return np.array([x != y for x, y in zip(xa, xb, strict=True)], bool), None


def _plain(x: Any) -> Any:
    from ._read import canon

    return canon(x)


def entry_mismatch(a: Any, b: Any, tol: tuple[float, float], tally: Tally | None) -> Any:
    """True for each top-level entry of awkward array ``a`` that differs from ``b``."""
    import awkward as ak
    import numpy as np

    if a.fields or b.fields:
        if a.fields != b.fields:
            return np.ones(len(a), bool)
        m = np.zeros(len(a), bool)
        for f in a.fields:
            m |= entry_mismatch(a[f], b[f], tol, tally)
        return m
    if a.ndim > 1 or b.ndim > 1 or _is_string(a):
        if _is_string(a) or _is_string(b):
            return np.asarray(ak.to_numpy(a != b) if not _is_string(a) else _strings_differ(a, b))
        na, nb = ak.to_numpy(ak.num(a, axis=1)), ak.to_numpy(ak.num(b, axis=1))
        m = na != nb
        ok = ~m
        if ok.any():
            inner = entry_mismatch(ak.flatten(a[ok], axis=1), ak.flatten(b[ok], axis=1), tol, tally)
            m[ok] = ak.to_numpy(ak.any(ak.unflatten(inner, na[ok]), axis=1))
        return m
    xa, xb = ak.to_numpy(a, allow_missing=True), ak.to_numpy(b, allow_missing=True)
    return array_mismatch(np.asarray(xa), np.asarray(xb), tol, tally)


def _is_string(a: Any) -> bool:
    import awkward as ak

    return ak.parameters(a).get("__array__") in ("string", "bytestring") or str(a.type).endswith(
        ("string", "bytes")
    )


def _strings_differ(a: Any, b: Any) -> Any:
    import numpy as np

    return np.array([x != y for x, y in zip(a.to_list(), b.to_list(), strict=True)], bool)


def array_mismatch(xa: Any, xb: Any, tol: tuple[float, float], tally: Tally | None) -> Any:
    import numpy as np

    if xa.dtype != xb.dtype and xa.dtype.kind != xb.dtype.kind:
        return np.ones(len(xa), bool)
    if xa.dtype.kind in "fc":
        with np.errstate(invalid="ignore", over="ignore"):
            eq = (xa == xb) | (np.isnan(xa) & np.isnan(xb))
            rtol, atol = tol
            diff = np.abs(xa - xb)
            if rtol or atol:
                eq |= diff <= atol + rtol * np.abs(xb)
            if tally is not None and not eq.all():
                finite = diff[~eq & np.isfinite(diff)]
                if finite.size:
                    tally.max_abs = max(tally.max_abs, float(finite.max()))
    else:
        eq = xa == xb
    eq = np.asarray(eq)
    return ~eq.reshape(len(xa), -1).all(axis=1) if eq.ndim > 1 else ~eq


def rntuple_fields(r: Any, label: str) -> dict[str, str]:
    with reading(label):
        return {str(k): str(v) for k, v in r.itertypenames()}


def compare_field(
    ra: Any, rb: Any, name: str, labels: tuple[str, str], tol: tuple[float, float], max_items: int
) -> Tally:
    """An RNTuple field, in chunks of entries."""
    n = int(rb.num_entries)
    tally = Tally(n, max_items)
    per = max(1.0, float(getattr(rb, "num_bytes", 8 * n) or 8 * n) / max(1, n))
    step = max(1, int(STEP_BYTES / per))
    for start in range(0, n, step):
        stop = min(n, start + step)
        with reading(labels[1]):
            xb = rb.arrays([name], entry_start=start, entry_stop=stop)[name]
        with reading(labels[0]):
            xa = ra.arrays([name], entry_start=start, entry_stop=stop)[name]
        bad, tolerated = mismatch(xa, xb, "ak", tol, tally)
        tally.add(start, bad, tolerated)
        if tally.shown is None and tally.first:
            i = tally.first[0] - start
            tally.shown = (_item(xa[i]), _item(xb[i]))
    tally.how.add("ak")
    return tally
