"""What every executor gets and gives: the plan, the engine's callbacks, the protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...format.manifest import Step
from ..report import StepReport
from ..runner import StepContext, StepRunner

__all__ = ["Events", "Executor", "ExecutorOptions", "Plan"]


@dataclass
class Plan:
    context: StepContext
    steps: Sequence[Step]
    selected: list[int]
    deps: Mapping[int, set[int]]
    """Per selected step, the selected steps it waits for (empty in isolated mode)."""
    done: dict[int, StepReport] = field(default_factory=dict)
    """Steps a resumed replay does not run again (their journaled reports)."""

    def ready(self, i: int, reports: Mapping[int, StepReport]) -> bool:
        return all(d in reports for d in self.deps[i])

    def dep_reports(self, i: int, reports: Mapping[int, StepReport]) -> dict[int, StepReport]:
        """What step ``i`` needs of the finished steps: the reports of its dependencies."""
        return {d: reports[d] for d in self.deps[i]}


@dataclass
class Events:
    """Callbacks of the engine; executors call them from their scheduling thread."""

    started: Callable[[int], None] = lambda i: None
    finished: Callable[[int, StepReport], None] = lambda i, r: None
    note: Callable[[str], None] = lambda text: None


class Executor(Protocol):
    name: str

    def run(self, plan: Plan, runner: StepRunner, events: Events) -> dict[int, StepReport]:
        """Run every selected step not in ``plan.done``; return all reports (``done`` too).
        ``runner`` runs a step in this process (the bundle is open); a distributed executor
        makes its workers' own from ``plan.context`` instead. A capsa error that stops the
        replay is raised after the running steps were cancelled."""
        ...


@dataclass(frozen=True)
class ExecutorOptions:
    jobs: int = 1
    scheduler: str | None = None
    cluster: str | None = None
    cluster_options: Mapping[str, str] = field(default_factory=dict)
    workers: int | None = None
