"""Running one recorded step and comparing its outputs (spec/replay.md §2, §3): the part of replay
that happens where the step runs — a thread of this process, or a Dask worker (``run_task``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .._internal.fs import UnsafePath, create_file, open_dir, open_regular, open_root
from .._internal.lock import locked
from ..bundle import Bundle
from ..compare import compare, detect
from ..compare.registry import entry as comparator_entry
from ..compare.registry import method_for_media_type
from ..compare.suggest import suggest_flags
from ..containers.runtime import Mount, RunResult, RunSpec, Runtime, get_runtime
from ..containers.runtime.cache import remove_tree
from ..errors import Error, ReplayError
from ..format.digest import copy_hashed, parse_digest, sha256_file, sha256_fileobj
from ..format.manifest import Step, StepFile
from ..format.source import ByteSource
from ..recording.check import check_runs
from .report import NO_IMAGE, OutputReport, StepReport

__all__ = ["StepContext", "StepRunner", "TaskResult", "raise_task_error", "run_task", "step_dir"]

_CHUNK = 8 << 20
_TAIL = 2000


def step_dir(index: int, step: Step) -> str:
    """The step's directory name under the replay root: its number and its (validated, one
    segment) name, never more than one file name (spec/format.md §2.1)."""
    return f"{index + 1:03d}-{step.name}"


class StepRunner:
    """Runs one step at a time (from any thread) in its work directory below ``root`` and
    compares its outputs: the part of replay that happens where the step runs."""

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
                where = self._image_file(digest)
            self.images[digest] = where
            return where

    def _image_file(self, digest: str) -> Path:
        """``images/<hex>.sif`` below the replay root, extracted by one process of all that
        share the root (Dask workers): the others wait on its lock and find it complete."""
        hexd = parse_digest(digest)
        final = self.root / "images" / f"{hexd}.sif"
        images_fd = open_dir(self.root_fd, ["images"], create=True)
        try:
            with locked(self.root / "images" / f".{hexd}.lock"):
                if not final.is_file():
                    part = f".{hexd}.{secrets.token_hex(4)}.part"
                    try:
                        self._extract_blob(digest, images_fd, part)
                        os.rename(part, f"{hexd}.sif", src_dir_fd=images_fd, dst_dir_fd=images_fd)
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(part, dir_fd=images_fd)
        finally:
            os.close(images_fd)
        return final

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
        if step.image is None:  # recorded on the host's software: its outputs stay as recorded
            rep.status, rep.reason = "skipped", NO_IMAGE
            return rep
        name = step_dir(index, step)
        for stale in (name, f"{name}.2"):  # what an interrupted replay left (--resume)
            remove_tree(self.root / stale)
        skipped = self._prepare(name, index, step, deps, reports)
        if skipped:
            rep.status, rep.reason = "skipped", skipped
            return rep
        stepdir = self.root / name
        work = stepdir / "work"
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
        assert step.image is not None  # run_step never runs a step without an image
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
            if r is None or r.reason == NO_IMAGE:
                continue  # not replayed: the input is the recorded blob
            for o in r.outputs:
                if o.path == inp.path and o.expected == inp.digest:
                    if r.status != "ok" or o.verdict == "missing":
                        return "failed"
                    return self.root / step_dir(i, self.b.manifest.steps[i]) / "work", o.path
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


@dataclass(frozen=True)
class StepContext:
    """What a worker needs to run a bundle's steps: plain values, a few hundred bytes pickled.
    The bundle and the replay root are paths every worker sees (a shared file system)."""

    bundle: str
    bundle_id: str
    runtime: str
    root: str
    isolated: bool
    timeout: float | None
    twice: bool


_RUNNERS: dict[StepContext, StepRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def _runner_for(ctx: StepContext) -> StepRunner:
    """One runner per worker process and replay: the bundle is opened (and the runtime found)
    once, not once per step."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(ctx)
        if runner is None:
            b = Bundle(ctx.bundle)
            if b.id != ctx.bundle_id:
                b.close()
                raise ReplayError(
                    "the bundle a worker sees is not the one replayed",
                    where=ctx.bundle,
                    hint="workers must see the same bundle file at the same path",
                )
            runner = StepRunner(
                b,
                get_runtime(ctx.runtime),
                Path(ctx.root),
                isolated=ctx.isolated,
                timeout=ctx.timeout,
                twice=ctx.twice,
            )
            _RUNNERS[ctx] = runner
        return runner


ErrorDetail = tuple[str, str, str | None, str | None]
TaskResult = tuple[str, StepReport | ErrorDetail]
"""``("report", StepReport)`` or ``("error", (class name, what, where, hint))``."""


def run_task(
    ctx: StepContext, index: int, deps: set[int], reports: Mapping[int, StepReport]
) -> TaskResult:
    """Run step ``index`` where this function is called (a Dask worker) and compare its outputs
    there: only the report — verdicts, digests, a stderr tail — travels back. capsa's errors
    travel as plain values (their keyword fields do not survive pickling)."""
    try:
        runner = _runner_for(ctx)
        step = runner.b.manifest.steps[index]
        return "report", runner.run_step(index, step, deps, dict(reports))
    except Error as e:
        return "error", (type(e).__name__, e.what, e.where, e.hint)


def raise_task_error(detail: object, where: str) -> None:
    """Raise on the client the capsa error a worker returned (``run_task``)."""
    from .. import errors

    assert isinstance(detail, tuple)
    name, what, at, hint = detail
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Error)):
        cls = ReplayError
    raise cls(f"{what} (on worker {where})", where=at, hint=hint)
