"""The ``json`` method: the same JSON value, compared structurally (spec/format.md §7.5 "JSON
content"). Objects by key in any order, arrays by position, numbers as numbers (``1`` equals
``1.0``, NaN equals NaN, with tolerances), strings, booleans and null exactly. Differences are
named by JSON pointer (RFC 6901).

A JSON document is one value: it is parsed whole, so files larger than ``MAX_BYTES`` are refused
(compare them as ``text``) — the bound on memory.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

from ..errors import FormatError
from ..format.policy import JsonPolicy
from .base import Diff, Difference, Source, differ, plural
from .rules import Globs, Tolerances, open_binary, own_policy, show
from .text import is_text
from .volatile import mark, volatile_kind

__all__ = ["MAX_BYTES", "JsonComparator", "is_json"]

MAX_BYTES = 64 << 20
MAX_LISTED = 200
"""Differences listed one by one; beyond, they are counted."""
_SNIFF = 4096


def is_json(head: bytes) -> bool:
    """An object or array: parses whole when ``head`` is the whole file, else starts like one.
    (JSON Lines — several values, one a line — is text, not one JSON value.)"""
    if not is_text(head):
        return False
    text = head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    if not text.startswith(("{", "[")):
        return False
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return len(head) >= _SNIFF  # the head cut it: it may be whole further on
    return not text[end:].strip()


def _pointer(parts: tuple[str, ...]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _load(source: Source, label: str) -> Any:
    with open_binary(source, label) as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise FormatError(
            f"larger than {MAX_BYTES >> 20} MiB, too large to compare as one JSON value",
            where=label,
            hint="compare it with --compare text",
        )
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise FormatError(f"not JSON: not UTF-8 at byte {e.start}", where=label) from None
    except json.JSONDecodeError as e:
        raise FormatError(
            f"not JSON: {e.msg} at line {e.lineno} column {e.colno}", where=label
        ) from None
    except RecursionError:
        raise FormatError("not comparable: nested too deeply", where=label) from None


class JsonComparator:
    method: ClassVar[str] = "json"
    label: ClassVar[str] = "JSON content"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        policy = own_policy(policy, JsonPolicy)
        la, lb = names or (str(a), str(b))
        va, vb = _load(a, la), _load(b, lb)
        out = Diff(la, lb)
        _Walk(policy, max_items, out).run(va, vb)
        return out


class _Walk:
    def __init__(self, policy: JsonPolicy, max_items: int, out: Diff) -> None:
        self.ignore = Globs(policy.ignore_pointers)
        self.tol = Tolerances(policy)
        self.max_items = max_items
        self.out = out
        self.unlisted = 0

    def add(self, d: Difference, ignored: bool = False) -> None:
        target = self.out.ignored if ignored else self.out.differences
        if len(target) < MAX_LISTED:
            target.append(d)
        elif not ignored:
            self.unlisted += 1

    def run(self, a: Any, b: Any) -> None:
        stack: list[tuple[tuple[str, ...], Any, Any]] = [((), a, b)]
        while stack:
            parts, x, y = stack.pop()
            ptr = _pointer(parts)
            rule = self.ignore.match(ptr) if parts else None
            if rule is not None:
                if not _same(x, y):
                    detail = {"rule": rule, "text": f"{_brief(x)} vs {_brief(y)} [{rule}]"}
                    self.add(Difference(ptr, "value", detail), ignored=True)
                continue
            kx, ky = _kind(x), _kind(y)
            if kx != ky:
                self.add(Difference(ptr, "type", {"a": kx, "b": ky, "text": f"{kx} vs {ky}"}))
            elif kx == "object":
                for k in y:
                    if k not in x:
                        self.add(
                            Difference(_pointer((*parts, k)), "missing", {"text": "only in b"})
                        )
                for k in x:
                    if k not in y:
                        self.add(Difference(_pointer((*parts, k)), "extra", {"text": "only in a"}))
                stack += [((*parts, k), x[k], y[k]) for k in reversed(list(y)) if k in x]
            elif kx == "array":
                self._array(parts, x, y, stack)
            else:
                self._scalar(ptr, x, y)
        if self.unlisted:
            text = f"{plural(self.unlisted, 'more difference')} not listed"
            self.out.differences.append(
                Difference("", "more", {"count": self.unlisted, "text": text})
            )

    def _array(self, parts: tuple[str, ...], x: list[Any], y: list[Any], stack: list[Any]) -> None:
        ptr = _pointer(parts)
        if len(x) != len(y):
            text = f"{len(x)} items in a, {len(y)} in b"
            length = {"length_a": len(x), "length_b": len(y), "text": text}
            self.add(Difference(ptr, "length", length))
        n = min(len(x), len(y))
        scalar = all(_kind(v) in ("number", "string", "boolean", "null") for v in (*x[:n], *y[:n]))
        if not scalar or self.ignore:
            stack += [((*parts, str(i)), x[i], y[i]) for i in reversed(range(n))]
            return
        # An array of scalars is one difference: how many items, which first, how far.
        bad: list[int] = []
        count = tolerated = 0
        max_abs = 0.0
        kinds: set[str] | None = set()
        for i in range(n):
            s = self._same_scalar(ptr, x[i], y[i])
            if s is True:
                continue
            numbers = _kind(x[i]) == _kind(y[i]) == "number"
            if numbers and math.isfinite(x[i] - y[i]):
                max_abs = max(max_abs, abs(x[i] - y[i]))
            if s is None:
                tolerated += 1
                continue
            count += 1
            if len(bad) < self.max_items:
                bad.append(i)
            kinds = _volatile(kinds, x[i], y[i])
        detail: dict[str, Any] = {"elements": n, "max_abs": max_abs}
        if count:
            first = bad[0] if bad else None
            text = differ(count, "item", n)
            if first is not None:
                text += f" (first [{first}]: {_brief(x[first])} vs {_brief(y[first])})"
            d = Difference(ptr, "values", detail | {"count": count, "first": bad, "text": text})
            self.add(mark(d, "+".join(sorted(kinds)) if kinds else None, ignore_pointers=[ptr]))
        if tolerated:
            detail |= {"count": tolerated, "within_tolerance": True} | self.tol.describe(ptr)
            detail["text"] = f"{plural(tolerated, 'item')} within tolerance; max abs {max_abs:.6g}"
            self.add(Difference(ptr, "values", detail), ignored=True)

    def _same_scalar(self, ptr: str, x: Any, y: Any) -> bool | None:
        if _kind(x) != _kind(y):
            return False
        if _kind(x) == "number":
            return self.tol.close(float(x), float(y), ptr)
        return bool(x == y)

    def _scalar(self, ptr: str, x: Any, y: Any) -> None:
        s = self._same_scalar(ptr, x, y)
        if s is True:
            return
        detail: dict[str, Any] = {"a": _jsonable(x), "b": _jsonable(y)}
        detail["text"] = f"{_brief(x)} vs {_brief(y)}"
        if s is None:
            detail |= {"within_tolerance": True} | self.tol.describe(ptr)
            detail["text"] += " (within tolerance)"
            self.add(Difference(ptr, "value", detail), ignored=True)
            return
        kinds = _volatile(set(), x, y)
        self.add(
            mark(
                Difference(ptr, "value", detail),
                "+".join(sorted(kinds or ())) or None,
                ignore_pointers=[ptr],
            )
        )


def _volatile(kinds: set[str] | None, x: Any, y: Any) -> set[str] | None:
    if kinds is None or not isinstance(x, str) or not isinstance(y, str):
        return None
    k = volatile_kind(x, y)
    return None if k is None else kinds | set(k.split("+"))


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return _kind(x) == _kind(y) and bool(x == y)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v if not isinstance(v, (list, dict)) else _brief(v)


def _brief(v: Any) -> str:
    if isinstance(v, dict):
        return f"object of {plural(len(v), 'member')}"
    if isinstance(v, list):
        return f"array of {plural(len(v), 'item')}"
    return show(v) if isinstance(v, str) else json.dumps(v)
