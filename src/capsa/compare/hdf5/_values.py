"""Comparing blocks of values element by element: counts, first differing indices, largest
absolute and relative differences, NaN equal to NaN, tolerances (spec/format.md §7.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._encode import _Encoder
from ._h5 import Array, _h5py, _num
from .policy import _Rules


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
