"""What every comparator returns: named differences, named ignored differences, a verdict.

The comparison seam (ARCHITECTURE.md): a :class:`Comparator` turns two files and a policy into a
:class:`Diff` — every difference between ``a`` and the reference ``b``, and everything the policy
allowed (``ignored``), never silently dropped. The verdict is then the same for every method
(:func:`capsa.compare.compare`): ``identical`` bytes, ``equivalent`` content under the policy, or
``different``. Rendering is the differences' one-line summaries.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol

__all__ = [
    "VERDICTS",
    "Comparator",
    "Comparison",
    "Diff",
    "Difference",
    "Source",
    "differ",
    "plural",
]

Source = str | os.PathLike[str] | BinaryIO | io.RawIOBase
"""A file to compare: a path, or a seekable binary file object (e.g. a bundle member)."""
VERDICTS = ("identical", "equivalent", "different")


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
    return f"{n} {many}"


def differ(n: int, word: str, of: int | None = None) -> str:
    """ "1 cell differs", "3 of 10 entries differ"."""
    verb = "differs" if n == 1 and of is None else "differ"
    return (f"{n} of {plural(of, word)}" if of is not None else plural(n, word)) + " " + verb


@dataclass
class Difference:
    """One difference at one place (a dataset, a branch, a line, a cell, a JSON pointer, …);
    ``detail`` is JSON-ready. Comparators subclass it to phrase their own ``summary``."""

    path: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        what = self.detail.get("text", "")
        return " ".join(x for x in (self.kind, self.path) if x) + (f": {what}" if what else "")

    @property
    def excerpt(self) -> list[str]:
        """Lines shown under the summary (a text comparator's unified diff)."""
        lines = self.detail.get("excerpt")
        return [str(x) for x in lines] if isinstance(lines, list) else []

    @property
    def volatile(self) -> str | None:
        """What kind of run-to-run value alone makes this difference ("timestamp", "uuid", …;
        :mod:`capsa.compare.volatile`), with ``detail["suggest"]`` the rule that ignores it."""
        kind = self.detail.get("volatile")
        return str(kind) if kind else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail,
            "summary": self.summary,
        }


@dataclass
class Diff:
    """Every difference between ``a`` and the reference ``b``; ``ignored``: what the policy
    allowed."""

    a: str
    b: str
    differences: list[Difference] = field(default_factory=list)
    ignored: list[Difference] = field(default_factory=list)
    attachments: dict[str, bytes] = field(default_factory=dict)
    """Files that show the differences, by file-name suffix (the image method's "diff.png");
    callers decide whether and where to write them."""

    @property
    def equal(self) -> bool:
        """Same content under the policy."""
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "equal": self.equal,
            "differences": [d.as_dict() for d in self.differences],
            "ignored": [d.as_dict() for d in self.ignored],
        }


@dataclass
class Comparison:
    """A verdict on two files: ``identical``, ``equivalent`` or ``different``."""

    verdict: str
    diff: Diff
    note: str = ""
    method: str = "bytes"
    """The policy's method."""
    explained_by: str = ""
    """Under ``bytes``: the content comparator that said what differs (e.g. ``hdf5``)."""

    def as_dict(self) -> dict[str, Any]:
        d = {"verdict": self.verdict, "method": self.method} | self.diff.as_dict()
        if self.explained_by:
            d["explained_by"] = self.explained_by
        if self.note:
            d["note"] = self.note
        return d

    def report(self) -> list[str]:
        """Human-readable lines: each difference, each ignored one, then the verdict."""
        lines = []
        for d in self.diff.differences:
            lines += [d.summary, *(f"    {x}" for x in d.excerpt)]
        lines += [f"ignored {d.summary}" for d in self.diff.ignored]
        counts = []
        if self.diff.differences:
            counts.append(plural(len(self.diff.differences), "difference"))
        if self.diff.ignored:
            counts.append(f"{len(self.diff.ignored)} ignored")
        if self.note:
            counts.append(self.note)
        lines.append(self.verdict + (f" ({', '.join(counts)})" if counts else ""))
        return lines


class Comparator(Protocol):
    """Compares two files of one kind under that kind's policy model (capsa.format.policy).

    ``diff`` raises FormatError when a file is not of its kind (or is damaged), UsageError for a
    policy it cannot apply; it never decides the verdict (identical bytes are found before it
    is called). ``max_items`` bounds what is listed per place (first differing indices, lines,
    cells).
    """

    method: ClassVar[str]
    """The policy ``method`` it implements, e.g. "hdf5"."""
    label: ClassVar[str]
    """What it compares, for messages: "HDF5 content"."""

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff: ...
