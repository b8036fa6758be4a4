"""Executors: where replay runs the steps (ARCHITECTURE.md "Executors").

An executor gets a :class:`Plan` (the steps to run, what each depends on, the verdicts a resumed
replay already has) and runs every step once its dependencies are done, reporting each start and
each finished :class:`StepReport` to :class:`Events`. ``local`` is a thread pool in this process;
``dask`` submits the steps as tasks to a Dask scheduler (an existing one, a LocalCluster, or
workers started as Slurm/HTCondor/PBS jobs by dask-jobqueue). A new executor is a module here
with a class implementing :class:`Executor`, added to ``EXECUTORS``.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import UsageError
from .base import Events, Executor, ExecutorOptions, Plan

__all__ = ["EXECUTORS", "Events", "Executor", "ExecutorOptions", "Plan", "make_executor"]


def _local(o: ExecutorOptions) -> Executor:
    from .local import LocalExecutor

    return LocalExecutor(o.jobs)


def _dask(o: ExecutorOptions) -> Executor:
    from .dask import DaskExecutor

    return DaskExecutor(
        scheduler=o.scheduler,
        cluster=o.cluster,
        cluster_options=dict(o.cluster_options),
        workers=o.workers,
    )


EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {"local": _local, "dask": _dask}


def make_executor(name: str, options: ExecutorOptions) -> Executor:
    if name not in EXECUTORS:
        raise UsageError(f"no executor {name!r}", hint=f"choose one of {', '.join(EXECUTORS)}")
    if name != "dask" and (options.scheduler or options.cluster or options.cluster_options):
        raise UsageError(
            "--scheduler, --cluster and --cluster-option need --executor dask",
        )
    return EXECUTORS[name](options)
