"""Values that differ between two runs of the same program: times, UUIDs, hashes, temporary
paths. A difference whose two sides differ only in such values is marked ``volatile`` with the
narrowest policy rule that would ignore it (``detail["suggest"]``); :func:`propose_policy` turns
a whole comparison into that policy (what ``capsa run --check`` proposes)."""

from __future__ import annotations

import re
from typing import Any

from ..format.policy import ComparePolicy, compare_policy
from .base import Comparison, Difference

__all__ = ["line_pattern", "mark", "propose_policy", "volatile_kind"]

_KINDS: list[tuple[str, str]] = [
    (
        "timestamp",
        r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
        r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +(?:\d{1,2} +)?"
        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* +\d{1,2}(?: +\d{4})?"
        r"(?: +\d{2}:\d{2}:\d{2})?(?: +[A-Z]{3,4})?(?: +\d{4})?"
        r"|\d{2}:\d{2}:\d{2}(?:\.\d+)?",
    ),
    ("uuid", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ("hash", r"\b[0-9a-f]{16,}\b|\b[0-9A-F]{16,}\b"),
    ("temporary path", r"/tmp/[\w.+-]+|/var/tmp/[\w.+-]+"),
]
_ANY = re.compile("|".join(f"(?P<k{i}>{rx})" for i, (_, rx) in enumerate(_KINDS)))


def _masked(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each volatile value replaced by NUL, and (kind, value) of each."""
    found: list[tuple[str, str]] = []

    def sub(m: re.Match[str]) -> str:
        i = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        found.append((_KINDS[i][0], m.group(0)))
        return "\0"

    return _ANY.sub(sub, text), found


def volatile_kind(a: str, b: str) -> str | None:
    """The kinds ("timestamp", "uuid+timestamp") of the values that alone tell ``a`` from
    ``b``, or None when something else differs too."""
    if a == b:
        return None
    ma, fa = _masked(a)
    mb, fb = _masked(b)
    if ma != mb or len(fa) != len(fb):
        return None
    kinds = sorted({ka for (ka, va), (kb, vb) in zip(fa, fb, strict=True) if va != vb or ka != kb})
    return "+".join(kinds) or None


def _escape(text: str) -> str:
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def _shape(kind: str, a: str, b: str) -> str:
    """A pattern for the volatile values ``a`` and ``b``: what they share literally, runs of
    digits or letters that differ as ``\\d{n}`` / ``[A-Za-z]{n}``; else their kind's pattern."""
    if kind == "temporary path" and a.rsplit("/", 1)[0] == b.rsplit("/", 1)[0]:
        return _escape(a.rsplit("/", 1)[0]) + r"/[\w.+-]+"
    if kind in ("uuid", "hash") and len(a) == len(b):
        return rf"[0-9a-fA-F-]{{{len(a)}}}"
    token = re.compile(r"\d+|[A-Za-z]+|[^\dA-Za-z]+")
    ta, tb = token.findall(a), token.findall(b)
    if len(ta) == len(tb):
        out = []
        for x, y in zip(ta, tb, strict=True):
            if len(x) == len(y) and x.isdigit() and y.isdigit():
                out.append(rf"\d{{{len(x)}}}")  # tomorrow's equal digits differ
            elif x == y:
                out.append(_escape(x))
            elif len(x) == len(y) and x.isalpha() and y.isalpha():
                out.append(rf"[A-Za-z]{{{len(x)}}}")
            else:
                break
        else:
            return "".join(out)
    return "(?:" + dict(_KINDS)[kind] + ")"


def line_pattern(a: str, b: str) -> str | None:
    """The narrowest regular expression matching both lines when they differ only in volatile
    values: the shared text literally, each volatile value by its shape."""
    if volatile_kind(a, b) is None:
        return None
    masked, found_a = _masked(a)
    _, found_b = _masked(b)
    parts = masked.split("\0")
    rx = _escape(parts[0])
    for (kind, va), (_, vb), lit in zip(found_a, found_b, parts[1:], strict=True):
        rx += (_escape(va) if va == vb else _shape(kind, va, vb)) + _escape(lit)
    return "^" + rx + "$"


def mark(d: Difference, kind: str | None, **suggest: Any) -> Difference:
    """Mark ``d`` volatile (of ``kind``), with the policy fields that would ignore it."""
    if kind:
        d.detail["volatile"] = kind
        d.detail["suggest"] = suggest
    return d


def propose_policy(result: Comparison, base: ComparePolicy | None = None) -> ComparePolicy | None:
    """The narrowest policy under which ``result`` (a comparison under ``base``, None: bytes)
    would not be different: ``base`` — or, under bytes, the policy of the comparator that
    explained the difference — plus the rules its volatile differences suggest. None when a
    difference is not volatile (a real difference no ignore rule should hide)."""
    if result.verdict != "different":
        return base
    method = base.method if base is not None and base.method != "bytes" else result.explained_by
    if not method:
        return None
    current: dict[str, Any] = (
        base.model_dump(exclude={"method"}, exclude_none=True)
        if base is not None and base.method == method
        else {}
    )
    for d in result.diff.differences:
        suggest = d.detail.get("suggest")
        if not d.detail.get("volatile") or not isinstance(suggest, dict) or not suggest:
            return None
        for k, v in suggest.items():
            have = list(current.get(k, ()))
            current[k] = tuple(
                have + [x for x in (v if isinstance(v, list) else [v]) if x not in have]
            )
    return compare_policy(method, **current)
