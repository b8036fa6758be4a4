"""Objects other than trees (histograms, TObjString, TNamed, TGraph, …) by their streamed
members, read as plain data (``_read.canon``): which members differ and how."""

from __future__ import annotations

import math
from typing import Any

from ..rules import show

MEMBER_NAMES = {
    "fArray": "bin contents (with under/overflow)",
    "fSumw2": "sums of squared weights",
    "fEntries": "entries",
    "fString": "string",
    "fTitle": "title",
}
"""What histogram and other common members mean, for the report."""


def same(a: Any, b: Any, rtol: float = 0.0, atol: float = 0.0) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b or abs(a - b) <= atol + rtol * abs(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rtol, atol) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or (bool(rtol or atol) and abs(a - b) <= atol + rtol * abs(b))
    return type(a) is type(b) and bool(a == b)


def diff_members(
    a: Any,
    b: Any,
    tol: tuple[float, float],
    path: str = "",
    out: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each differing member: ``{"member", "text", "a", "b"}`` (paths like ``.fXaxis.fXmax``)."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append({"member": f"{path}.{k}", "text": f"only in {'a' if k in a else 'b'}"})
            else:
                diff_members(a[k], b[k], tol, f"{path}.{k}", out)
    elif (
        isinstance(a, list)
        and isinstance(b, list)
        and len(a) == len(b)
        and a
        and not isinstance(a[0], (dict, list))
    ):
        bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not same(x, y, *tol)]
        if bad:
            i = bad[0]
            out.append(
                {
                    "member": path,
                    "count": len(bad),
                    "first": bad[:10],
                    "text": f"{len(bad)} of {len(a)} differ, first [{i}]: "
                    f"{show(a[i])} vs {show(b[i])}",
                }
            )
    elif not same(a, b, *tol):
        what = (
            f"{len(a)} vs {len(b)} items"
            if isinstance(a, list) and isinstance(b, list) and len(a) != len(b)
            else f"{show(_brief(a))} vs {show(_brief(b))}"
        )
        out.append({"member": path, "text": what, "a": _brief(a), "b": _brief(b)})
    return out


def _brief(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return f"{v.get('_class', 'object')}"
    if isinstance(v, list):
        return f"[{len(v)} items]"
    return v


def label(member: str) -> str:
    leaf = member.rsplit(".", 1)[-1]
    return f"{member} ({MEMBER_NAMES[leaf]})" if leaf in MEMBER_NAMES else member
