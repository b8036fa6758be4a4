"""The narrowest policy that accepts a comparison's run-to-run noise, and the flags that say it.

Used twice: replay prints the exact ``capsa pack`` flags that would accept a ``different`` output
whose differences are all volatile, and ``capsa run --check`` records the narrowest policy that
makes two runs of a step equivalent. A difference is volatile when its comparator marks it so
(:mod:`.volatile`: a time, a UUID, a hash, a temporary path); nothing else is guessed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..format.policy import ComparePolicy
from .base import Comparison, Difference
from .options import OPTIONS
from .volatile import propose_policy

__all__ = ["Proposal", "narrowest", "suggest_flags"]


@dataclass
class Proposal:
    """The narrowest policy that accepts the differences found, and what it accepts."""

    policy: ComparePolicy | None
    accepted: list[Difference] = field(default_factory=list)
    rest: list[Difference] = field(default_factory=list)
    """Differences no policy was proposed for (not volatile): the output is not reproducible."""


def narrowest(result: Comparison, base: ComparePolicy | None = None) -> Proposal:
    """For ``result``, a comparison made under ``base`` (None: bytes): ``base`` widened by the
    rules its volatile differences suggest, when every difference is volatile."""
    if result.verdict != "different":
        return Proposal(None)
    diffs = result.diff.differences
    noisy = [d for d in diffs if d.volatile]
    rest = [d for d in diffs if not d.volatile]
    policy = None if rest else propose_policy(result, base)
    if policy is None:
        return Proposal(None, noisy, rest or noisy)
    return Proposal(policy, noisy)


def suggest_flags(path: str, result: Comparison, base: ComparePolicy | None = None) -> list[str]:
    """``capsa pack`` flags that would accept this ``different`` output (empty: none would)."""
    proposal = narrowest(result, base)
    policy = proposal.policy
    if policy is None or proposal.rest:
        return []
    flags = [f"--compare {shlex.quote(f'{path}={policy.method}')}"]
    for o in OPTIONS:
        value = getattr(policy, o.field, None)
        if o.many and isinstance(value, tuple):
            flags += [f"{o.flag} {shlex.quote(f'{path}={v}')}" for v in value]
    return flags
