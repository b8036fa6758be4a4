"""What replay found, as plain data: per output a verdict, per step a status (spec/replay.md §3).

``capsa replay --json`` and the attestation predicate are these dataclasses as dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["OutputReport", "ReplayReport", "StepReport"]


@dataclass
class OutputReport:
    path: str
    verdict: str  # identical | equivalent | different | missing
    expected: str
    found: str | None = None
    policy: str = "bytes"
    differences: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    accept_with: list[str] = field(default_factory=list)
    """For a ``different`` output whose differences are all volatile: the comparison options
    (``capsa run`` / ``capsa pack --from-journal``) that would accept it."""


NO_IMAGE = "no image"
"""The reason of a step recorded without an image (format 1.3): never run, not a failure."""


@dataclass
class StepReport:
    name: str
    status: str  # ok | failed | timeout | skipped
    exit_code: int | None = None
    recorded_exit_code: int = 0
    duration_s: float = 0.0
    stderr_tail: str = ""
    stdout_identical: bool | None = None
    reason: str = ""
    outputs: list[OutputReport] = field(default_factory=list)
    reproducible: bool | None = None
    """``--twice``: whether two replays of the step gave equivalent outputs (None: not run)."""
    twice: list[str] = field(default_factory=list)
    """``--twice``: what differed between the two runs, and the policy that would accept it."""
    resumed: bool = False
    """``--resume``: the verdicts come from the replay journal of an interrupted replay."""


@dataclass
class ReplayReport:
    bundle: str
    bundle_id: str
    runtime: str
    runtime_version: str
    mode: str  # chain | isolated
    steps: list[StepReport] = field(default_factory=list)
    workdir: str | None = None

    @property
    def ok(self) -> bool:
        return all(
            (s.status == "ok" or (s.status == "skipped" and s.reason == NO_IMAGE))
            and s.reproducible is not False
            and all(o.verdict in ("identical", "equivalent") for o in s.outputs)
            for s in self.steps
        )

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for s in self.steps:
            for o in s.outputs:
                c[o.verdict] = c.get(o.verdict, 0) + 1
            if s.status != "ok":
                key = f"skipped ({NO_IMAGE})" if s.reason == NO_IMAGE else s.status
                c[key] = c.get(key, 0) + 1
            if s.reproducible is False:
                c["not reproducible"] = c.get("not reproducible", 0) + 1
        return c
