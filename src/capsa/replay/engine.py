"""``capsa replay``: re-execute a bundle's steps in their images and compare the outputs
(spec/replay.md). The bundle is only read; every step runs in a fresh work directory. Where the
steps run is the executor's business (``replay/executors/``); how one runs, ``runner.py``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..bundle import Bundle
from ..containers.runtime import get_runtime
from ..containers.runtime.cache import remove_tree
from ..errors import Error, ReplayError, SignatureError, UsageError
from ..format.manifest import Step
from ..recording.graph import StepGraph
from ..signing.keys import PublicKey
from .executors import Events, ExecutorOptions, Plan, make_executor
from .journal import SUFFIX, ReplayJournal, find_journal, load_journal
from .progress import StepProgress
from .report import OutputReport, ReplayReport, StepReport
from .runner import StepContext, StepRunner, step_dir

__all__ = ["EXIT_MISMATCH", "OutputReport", "ReplayReport", "StepReport", "replay"]

EXIT_MISMATCH = 1
"""Exit code when replay ran but an output is different/missing or a step failed."""


def replay(
    bundle_path: str | os.PathLike[str],
    *,
    steps: Sequence[str] = (),
    workdir: str | os.PathLike[str] | None = None,
    runtime: str = "auto",
    jobs: int = 1,
    keep: bool = False,
    isolated: bool = False,
    twice: bool = False,
    keys: Sequence[PublicKey] = (),
    allow_unsigned: bool = False,
    timeout: float | None = None,
    progress: bool | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    cluster: str | None = None,
    cluster_options: Mapping[str, str] | None = None,
    workers: int | None = None,
    resume: bool = False,
) -> ReplayReport:
    """Verify the bundle, then re-run its steps and compare every output (spec/replay.md).

    ``executor`` ``local`` runs ``jobs`` steps at a time in this process; ``dask`` submits them
    to the Dask scheduler at ``scheduler``, or to a ``cluster`` (``local``, ``slurm``,
    ``htcondor``, ``pbs``) of ``workers`` started for this replay. ``resume`` continues the
    newest interrupted replay of this bundle in ``workdir`` from its journal."""
    if not keys and not allow_unsigned:
        raise UsageError(
            "replay checks the bundle's signatures first",
            hint="give the signer's --key PUB, or --allow-unsigned to skip",
        )
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    chosen = make_executor(
        executor,
        ExecutorOptions(jobs, scheduler, cluster, dict(cluster_options or {}), workers),
    )
    with Bundle(bundle_path) as b:
        m = b.manifest
        if not m.steps:
            raise ReplayError(
                "the bundle has no recorded steps",
                where=str(b.path),
                hint="pack it with `capsa pack --from-journal`",
            )
        names = [s.name for s in m.steps]
        for n in steps:
            if n not in names:
                raise UsageError(
                    f"no step named {n!r}", where=str(b.path), hint=f"steps: {', '.join(names)}"
                )
        wanted = None
        if b.source.local_extent() is None:  # a remote bundle: fetch only what the steps use
            used = [s for s in m.steps if not steps or s.name in steps]
            wanted = {s.image for s in used if s.image is not None} | {
                f.digest for s in used for f in (*s.inputs, *s.outputs)
            }
        report_v = b.verify(
            keys=keys, require_signature=bool(keys), progress=progress, blobs=wanted
        )
        if not report_v.ok:
            first = report_v.problems[0]
            err = first.as_error()
            if isinstance(err, SignatureError):
                raise SignatureError(f"refusing to replay: {first.what}", where=first.where)
            raise ReplayError(
                f"refusing to replay a damaged bundle: {first.what}", where=first.where
            )
        rt = get_runtime(runtime)
        mode = "isolated" if isolated else "chain"
        selected = [i for i, s in enumerate(m.steps) if not steps or s.name in steps]
        deps = StepGraph(m.steps).dependencies()
        if isolated:
            deps = {i: set() for i in deps}
        elif steps:
            # Chain replay of a subset: inputs made by unselected steps come from the bundle.
            deps = {i: {d for d in deps[i] if d in selected} for i in deps}
        base = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
        done: dict[int, StepReport] = {}
        if resume:
            journal_path = find_journal(base, b.id)
            root = Path(str(journal_path)[: -len(SUFFIX)])
            root.mkdir(exist_ok=True)
            loaded = load_journal(journal_path, b.id, mode, m.steps)
            done = {
                i: r for i, r in loaded.items() if i in selected and _intact(root, i, m.steps, r)
            }
        else:
            base.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="capsa-replay-", dir=base))
            journal_path = Path(f"{root}{SUFFIX}")
        report = ReplayReport(
            str(b.path), b.id, rt.name, rt.version(), mode, workdir=str(root) if keep else None
        )
        # Workers open the bundle themselves: by absolute path (or URL), whatever their cwd.
        bundle_file = str(b.path) if "://" in str(b.path) else str(Path(b.path).resolve())
        root_dir = str(root.resolve())
        context = StepContext(bundle_file, b.id, rt.name, root_dir, isolated, timeout, twice)
        plan = Plan(context, m.steps, selected, {i: deps[i] for i in selected}, done)
        journal = ReplayJournal(journal_path, {"bundle_id": b.id, "mode": mode})
        shown = StepProgress(len(selected), progress)
        for i, r in done.items():
            shown.finished(i, r, resumed=True)

        def finished(i: int, r: StepReport) -> None:
            journal.append(i, r)
            shown.finished(i, r)

        runner = StepRunner(b, rt, root, isolated=isolated, timeout=timeout, twice=twice)
        complete = False
        try:
            reports = chosen.run(plan, runner, Events(shown.started, finished, shown.note))
            complete = True
        except Error as e:
            if _journaled(journal_path):
                e.hint = (e.hint + "; " if e.hint else "") + (
                    f"the verdicts so far are kept in {journal_path}: "
                    "`capsa replay --resume` continues"
                )
            raise
        finally:
            shown.close()
            journal.close()
            os.close(runner.root_fd)
            # An interrupted replay keeps what it did for --resume.
            if not keep and (complete or not _journaled(journal_path)):
                remove_tree(root)
                journal_path.unlink(missing_ok=True)
        report.steps = [reports[i] for i in selected]
        return report


def _journaled(path: Path) -> bool:
    """Whether the journal holds a step's verdict (more than its first line)."""
    try:
        with path.open("rb") as f:
            return len(f.read(1 << 16).split(b"\n", 2)) > 2
    except OSError:
        return False


def _intact(root: Path, i: int, steps: Sequence[Step], r: StepReport) -> bool:
    """Whether a journaled step's replayed outputs are still in its work directory (a later
    step may read them): else it runs again."""
    work = root / step_dir(i, steps[i]) / "work"
    return all(o.found is None or (work / o.path).is_file() for o in r.outputs)
