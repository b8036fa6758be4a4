"""What the content comparators share: path globs, tolerances, regexes over lines, reading
text streamed line by line (spec/format.md §7.5 "Places and globs")."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import math
import os
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import FormatError, NotFoundError, UsageError
from .base import Source

__all__ = ["Globs", "LineFilter", "Tolerances", "open_binary", "own_policy", "show"]


@lru_cache(maxsize=256)
def _segments(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.strip("/").split("/")) if pattern.strip("/") else ()


def _match(pat: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pat:
        return not path
    if pat[0] == "**":
        return any(_match(pat[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pat[0]) and _match(pat[1:], path[1:])


class Globs:
    """Glob patterns over ``/``-separated places: ``*``, ``?`` and ``[…]`` within one segment,
    ``**`` for any number of segments. A pattern also covers everything below what it names."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, place: str) -> str | None:
        """The first pattern that covers ``place`` (or a place above it), or None."""
        if not self.patterns:
            return None
        parts = _segments(place)
        for p in self.patterns:
            pat = _segments(p)
            if "**" in pat:
                if any(_match(pat, parts[:n]) for n in range(len(parts) + 1)):
                    return p
            elif len(parts) >= len(pat) and _match(pat, parts[: len(pat)]):
                return p
        return None


P = TypeVar("P", bound=BaseModel)


def own_policy(policy: Any, model: type[P]) -> P:
    """``policy`` if it is of ``model``; its defaults for None or bytes (explaining a bytes
    difference); a UsageError for another method's policy."""
    if policy is None or getattr(policy, "method", None) == "bytes":
        return model()
    if not isinstance(policy, model):
        method = model.model_fields["method"].default
        raise UsageError(f"the {method} comparator cannot apply a {policy.method} policy")
    return policy


def _num(x: Any) -> float:
    return float(x) if x is not None else 0.0


class Tolerances:
    """``|a - b| <= atol + rtol * |b|`` for numbers at a place: the first ``tolerances`` entry
    whose ``where`` glob matches, else the policy's own ``rtol``/``atol``."""

    def __init__(self, policy: Any) -> None:
        self.default = (_num(getattr(policy, "rtol", None)), _num(getattr(policy, "atol", None)))
        self.given = (
            getattr(policy, "rtol", None) is not None or getattr(policy, "atol", None) is not None
        )
        self.rules = [
            (Globs([t.where]), (_num(t.rtol), _num(t.atol)), t.where)
            for t in getattr(policy, "tolerances", ())
        ]

    def at(self, place: str) -> tuple[float, float]:
        for globs, tol, _ in self.rules:
            if globs.match(place):
                return tol
        return self.default

    def close(self, a: float, b: float, place: str) -> bool | None:
        """True when equal, False when different, None when only within tolerance."""
        if a == b or (math.isnan(a) and math.isnan(b)):
            return True
        rtol, atol = self.at(place)
        if (rtol or atol) and abs(a - b) <= atol + rtol * abs(b):
            return None
        return False

    def describe(self, place: str) -> dict[str, float]:
        rtol, atol = self.at(place)
        return {"rtol": rtol, "atol": atol}


class LineFilter:
    """Regular expressions searched in lines; the rule that matched, for the report."""

    def __init__(self, rules: Sequence[str]) -> None:
        self.rules = [(r, re.compile(r)) for r in rules]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, line: str) -> str | None:
        for text, rx in self.rules:
            if rx.search(line):
                return text
        return None


@contextlib.contextmanager
def open_binary(source: Source, label: str) -> Iterator[io.BufferedIOBase | Any]:
    """A binary file object for ``source`` (rewound; a file object given is not closed)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            f = Path(source).open("rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFoundError("no such file", where=label) from None
        except IsADirectoryError:
            raise FormatError("is a directory, not a file", where=label) from None
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror or e}", where=label) from None
        with f:
            yield f
        return
    source.seek(0)
    try:
        yield source
    finally:
        source.seek(0)


def show(value: Any, width: int = 60) -> str:
    """A value for a one-line report, cut to ``width`` characters."""
    text = value if isinstance(value, str) else repr(value)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= width else text[: width - 1] + "…"


MAX_LINE = 1 << 20
"""Longer lines are read (and compared) in pieces of this many bytes: memory stays bounded."""


class Lines:
    """The lines of a binary stream as (number, bytes without the ending), leaving out those a
    :class:`LineFilter` matches; what it left out is tallied per rule for the report."""

    def __init__(self, f: Any, rules: LineFilter) -> None:
        self.f = f
        self.rules = rules
        self.count = 0
        self.dropped: list[tuple[str, int, str]] = []  # (rule, line number, text), bounded
        self.dropped_count: dict[str, int] = {}
        self.no_final_newline = False

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        while True:
            raw = self.f.readline(MAX_LINE)
            if not raw:
                return
            self.count += 1
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line is raw and len(raw) < MAX_LINE:
                self.no_final_newline = True
            if self.rules:
                text = line.decode("utf-8", "replace").removesuffix("\r")
                rule = self.rules.match(text)
                if rule is not None:
                    self.dropped_count[rule] = self.dropped_count.get(rule, 0) + 1
                    if len(self.dropped) < 1000:
                        self.dropped.append((rule, self.count, text))
                    continue
            yield self.count, line


def ignored_lines(la: Lines, lb: Lines, max_items: int) -> list[Any]:
    """One ignored entry per rule that left lines out: how many in each file, the first ones."""
    from .base import Difference, plural

    out = []
    for rule in dict.fromkeys([*la.dropped_count, *lb.dropped_count]):
        na, nb = la.dropped_count.get(rule, 0), lb.dropped_count.get(rule, 0)
        ka = [(n, t) for r, n, t in la.dropped if r == rule]
        kb = [(n, t) for r, n, t in lb.dropped if r == rule]
        same = (
            na == nb
            and len(ka) == len(kb)
            and all(x[1] == y[1] for x, y in zip(ka, kb, strict=False))
        )
        if same and na == len(ka):
            continue  # the same lines left out of both: nothing differed there
        detail: dict[str, Any] = {"rule": rule, "lines_a": na, "lines_b": nb}
        first = [(x, y) for x, y in zip(ka, kb, strict=False) if x[1] != y[1]][: max(1, max_items)]
        detail["first"] = [{"line_a": x[0], "a": x[1], "line_b": y[0], "b": y[1]} for x, y in first]
        text = f"{plural(na, 'line')} in a and {nb} in b match {rule!r}"
        if first:
            text += (
                f", e.g. line {first[0][0][0]}: {show(first[0][0][1])} vs {show(first[0][1][1])}"
            )
        detail["text"] = text
        out.append(Difference(rule, "lines", detail))
    return out
