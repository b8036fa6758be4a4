"""The one canonical JSON encoding (spec/format.md §8) and a strict decoder for it."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter

__all__ = ["canonical_chunks", "canonical_json", "loads_strict"]


def canonical_json(value: Any) -> bytes:
    """The one canonical encoding (spec §8): sorted keys, no whitespace, UTF-8, no floats."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    _check_values(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_chunks(
    model: BaseModel, expand: Sequence[str], *, batch: int = 4096
) -> Iterator[bytes]:
    """The bytes of ``canonical_json(model)``, in pieces: the fields named in ``expand`` (dicts
    or tuples, e.g. a manifest's files) ``batch`` items at a time, so that neither the whole
    dumped tree nor the whole text is ever built (bounded memory for a large manifest)."""
    head = model.model_dump(mode="json", exclude_none=True, exclude=set(expand))
    keys = sorted([*head, *expand])
    yield b"{"
    for i, key in enumerate(keys):
        yield (b"," if i else b"") + _key(key)
        if key not in expand:
            yield canonical_json(head[key])
            continue
        value = getattr(model, key)
        adapter = _adapter(type(model), key)
        brackets = b"{}" if isinstance(value, dict) else b"[]"
        yield brackets[:1]
        for j, part in enumerate(_batches(value, batch)):
            # One batch as canonical JSON, without its own brackets: the batches join with ','.
            dumped = adapter.dump_python(part, mode="json", exclude_none=True)
            yield (b"," if j else b"") + canonical_json(dumped)[1:-1]
        yield brackets[1:]
    yield b"}"


def _batches(value: Any, n: int) -> Iterator[Any]:
    """A dict's items in key order, or a tuple's, ``n`` at a time (each a dict or tuple)."""
    if isinstance(value, dict):
        names = sorted(value)
        for j in range(0, len(names), n):
            yield {k: value[k] for k in names[j : j + n]}
    else:
        for j in range(0, len(value), n):
            yield tuple(value[j : j + n])


@functools.cache
def _adapter(cls: type[BaseModel], field: str) -> TypeAdapter[Any]:
    annotation = cls.model_fields[field].annotation
    assert annotation is not None
    return TypeAdapter(annotation)


def _key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode("utf-8") + b":"


_MAX_INT = 2**53


def _check_values(value: Any) -> None:
    # Iterative, by exact type first: this runs over every value of a manifest of 10^6 files.
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is dict:
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
        elif isinstance(v, float):
            raise ValueError("floats are not allowed in canonical JSON")
        elif isinstance(v, int) and not isinstance(v, bool):
            if not -_MAX_INT <= v <= _MAX_INT:
                raise ValueError(f"integer {v} is outside the canonical JSON range ±2**53")
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)


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
