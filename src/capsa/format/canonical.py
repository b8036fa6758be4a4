"""The one canonical JSON encoding (spec/format.md §8) and a strict decoder for it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

__all__ = ["canonical_json", "loads_strict"]


def canonical_json(value: Any) -> bytes:
    """The one canonical encoding (spec §8): sorted keys, no whitespace, UTF-8, no floats."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    _check_values(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


_MAX_INT = 2**53


def _check_values(v: Any) -> None:
    if isinstance(v, float):
        raise ValueError("floats are not allowed in canonical JSON")
    if isinstance(v, int) and not isinstance(v, bool) and not -_MAX_INT <= v <= _MAX_INT:
        raise ValueError(f"integer {v} is outside the canonical JSON range ±2**53")
    if isinstance(v, dict):
        for x in v.values():
            _check_values(x)
    elif isinstance(v, list | tuple):
        for x in v:
            _check_values(x)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return d


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def loads_strict(text: str) -> Any:
    """JSON with no duplicate keys, no floats and no NaN/Infinity (ValueError otherwise)."""
    return json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_float=lambda s: _no_constant("a float"),
        parse_constant=_no_constant,
    )
