"""``capsa run --check``: run the step twice in fresh overlays and record the narrowest
comparison policy that makes the two runs equivalent (spec/recording.md §3.5).

Every difference the policy had to accept is named; an output whose runs differ in a way no
policy should hide (a changed physics value, a file written by one run only) makes the step
fail, so nothing non-deterministic reaches a bundle unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .._internal.fs import UnsafePath, open_regular, open_root
from ..compare import compare
from ..compare.registry import entry
from ..compare.suggest import narrowest
from ..errors import Error
from ..format.policy import ComparePolicy, compare_policy

__all__ = ["CheckResult", "check_runs"]


@dataclass
class CheckResult:
    policies: dict[str, ComparePolicy] = field(default_factory=dict)
    """The policy recorded for each output (the user's, or the narrowest one found)."""
    notes: list[str] = field(default_factory=list)
    """One line per output whose runs differed: what its policy accepts."""
    failure: str = ""
    """Why the step is not deterministic, if it is not."""


def _open(root: Path, rel: str) -> BinaryIO:
    fd = open_root(root, follow=False)
    try:
        return os.fdopen(open_regular(fd, rel, where=rel), "rb")
    finally:
        os.close(fd)


def check_runs(
    first: Path,
    second: Path,
    outputs: Iterable[str],
    given: dict[str, ComparePolicy],
    written_twice: Callable[[str], bool],
) -> CheckResult:
    """Compare each output as the second run wrote it (under ``second``) with the first run's
    (under ``first``, the reference)."""
    res = CheckResult(dict(given))
    for rel in outputs:
        if not written_twice(rel):
            res.failure = f"not deterministic: {rel} was written by one run only"
            return res
        names = (f"run 2: {rel}", f"run 1: {rel}")
        try:
            # What a step wrote is read without following links (spec/format.md §2.1).
            a, b = _open(second, rel), _open(first, rel)
        except (FileNotFoundError, UnsafePath):
            continue  # not a regular file: recording refuses or ignores it anyway
        try:
            used = given.get(rel)
            result = compare(a, b, used, names=names)
            content = result.explained_by or result.method
            if result.verdict == "different" and content != "bytes" and rel not in given:
                # Under the content method's own default policy first: what differs as content?
                used = compare_policy(content)
                result = compare(a, b, used, names=names)
        except Error as e:
            res.failure = f"not deterministic: {rel}: cannot compare the two runs ({e.what})"
            return res
        finally:
            a.close()
            b.close()
        if result.verdict == "identical" or (result.verdict == "equivalent" and rel in given):
            continue
        if result.verdict == "equivalent":
            res.policies[rel] = compare_policy(content)
            why = entry(content).equivalent_note or "layout"
            res.notes.append(f"{rel}: the runs differ only where {why}: recorded {content}")
            continue
        proposal = narrowest(result, used)
        if proposal.policy is None or proposal.rest:
            shown = proposal.rest or result.diff.differences
            what = shown[0].summary if shown else result.note or "bytes differ"
            res.failure = f"not deterministic: {rel}: {what}"
            return res
        res.policies[rel] = proposal.policy
        accepted = "; ".join(d.summary for d in proposal.accepted)
        res.notes.append(f"{rel}: recorded {proposal.policy.method} ignoring {accepted}")
    return res
