"""The Dask executor: every step is a task on a Dask cluster, submitted as soon as the steps it
depends on are done (spec/replay.md §2.2).

The cluster is one that runs (``scheduler``, ``tcp://HOST:PORT``) or one started here and torn
down afterwards: ``local`` (``distributed.LocalCluster``) or workers as batch jobs through
dask-jobqueue (``slurm``, ``htcondor``, ``pbs``). Workers open the bundle at its path (a file
system they share with this machine), materialise images through their own unpacked-image
cache, run the step and compare its outputs themselves: only reports travel back. dask and
dask-jobqueue are imported here only (the ``dask`` extra).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import Error, ReplayError, UsageError
from ..report import OutputReport, StepReport
from ..runner import StepContext, StepRunner, raise_task_error, run_task
from .base import Events, Plan

__all__ = ["CLUSTERS", "DaskExecutor", "parse_cluster_options"]

CLUSTERS = ("local", "slurm", "htcondor", "pbs")
_JOBQUEUE = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}
CONNECT_TIMEOUT = float(os.environ.get("CAPSA_DASK_CONNECT_TIMEOUT", "30"))
"""Seconds to wait for a scheduler to answer."""
START_TIMEOUT = float(os.environ.get("CAPSA_DASK_START_TIMEOUT", "300"))
"""Seconds to wait for a first worker (a batch job may queue), and for one to come back when
every worker is gone."""
_POLL = 2.0


def parse_cluster_options(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--cluster-option``) as a mapping."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(
                f"--cluster-option {item!r} is not KEY=VALUE",
                hint="for example --cluster-option queue=debug --cluster-option walltime=01:00:00",
            )
        out[key] = value
    return out


def _value(text: str) -> Any:
    """A cluster option's value: JSON when it reads as JSON (numbers, true, lists), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _require() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--executor dask needs the Python packages dask[distributed] and dask-jobqueue, "
            "which are not installed",
            hint="pip install 'capsa[dask]'",
        ) from None
    return distributed


def _remote(
    ctx: StepContext, index: int, deps: set[int], reports: Mapping[int, StepReport]
) -> tuple[str, object, str]:
    """What a worker runs: the step, and the worker's address for error messages."""
    from distributed import get_worker

    kind, value = run_task(ctx, index, deps, reports)
    return kind, value, get_worker().address


class DaskExecutor:
    name = "dask"

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        cluster: str | None = None,
        cluster_options: dict[str, str] | None = None,
        workers: int | None = None,
    ) -> None:
        if scheduler and cluster:
            raise UsageError("give either --scheduler or --cluster, not both")
        if cluster is not None and cluster not in CLUSTERS:
            raise UsageError(f"no cluster kind {cluster!r}", hint=f"one of {', '.join(CLUSTERS)}")
        if scheduler and (cluster_options or workers):
            raise UsageError(
                "--cluster-option and --workers are for a cluster capsa starts (--cluster)",
                hint="an existing scheduler's workers are started by whoever runs it",
            )
        self.scheduler = scheduler
        self.cluster = cluster or (None if scheduler else "local")
        self.options = dict(cluster_options or {})
        self.workers = workers

    def run(self, plan: Plan, runner: StepRunner, events: Events) -> dict[int, StepReport]:
        distributed = _require()
        with contextlib.ExitStack() as stack:
            if self.cluster is not None:
                cluster = stack.enter_context(self._started(Path(plan.context.root)))
                where = f"the {self.cluster} cluster"
                address = cluster.scheduler_address
            else:
                assert self.scheduler is not None
                address = where = self.scheduler
            try:
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except ValueError as e:
                raise UsageError(
                    f"not a Dask scheduler address: {_first_line(e)}",
                    where=address,
                    hint="give --scheduler tcp://HOST:PORT",
                ) from None
            except (OSError, TimeoutError) as e:
                raise ReplayError(
                    "no Dask scheduler answers at this address",
                    where=address,
                    hint=f"start one (`dask scheduler`) or check the address ({_first_line(e)})",
                ) from None
            stack.callback(client.close)
            link = _dashboard(client)
            if link:
                events.note(f"Dask dashboard: {link}")
            try:
                client.wait_for_workers(1, timeout=START_TIMEOUT)
            except (OSError, TimeoutError):
                raise ReplayError(
                    f"no Dask worker joined {where} within {START_TIMEOUT:.0f} s",
                    where=address,
                    hint="the batch system may have refused or not yet started the worker "
                    f"jobs; their logs are in {plan.context.root}/dask-jobs",
                ) from None
            return _Schedule(client, plan, events, address).run()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _started(self, root: Path) -> Iterator[Any]:
        """Start the cluster, and close it (cancelling batch jobs) however the replay ends."""
        # Tornado logs a failed job submission a second time, as a traceback on stderr.
        tornado_log = logging.getLogger("tornado.application")
        level = tornado_log.level
        tornado_log.setLevel(logging.CRITICAL)
        try:
            cluster = self._start(root)
            try:
                yield cluster
            finally:
                with contextlib.suppress(Exception):
                    cluster.close()
        finally:
            tornado_log.setLevel(level)

    def _start(self, root: Path) -> Any:
        kind = self.cluster
        kwargs = {k: _value(v) for k, v in self.options.items()}
        try:
            if kind == "local":
                distributed = _require()
                _check_local_options(distributed, kwargs)
                kw: dict[str, Any] = {
                    "n_workers": self.workers or os.cpu_count() or 1,
                    "threads_per_worker": 1,
                    "processes": True,
                    "host": "127.0.0.1",
                    "dashboard_address": "127.0.0.1:0",
                    "silence_logs": logging.ERROR,
                }
                cluster = distributed.LocalCluster(**(kw | kwargs))
            else:
                assert kind is not None
                # dask_jobqueue.runner replaces the SIGINT handler on import with one that
                # exits 0: Ctrl-C would end capsa "successfully", the jobs left running.
                handler = signal.getsignal(signal.SIGINT)
                try:
                    import dask_jobqueue
                except ImportError:
                    raise UsageError(
                        f"--cluster {kind} needs the Python package dask-jobqueue",
                        hint="pip install 'capsa[dask]'",
                    ) from None
                finally:
                    if handler is not None:
                        signal.signal(signal.SIGINT, handler)
                cls = getattr(dask_jobqueue, _JOBQUEUE[kind])
                _check_jobqueue_options(dask_jobqueue, cls, kwargs)
                logs = root / "dask-jobs"
                logs.mkdir(exist_ok=True)
                kw = {
                    "cores": 1,
                    "memory": "2GiB",
                    "processes": 1,
                    "log_directory": str(logs),
                    "name": "capsa-replay",
                    "silence_logs": logging.CRITICAL,
                }
                ours = {"dashboard_address": ":0"}  # not the default 8787 another one holds
                given = kwargs.pop("scheduler_options", None)
                kw["scheduler_options"] = ours | (given if isinstance(given, dict) else {})
                cluster = cls(**(kw | kwargs))
                _submit_jobs(cluster, self.workers or 1, kind)
        except (TypeError, ValueError, KeyError) as e:
            raise UsageError(
                f"the {kind} cluster rejects its options: {_first_line(e)}",
                hint="--cluster-option KEY=VALUE gives the keyword arguments of "
                + _cluster_class(kind),
            ) from None
        except (OSError, RuntimeError) as e:
            raise ReplayError(f"cannot start the {kind} cluster: {_first_line(e)}") from None
        return cluster


def _cluster_class(kind: str | None) -> str:
    if kind == "local":
        return "distributed.LocalCluster"
    return f"dask_jobqueue.{_JOBQUEUE.get(kind or '', '')}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].split(". Very likely")[0]


def _submit_jobs(cluster: Any, n: int, kind: str) -> None:
    """Submit the worker jobs now, so that a job the batch system refuses (a queue that does
    not exist, more memory than a node has) is one line with its reason, not a silent wait."""

    async def scale() -> None:
        # In the cluster's loop, so that the submission scale() schedules is this one and its
        # failure is raised here (a second one would find the failed jobs "started").
        cluster.scale(n)
        await cluster._correct_state()

    try:
        cluster.sync(scale)
    except RuntimeError as e:
        # The refused jobs never started: forget them, or closing the cluster trips on them.
        for name, job in list(cluster.workers.items()):
            if getattr(job, "job_id", None) is None:
                del cluster.workers[name]
                cluster.worker_spec.pop(name, None)
                cluster._created.discard(job)
        with contextlib.suppress(Exception):
            cluster.close()
        text = str(e)
        reason = text.partition("stderr:")[2].strip().splitlines() or text.splitlines()
        raise UsageError(
            f"the {kind} batch system refuses the worker job: {reason[0].strip()}",
            hint="change the job with --cluster-option (queue=, memory=, walltime=, account=)",
        ) from None


def _check_jobqueue_options(jobqueue: Any, cls: Any, options: Mapping[str, Any]) -> None:
    """dask-jobqueue finds an unknown option only half-way through making the cluster (which
    then warns that it was never closed): refuse it first."""
    import inspect

    known: set[str] = set()
    for f in (cls.__init__, cls.job_cls.__init__, jobqueue.core.Job.__init__):
        known.update(inspect.signature(f).parameters)
    for name in options:
        if name not in known:
            raise TypeError(f"unexpected keyword argument {name!r}")


def _check_local_options(distributed: Any, options: Mapping[str, Any]) -> None:
    """LocalCluster passes unknown options on to its workers, which fail to start with a
    traceback in the log: refuse them before anything starts."""
    import inspect

    known: set[str] = set()
    for cls in (distributed.LocalCluster, distributed.Nanny, distributed.Worker):
        known.update(inspect.signature(cls.__init__).parameters)
    for name in options:
        if name not in known:
            raise TypeError(f"unexpected keyword argument {name!r}")


def _dashboard(client: Any) -> str:
    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return ""
        return str(client.dashboard_link)
    except Exception:
        return ""


class _Schedule:
    """Submit each step when its dependencies are done; collect reports as they come."""

    def __init__(self, client: Any, plan: Plan, events: Events, address: str) -> None:
        self.client, self.plan, self.events, self.address = client, plan, events, address
        self.reports: dict[int, StepReport] = dict(plan.done)
        self.running: dict[Any, int] = {}
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.token = secrets.token_hex(4)
        self.waiting: dict[int, int] = {}
        self.dependants: dict[int, list[int]] = {}
        for i in plan.selected:
            if i in self.reports:
                continue
            left = [d for d in plan.deps[i] if d not in self.reports]
            self.waiting[i] = len(left)
            for d in left:
                self.dependants.setdefault(d, []).append(i)

    def submit(self, i: int) -> None:
        del self.waiting[i]
        fut = self.client.submit(
            _remote,
            self.plan.context,
            i,
            self.plan.deps[i],
            self.plan.dep_reports(i, self.reports),
            key=f"capsa-step-{i + 1:05d}-{self.token}",
            pure=False,
        )
        self.running[fut] = i
        self.events.started(i)
        fut.add_done_callback(self.finished.put)

    def run(self) -> dict[int, StepReport]:
        try:
            for i in [i for i, n in self.waiting.items() if n == 0]:
                self.submit(i)
            idle_since = time.monotonic()
            while self.running:
                try:
                    fut = self.finished.get(timeout=_POLL)
                except queue.Empty:
                    idle_since = self._check_workers(idle_since)
                    continue
                idle_since = time.monotonic()
                i = self.running.pop(fut)
                report = self._result(fut, i)
                self.reports[i] = report
                self.events.finished(i, report)
                for j in self.dependants.get(i, ()):
                    self.waiting[j] -= 1
                    if self.waiting[j] == 0:
                        self.submit(j)
            if self.waiting:  # pragma: no cover - the step graph is acyclic
                raise ReplayError("step dependencies cannot be satisfied")
            return self.reports
        finally:
            if self.running:  # Ctrl-C or an error: nothing of this replay keeps running
                with contextlib.suppress(Exception):
                    self.client.cancel(list(self.running), force=True)

    def _result(self, fut: Any, i: int) -> StepReport:
        from distributed import KilledWorker

        step = self.plan.steps[i]
        try:
            kind, value, worker = fut.result()
        except KilledWorker:
            return StepReport(
                step.name,
                "failed",
                recorded_exit_code=step.exit_code,
                reason="the Dask worker running it died (out of memory, killed, or its batch "
                "job ended)",
                # So that the steps reading them are skipped, as after any failed step.
                outputs=[OutputReport(o.path, "missing", o.digest) for o in step.outputs],
            )
        except Error:
            raise
        except Exception as e:
            if self.client.status not in ("running", "connecting"):
                raise ReplayError(
                    "lost the connection to the Dask scheduler", where=self.address
                ) from None
            raise ReplayError(
                f"step {step.name} could not run on the cluster: {_first_line(e)}",
                where=self.address,
            ) from None
        if kind == "error":
            raise_task_error(value, worker)
        assert isinstance(value, StepReport)
        return value

    def _check_workers(self, idle_since: float) -> float:
        """Raise when no worker has been there for START_TIMEOUT seconds (every batch job
        ended, or the scheduler went away)."""
        try:
            n = len(self.client.scheduler_info().get("workers", {}))
        except Exception:
            n = 0
            if self.client.status not in ("running", "connecting"):
                raise ReplayError(
                    "lost the connection to the Dask scheduler", where=self.address
                ) from None
        if n:
            return time.monotonic()
        if time.monotonic() - idle_since > START_TIMEOUT:
            raise ReplayError(
                f"no Dask worker has been left for {START_TIMEOUT:.0f} s to run the remaining "
                f"{len(self.running) + len(self.waiting)} steps",
                where=self.address,
                hint="the worker jobs may have ended (wall time)",
            )
        return idle_since
