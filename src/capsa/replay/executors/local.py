"""The local executor: steps in a thread pool of this process, at most ``jobs`` at a time."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from ...errors import ReplayError, RuntimeError_
from ..report import StepReport
from ..runner import StepRunner
from .base import Events, Plan

__all__ = ["LocalExecutor"]


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def run(self, plan: Plan, runner: StepRunner, events: Events) -> dict[int, StepReport]:
        reports = dict(plan.done)
        pending = [i for i in plan.selected if i not in reports]
        running: dict[Future[StepReport], int] = {}
        with ThreadPoolExecutor(self.jobs) as pool:
            try:
                while pending or running:
                    ready = [i for i in pending if plan.ready(i, reports)]
                    for i in ready[: max(0, self.jobs - len(running))]:
                        pending.remove(i)
                        events.started(i)
                        fut = pool.submit(
                            runner.run_step,
                            i,
                            plan.steps[i],
                            plan.deps[i],
                            plan.dep_reports(i, reports),
                        )
                        running[fut] = i
                    if not running:  # pragma: no cover
                        raise ReplayError("step dependencies cannot be satisfied")
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = running.pop(fut)
                        reports[i] = fut.result()
                        events.finished(i, reports[i])
            except (RuntimeError_, KeyboardInterrupt):
                for f in running:
                    f.cancel()
                raise
        return reports
