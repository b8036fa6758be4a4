"""Which differences are run-to-run noise, and the narrowest policy that accepts them.

Used twice: replay prints the exact flags that would accept a ``different`` output whose
differences are all volatile (a UUID-like attribute, a timestamp-like value, HDF5 object times),
and ``capsa run --check`` records the narrowest policy that makes two runs of a step equivalent.
A difference is volatile when the comparator marks it so (``detail["volatile"]``), or for HDF5 when
it is an attribute whose values look like a UUID or a time stamp; nothing else is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..format.policy import ComparePolicy, Hdf5Policy
from .base import Comparison, Difference

__all__ = ["Proposal", "is_volatile", "narrowest", "suggest_flags"]

_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


def _looks_volatile(value: object) -> bool:
    text = str(value)
    return bool(_UUID.search(text) or _TIME.search(text))


def is_volatile(d: Difference) -> bool:
    if d.detail.get("volatile"):
        return True
    if d.kind == "attribute" and "only_in" not in d.detail and "dtypes" not in d.detail:
        a, b = d.detail.get("a"), d.detail.get("b")
        return _looks_volatile(a) and _looks_volatile(b)
    return False


@dataclass
class Proposal:
    """The narrowest policy that accepts the differences found, and what it accepts."""

    policy: ComparePolicy | None
    accepted: list[Difference] = field(default_factory=list)
    rest: list[Difference] = field(default_factory=list)
    """Differences no policy was proposed for (not volatile): the output is not reproducible."""


def narrowest(result: Comparison) -> Proposal:
    """For a comparison made under the content comparator's default policy (``result.method``
    names it): the smallest policy under which the files would be equivalent, if the remaining
    differences are all volatile."""
    diffs = result.diff.differences
    if result.verdict == "identical":
        return Proposal(None)
    noisy = [d for d in diffs if is_volatile(d)]
    rest = [d for d in diffs if not is_volatile(d)]
    if rest:
        return Proposal(None, noisy, rest)
    if (result.explained_by or result.method) == "hdf5":
        rules = tuple(sorted({f"{d.path}@{d.detail['attribute']}" for d in noisy}))
        return Proposal(Hdf5Policy(ignore_attrs=rules), noisy)
    return Proposal(None, [], noisy)


def suggest_flags(path: str, result: Comparison) -> list[str]:
    """``capsa pack`` flags that would accept this ``different`` output (empty: none would)."""
    if result.verdict != "different":
        return []
    proposal = narrowest(result)
    policy = proposal.policy
    if policy is None or proposal.rest:
        return []
    flags = [f"--compare {path}={policy.method}"]
    if isinstance(policy, Hdf5Policy):
        flags += [f"--ignore-attr {path}={rule}" for rule in policy.ignore_attrs]
    return flags
