"""The ``csv`` method (and TSV with ``delimiter``): the same table, read row by row in bounded
memory (spec/format.md §7.5 "Tables"). Header, row count, then each cell by column name:
numbers as numbers (NaN equals NaN, with tolerances), anything else as text."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import FormatError
from ..format.policy import CsvPolicy
from .base import Diff, Difference, Source, differ, plural
from .rules import (
    Globs,
    LineFilter,
    Lines,
    Tolerances,
    ignored_lines,
    open_binary,
    own_policy,
    show,
)
from .text import is_text
from .volatile import mark, volatile_kind

__all__ = ["CsvComparator", "csv_defaults", "is_csv"]

DELIMITERS = (",", "\t", ";")


def _sniff(head: bytes) -> str | None:
    if not is_text(head):
        return None
    text = head.decode("utf-8", "ignore")
    lines = text.splitlines()
    if len(head) >= 4096 and not text.endswith("\n"):
        lines = lines[:-1]  # the head cut the last line
    lines = [x for x in lines[:50] if x.strip()]
    if len(lines) < 2:
        return None
    for d in DELIMITERS:
        try:
            widths = {len(r) for r in csv.reader(lines, delimiter=d)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 2:
            return d
    return None


def is_csv(head: bytes) -> bool:
    """At least two lines with the same number (≥ 2) of fields, comma, tab or semicolon."""
    return _sniff(head) is not None


def csv_defaults(head: bytes) -> dict[str, Any]:
    d = _sniff(head)
    return {"delimiter": d} if d and d != "," else {}


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


@dataclass
class _Column:
    name: str
    count: int = 0
    first: list[dict[str, Any]] = field(default_factory=list)
    tolerated: int = 0
    max_abs: float = 0.0
    volatile: set[str] | None = field(default_factory=set)


def _rows(lines: Lines, delimiter: str, label: str) -> Any:
    def text() -> Any:
        for _, line in lines:
            yield line.decode("utf-8", "replace")

    reader = csv.reader(text(), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if row:
                yield lines.count, row
    except csv.Error as e:
        raise FormatError(f"line {lines.count}: not CSV: {e}", where=label) from None


def _width(row: list[str], width: int, line: int, label: str) -> None:
    if len(row) != width:
        raise FormatError(
            f"line {line}: {plural(len(row), 'field')} where the header has {width}",
            where=label,
            hint="a table needs the same number of fields in every row",
        )


class CsvComparator:
    method: ClassVar[str] = "csv"
    label: ClassVar[str] = "CSV content"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        policy = own_policy(policy, CsvPolicy)
        la, lb = names or (str(a), str(b))
        out = Diff(la, lb)
        rules = LineFilter(policy.ignore_lines)
        with open_binary(a, la) as fa, open_binary(b, lb) as fb:
            ia, ib = Lines(fa, rules), Lines(fb, rules)
            _Table(policy, max_items, out, (la, lb)).run(
                _rows(ia, policy.delimiter, la), _rows(ib, policy.delimiter, lb)
            )
        out.ignored += ignored_lines(ia, ib, max_items)
        return out


class _Table:
    def __init__(self, policy: CsvPolicy, max_items: int, out: Diff, labels: tuple[str, str]):
        self.ignore = Globs(policy.ignore_columns)
        self.tol = Tolerances(policy)
        self.max_items = max_items
        self.out = out
        self.labels = labels

    def run(self, ra: Any, rb: Any) -> None:
        ha, hb = next(ra, None), next(rb, None)
        if ha is None or hb is None:
            if (ha is None) != (hb is None):
                side = "a" if ha is None else "b"
                self.out.differences.append(Difference("", "rows", {"text": f"{side} is empty"}))
            return
        (_, head_a), (_, head_b) = ha, hb
        pairs = self._header(head_a, head_b)
        cols = {name: _Column(name) for name, _, _ in pairs}
        nrows = [0, 0]
        while True:
            xa, xb = next(ra, None), next(rb, None)
            if xa is None or xb is None:
                # Rows beyond the shorter file are counted (and checked), not compared.
                for x, rest, width, k in ((xa, ra, len(head_a), 0), (xb, rb, len(head_b), 1)):
                    for line, row in [x, *rest] if x is not None else []:
                        _width(row, width, line, self.labels[k])
                        nrows[k] += 1
                break
            nrows[0] += 1
            nrows[1] += 1
            (line_a, row_a), (line_b, row_b) = xa, xb
            _width(row_a, len(head_a), line_a, self.labels[0])
            _width(row_b, len(head_b), line_b, self.labels[1])
            for name, i, j in pairs:
                self._cell(cols[name], nrows[1], row_a[i], row_b[j])
        nrows_a, nrows_b = nrows
        if nrows_a != nrows_b:
            self.out.differences.append(
                Difference(
                    "",
                    "rows",
                    {
                        "rows_a": nrows_a,
                        "rows_b": nrows_b,
                        "text": f"{nrows_a} rows in a, {nrows_b} in b (beyond the shorter, "
                        "rows are not compared)",
                    },
                )
            )
        for c in cols.values():
            self._report(c)

    def _header(self, ha: list[str], hb: list[str]) -> list[tuple[str, int, int]]:
        """(column, index in a, index in b) of the columns both have and are compared."""

        def keyed(h: list[str]) -> dict[str, int]:
            seen: dict[str, int] = {}
            out = {}
            for i, name in enumerate(h):
                n = seen[name] = seen.get(name, 0) + 1
                out[name if n == 1 else f"{name}#{n}"] = i
            return out

        ka, kb = keyed(ha), keyed(hb)
        if ha != hb:
            detail: dict[str, Any] = {"a": ha, "b": hb}
            missing = [c for c in kb if c not in ka]
            extra = [c for c in ka if c not in kb]
            parts = [f"only in b: {', '.join(missing)}"] if missing else []
            parts += [f"only in a: {', '.join(extra)}"] if extra else []
            if not parts:
                parts = ["the same columns in another order"]
            detail["text"] = "; ".join(parts)
            ignored = all(self.ignore.match(c) for c in missing + extra) and (missing or extra)
            (self.out.ignored if ignored else self.out.differences).append(
                Difference("", "header", detail)
            )
        pairs = []
        for name, j in kb.items():
            if name in ka:
                pairs.append((name, ka[name], j))
        return pairs

    def _cell(self, c: _Column, row: int, a: str, b: str) -> None:
        if a == b:
            return
        na, nb = _number(a), _number(b)
        if na is not None and nb is not None:
            same = self.tol.close(na, nb, c.name)
            if same is True:
                return
            if math.isfinite(na - nb):
                c.max_abs = max(c.max_abs, abs(na - nb))
            if same is None:
                c.tolerated += 1
                return
        c.count += 1
        if len(c.first) < self.max_items:
            c.first.append({"row": row, "a": a, "b": b})
        if c.volatile is not None:
            kind = volatile_kind(a, b)
            if kind is None:
                c.volatile = None
            else:
                c.volatile.update(kind.split("+"))

    def _report(self, c: _Column) -> None:
        rule = self.ignore.match(c.name)
        if c.count:
            where = f"row {c.first[0]['row']}" if c.first else "?"
            detail: dict[str, Any] = {"column": c.name, "count": c.count, "first": c.first}
            text = differ(c.count, "cell")
            if c.first:
                x = c.first[0]
                text += f" (first at {where}: {show(x['a'])} vs {show(x['b'])})"
            if c.max_abs:
                detail["max_abs"] = c.max_abs
                text += f"; max abs {c.max_abs:.6g}"
            detail["text"] = text
            d = Difference(c.name, "column", detail)
            if rule:
                detail["rule"] = rule
                detail["text"] += f" [{rule}]"
                self.out.ignored.append(d)
            else:
                if c.volatile:
                    mark(d, "+".join(sorted(c.volatile)), ignore_columns=[c.name])
                self.out.differences.append(d)
        if c.tolerated:
            detail = {
                "column": c.name,
                "count": c.tolerated,
                "within_tolerance": True,
                "max_abs": c.max_abs,
            } | self.tol.describe(c.name)
            detail["text"] = (
                f"{plural(c.tolerated, 'cell')} within tolerance; max abs {c.max_abs:.6g}"
            )
            self.out.ignored.append(Difference(c.name, "column", detail))
