"""One readable line per HDF5 difference (what `capsa diff` and replay print)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Difference, plural
from ._encode import _Attr
from ._h5 import _SUMMARY_INDICES, Array, _fmt


@dataclass
class H5Difference(Difference):
    """One difference at one HDF5 object; ``detail`` is JSON-ready (no NaN/inf floats)."""

    @property
    def summary(self) -> str:
        where = self.path
        if self.kind == "attribute":
            where = f"{self.path}@{self.detail.get('attribute', '?')}"
        return f"{self.kind} {where}: {_describe_difference(self)}"


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
            f" (with {plural(inside, 'object')} inside)" if inside else ""
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
