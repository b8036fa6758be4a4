"""The ``text`` method: the same lines in the same order, streamed line by line (spec/format.md
§7.5 "Text content"). The first differing lines are shown as a short unified diff; lines the
policy's ``ignore_lines`` match are left out of both files and named as ignored."""

from __future__ import annotations

import difflib
from collections import deque
from typing import Any, ClassVar

from ..format.policy import TextPolicy
from .base import Diff, Difference, Source, differ
from .rules import LineFilter, Lines, ignored_lines, open_binary, own_policy
from .volatile import line_pattern, mark, volatile_kind

__all__ = ["TextComparator", "is_text"]

CONTEXT = 3
EXCERPT_LINES = 12
"""Lines of each file after the first difference that go into the unified diff."""
MAX_PATTERNS = 20
SHOWN_BYTES = 200


def is_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes (a multi-byte character cut at the end of ``head`` is fine)."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3 and e.reason == "unexpected end of data"
    return True


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _shown(line: bytes) -> bytes:
    """A line as the excerpt keeps it: long ones cut, with their length and a digest so that
    two long lines that differ after the cut still differ."""
    if len(line) <= SHOWN_BYTES:
        return line
    import hashlib

    tag = hashlib.sha256(line).hexdigest()[:12]
    return line[:SHOWN_BYTES] + f"… ({len(line)} bytes, sha256 {tag}…)".encode()


class TextComparator:
    method: ClassVar[str] = "text"
    label: ClassVar[str] = "text"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        rules = LineFilter(own_policy(policy, TextPolicy).ignore_lines)
        la, lb = names or (str(a), str(b))
        out = Diff(la, lb)
        with open_binary(a, la) as fa, open_binary(b, lb) as fb:
            ia, ib = Lines(fa, rules), Lines(fb, rules)
            d = _compare_lines(ia, ib, max_items)
        if d is not None:
            out.differences.append(d)
        out.ignored += ignored_lines(ia, ib, max_items)
        return out


def _compare_lines(ia: Lines, ib: Lines, max_items: int) -> Difference | None:
    before: deque[bytes] = deque(maxlen=CONTEXT)
    xa, xb = iter(ia), iter(ib)
    first: tuple[int, int] | None = None
    after_a: list[bytes] = []
    after_b: list[bytes] = []
    kept_a = kept_b = differing = 0
    patterns: list[str] | None = []
    kinds: set[str] = set()
    while True:
        pa, pb = next(xa, None), next(xb, None)
        kept_a += pa is not None
        kept_b += pb is not None
        if pa is None and pb is None:
            break
        if first is None:
            if pa is not None and pb is not None and pa[1] == pb[1]:
                before.append(_shown(pa[1]))
                continue
            first = (pa[0] if pa else ia.count + 1, pb[0] if pb else ib.count + 1)
        if len(after_a) < EXCERPT_LINES and pa is not None:
            after_a.append(_shown(pa[1]))
        if len(after_b) < EXCERPT_LINES and pb is not None:
            after_b.append(_shown(pb[1]))
        if pa is None or pb is None or pa[1] != pb[1]:
            differing += 1
            if patterns is not None:
                ta, tb = (_text(pa[1]), _text(pb[1])) if pa and pb else ("", "")
                rx = line_pattern(ta, tb) if pa and pb else None
                if rx is None or len(patterns) >= MAX_PATTERNS:
                    patterns = None
                else:
                    kinds.update((volatile_kind(ta, tb) or "").split("+"))
                    if rx not in patterns:
                        patterns.append(rx)
    if first is None:
        if ia.no_final_newline != ib.no_final_newline:
            side = "a" if ia.no_final_newline else "b"
            return Difference(
                f"line {ia.count}",
                "lines",
                {"text": f"no newline at the end of {side}", "lines_a": ia.count},
            )
        return None
    excerpt = list(
        difflib.unified_diff(
            [_text(x) for x in (*before, *after_a)],
            [_text(x) for x in (*before, *after_b)],
            "a",
            "b",
            n=CONTEXT,
            lineterm="",
        )
    )[2:]  # the ---/+++ header says nothing here
    detail: dict[str, Any] = {
        "line_a": first[0],
        "line_b": first[1],
        "lines_a": ia.count,
        "lines_b": ib.count,
        "excerpt": excerpt[: 2 * EXCERPT_LINES + 2 * CONTEXT + 1],
    }
    at = f"line {first[0]}" if first[0] == first[1] else f"line {first[0]} of a, {first[1]} of b"
    if kept_a == kept_b:
        detail["differing"] = differing
        text = f"{differ(differing, 'line', kept_a)} (first at {at})"
    else:
        text = f"first difference at {at}; a has {ia.count} lines, b has {ib.count}"
    if ia.dropped_count or ib.dropped_count:
        text += " (ignored lines left out)"
    detail["text"] = text
    d = Difference(f"line {first[1]}", "lines", detail)
    if kept_a == kept_b and patterns:
        mark(d, "+".join(sorted(k for k in kinds if k)), ignore_lines=patterns)
    return d
