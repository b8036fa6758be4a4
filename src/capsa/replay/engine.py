"""``capsa replay``: re-execute a bundle's steps in their images and compare the outputs
(spec/replay.md). The bundle is only read; every step runs in a fresh work directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from .._internal.fs import UnsafePath, create_file, open_dir, open_regular, open_root
from ..bundle import Bundle
from ..compare import compare, detect
from ..compare.registry import entry as comparator_entry
from ..compare.registry import method_for_media_type
from ..compare.suggest import suggest_flags
from ..containers.runtime import Mount, RunResult, RunSpec, Runtime, get_runtime
from ..containers.runtime.cache import remove_tree
from ..errors import Error, ReplayError, RuntimeError_, SignatureError, UsageError
from ..format.digest import copy_hashed, parse_digest, sha256_file, sha256_fileobj
from ..format.manifest import Step, StepFile
from ..format.source import ByteSource
from ..recording.check import check_runs
from ..recording.graph import StepGraph
from ..signing.keys import PublicKey
from .report import OutputReport, ReplayReport, StepReport

__all__ = ["EXIT_MISMATCH", "OutputReport", "ReplayReport", "StepReport", "replay"]

EXIT_MISMATCH = 1
"""Exit code when replay ran but an output is different/missing or a step failed."""
_CHUNK = 8 << 20
_TAIL = 2000


def _step_dir(index: int, step: Step) -> str:
    """The step's directory name under the replay root: its number and its (validated, one
    segment) name, never more than one file name (spec/format.md §2.1)."""
    return f"{index + 1:03d}-{step.name}"


class _Replayer:
    def __init__(
        self,
        bundle: Bundle,
        runtime: Runtime,
        root: Path,
        *,
        isolated: bool,
        timeout: float | None,
        twice: bool = False,
    ) -> None:
        self.b = bundle
        self.rt = runtime
        self.root = root
        self.isolated = isolated
        self.timeout = timeout
        self.twice = twice
        self.lock = threading.Lock()
        self.root_fd = open_root(root, follow=False)
        self.images: dict[str, Path | ByteSource] = {}
        self.workdirs: dict[int, Path] = {}

    def image(self, digest: str) -> Path | ByteSource:
        """Where the runtime finds the image: read in place (an identity blob, local or remote)
        when the runtime can, else extracted once into the replay directory."""
        with self.lock:
            if digest in self.images:
                return self.images[digest]
            blob, _ = self.b.blob_entry(digest)
            where: Path | ByteSource
            if blob.encoding == "identity" and not self.rt.needs_file():
                where = self.b.blob_source(digest)
            else:
                name = f"images/{parse_digest(digest)}.sif"
                self._extract_blob(digest, self.root_fd, name)
                where = self.root / name
            self.images[digest] = where
            return where

    def _extract_blob(self, digest: str, dir_fd: int, rel: str) -> None:
        """Write blob ``digest`` at ``rel`` below ``dir_fd`` (never through a link), checked."""
        with (
            create_file(dir_fd, rel, where=rel) as (_, fd, _name),
            self.b.open_blob(digest) as src,
            os.fdopen(fd, "wb", closefd=False) as out,
            ThreadPoolExecutor(1, thread_name_prefix="capsa-sha") as hasher,
        ):
            found = copy_hashed(src, out, hasher)
        if found != digest:
            raise ReplayError("blob changed while replaying", where=digest)

    def run_step(
        self, index: int, step: Step, deps: set[int], reports: dict[int, StepReport]
    ) -> StepReport:
        rep = StepReport(step.name, "ok", recorded_exit_code=step.exit_code)
        name = _step_dir(index, step)
        skipped = self._prepare(name, index, step, deps, reports)
        if skipped:
            rep.status, rep.reason = "skipped", skipped
            return rep
        stepdir = self.root / name
        work = stepdir / "work"
        self.workdirs[index] = work
        started = time.monotonic()
        result = self._execute(name, index, step)
        rep.duration_s = round(time.monotonic() - started, 3)
        rep.exit_code = result.exit_code
        if step.stdout is not None:
            rep.stdout_identical = sha256_file(stepdir / "stdout") == step.stdout
        if result.timed_out:
            rep.status, rep.reason = "timeout", f"killed after {self.timeout} s"
        elif result.exit_code != step.exit_code:
            rep.status = "failed"
            rep.reason = f"exit code {result.exit_code}, recorded {step.exit_code}"
        if rep.status != "ok":
            rep.stderr_tail = _tail(stepdir / "stderr")
        work_fd = open_root(work, follow=False)
        try:
            for out in step.outputs:
                rep.outputs.append(self.compare_output(work_fd, out))
        finally:
            os.close(work_fd)
        if self.twice and rep.status == "ok":
            self._twice(name, index, step, deps, reports, rep)
        return rep

    def _prepare(
        self, name: str, index: int, step: Step, deps: set[int], reports: dict[int, StepReport]
    ) -> str:
        """Make ``name``/work with the step's directories and inputs; a reason if it cannot
        run (an input its producing step did not reproduce)."""
        work_fd = open_dir(self.root_fd, [name, "work"], create=True)
        try:
            # Directories that existed before the step when it was recorded (spec/replay.md §2).
            for d in step.dirs or ():
                os.close(open_dir(work_fd, d.split("/"), create=True))
            # Inputs: the replayed output of the step that made it (chain), else the recorded blob.
            for inp in step.inputs:
                if inp.at is not None:
                    continue  # placed under its bind by _binds
                source = None if self.isolated else self._replayed(inp, deps, reports)
                if source == "failed":
                    return f"input {inp.path} was not reproduced by its step"
                if isinstance(source, tuple):
                    _copy_confined(*source, work_fd, inp.path)
                else:
                    self._extract_blob(inp.digest, work_fd, inp.path)
        finally:
            os.close(work_fd)
        return ""

    def _execute(self, name: str, index: int, step: Step) -> RunResult:
        stepdir = self.root / name
        spec = RunSpec(
            self.image(step.image),
            step.image,
            tuple(step.argv),
            dict(step.env),
            step.workdir,
            stepdir / "work",
            binds=self._binds(name, step),
            timeout=self.timeout,
        )
        return self.rt.run(spec, stepdir / "stdout", stepdir / "stderr")

    def _twice(
        self,
        name: str,
        index: int,
        step: Step,
        deps: set[int],
        reports: dict[int, StepReport],
        rep: StepReport,
    ) -> None:
        """``--twice``: run the step again in a fresh directory and compare the two runs."""
        second = f"{name}.2"
        if self._prepare(second, index, step, deps, reports):
            return
        result = self._execute(second, index, step)
        if result.exit_code != step.exit_code:
            rep.twice = [f"the second run exited {result.exit_code}"]
            rep.reproducible = False
            return
        work1, work2 = self.root / name / "work", self.root / second / "work"
        check = check_runs(
            work1,
            work2,
            [o.path for o in step.outputs if (work1 / o.path).is_file()],
            {o.path: o.compare for o in step.outputs if o.compare is not None},
            lambda rel: os.path.lexists(work2 / rel),
        )
        rep.twice = [check.failure] if check.failure else check.notes
        rep.reproducible = not check.failure

    def _binds(self, name: str, step: Step) -> tuple[Mount, ...]:
        """The recorded inputs that were outside the work directory, extracted under the step's
        directory and bound at the same container paths as when recorded."""
        mounts = []
        for i, b in enumerate(step.binds):
            mine = [
                f
                for f in step.inputs
                if f.at == b.target or (f.at or "").startswith(b.target + "/")
            ]
            if not mine:
                continue
            host = f"{name}/binds/{i}"
            if any(f.at == b.target for f in mine):  # a bound file
                self._extract_blob(mine[0].digest, self.root_fd, host)
            else:
                os.close(open_dir(self.root_fd, host.split("/"), create=True))
                for f in mine:
                    assert f.at is not None
                    self._extract_blob(
                        f.digest, self.root_fd, f"{host}/{f.at[len(b.target) + 1 :]}"
                    )
            mounts.append(Mount(self.root / host, b.target, readonly=b.readonly))
        return tuple(mounts)

    def _replayed(
        self, inp: StepFile, deps: set[int], reports: dict[int, StepReport]
    ) -> tuple[Path, str] | str | None:
        """(work directory, path) of the earlier step's replayed output that is this input."""
        for i in sorted(deps, reverse=True):
            r = reports.get(i)
            if r is None:
                continue
            for o in r.outputs:
                if o.path == inp.path and o.expected == inp.digest:
                    if r.status != "ok" or o.verdict == "missing":
                        return "failed"
                    return self.workdirs[i], o.path
        return None

    def compare_output(self, work_fd: int, out: StepFile) -> OutputReport:
        rep = OutputReport(
            out.path, "missing", out.digest, policy=out.compare.method if out.compare else "bytes"
        )
        try:
            fd = open_regular(work_fd, out.path)
        except FileNotFoundError:
            return rep
        except UnsafePath as e:
            # A step may leave a symbolic link to any host file: it is never followed.
            rep.note = (
                "a symbolic link, never followed: it escapes the work directory"
                if "symbolic link" in e.what
                else f"not compared: {e.what}"
            )
            return rep
        with os.fdopen(fd, "rb") as target:
            rep.found = sha256_fileobj(target)
            if rep.found == out.digest:
                rep.verdict = "identical"
                return rep
            try:
                with self.b.open_blob(out.digest) as recorded:
                    # Under bytes, the comparator that recognises both files' content explains
                    # the difference; failing that, the one of the recorded media type.
                    media = self.b.manifest.blobs[out.digest].media_type
                    explain = detect(target, recorded) or method_for_media_type(media)
                    result = compare(
                        target, recorded, out.compare, method=explain, names=(out.path, out.digest)
                    )
            except Error as e:
                rep.verdict = "different"
                rep.note = f"cannot compare: {e.what}"
                return rep
        # What shows the difference (an image's diff picture) is left beside the output, in
        # the work directory (kept with --keep); never over a file the step made.
        for suffix, data in result.diff.attachments.items():
            name = f"{out.path}.{suffix}"
            with contextlib.suppress(Error, OSError):
                with (
                    create_file(work_fd, name, where=name) as (_, fd, _n),
                    os.fdopen(fd, "wb", closefd=False) as f,
                ):
                    f.write(data)
                if result.diff.differences:
                    result.diff.differences[0].detail["diff_image"] = name
        rep.verdict = result.verdict
        rep.note = result.note
        if rep.verdict == "equivalent" and not rep.note:
            how = comparator_entry(result.method)
            why = f" ({how.equivalent_note})" if how.equivalent_note else ""
            rep.note = f"bytes differ, {how.label} is the same{why}"
        rep.differences = [d.as_dict() for d in result.diff.differences]
        rep.ignored = [d.as_dict() for d in result.diff.ignored]
        rep.accept_with = suggest_flags(out.path, result, out.compare)
        return rep


def _copy_confined(src_root: Path, src_rel: str, dst_fd: int, dst_rel: str) -> None:
    """Copy a replayed output (written by an untrusted step) into the next step's work
    directory: the source is opened without following links, the target created exclusively."""
    src_root_fd = open_root(src_root, follow=False)
    try:
        fd = open_regular(src_root_fd, src_rel)
    finally:
        os.close(src_root_fd)
    with (
        os.fdopen(fd, "rb") as src,
        create_file(dst_fd, dst_rel, where=dst_rel) as (_, out, _name),
        os.fdopen(out, "wb", closefd=False) as dst,
    ):
        shutil.copyfileobj(src, dst, _CHUNK)


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - _TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


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
) -> ReplayReport:
    """Verify the bundle, then re-run its steps and compare every output (spec/replay.md)."""
    if not keys and not allow_unsigned:
        raise UsageError(
            "replay checks the bundle's signatures first",
            hint="give the signer's --key PUB, or --allow-unsigned to skip",
        )
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
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
            chosen = [s for s in m.steps if not steps or s.name in steps]
            wanted = {s.image for s in chosen} | {
                f.digest for s in chosen for f in (*s.inputs, *s.outputs)
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
        selected = [i for i, s in enumerate(m.steps) if not steps or s.name in steps]
        deps = StepGraph(m.steps).dependencies()
        if steps and not isolated:
            # Chain replay of a subset: inputs made by unselected steps come from the bundle.
            deps = {i: {d for d in deps[i] if d in selected} for i in deps}
        if workdir is None:
            root = Path(tempfile.mkdtemp(prefix="capsa-replay-"))
        else:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="capsa-replay-", dir=workdir))
        report = ReplayReport(
            str(b.path),
            b.id,
            rt.name,
            rt.version(),
            "isolated" if isolated else "chain",
            workdir=str(root) if keep else None,
        )
        replayer = _Replayer(b, rt, root, isolated=isolated, timeout=timeout, twice=twice)
        reports: dict[int, StepReport] = {}
        try:
            _schedule(replayer, m.steps, selected, deps, reports, jobs, isolated)
        finally:
            os.close(replayer.root_fd)
            if not keep:
                remove_tree(root)
        report.steps = [reports[i] for i in selected]
        return report


def _schedule(
    rp: _Replayer,
    steps: Sequence[Step],
    selected: list[int],
    deps: dict[int, set[int]],
    reports: dict[int, StepReport],
    jobs: int,
    isolated: bool,
) -> None:
    pending = list(selected)
    running: dict[Future[StepReport], int] = {}
    with ThreadPoolExecutor(jobs) as pool:
        while pending or running:
            ready = [i for i in pending if isolated or deps[i] <= set(reports)]
            for i in ready[: max(0, jobs - len(running))]:
                pending.remove(i)
                running[
                    pool.submit(
                        rp.run_step, i, steps[i], set() if isolated else deps[i], dict(reports)
                    )
                ] = i
            if not running:
                raise ReplayError("step dependencies cannot be satisfied")  # pragma: no cover
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                try:
                    reports[i] = fut.result()
                except RuntimeError_:
                    for f in running:
                        f.cancel()
                    raise
