"""``capsa run``: execute one step in a container and record it in the journal (spec/recording.md).

Declared inputs are hashed before the run and outputs after it; files the step created or changed
without declaring them are recorded as outputs too and reported — known exactly from the step's
own writes (:mod:`.capture`), filtered by ``.capsaignore``. A failing command is recorded as
failed; recording a name again supersedes the earlier record.
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from pydantic import TypeAdapter, ValidationError

from .._internal.fs import UnsafePath, open_regular, open_root
from ..containers.runtime import (
    CONTAINER_HOME,
    DEFAULT_PATH,
    Mount,
    RunResult,
    RunSpec,
    Runtime,
    get_runtime,
)
from ..errors import Error, FormatError, NotFoundError, RuntimeError_, UsageError
from ..format.digest import sha256_file
from ..format.manifest import Bind, HostInfo, ProvenanceRecord, RuntimeInfo, Step, StepFile
from ..format.names import EnvName, NoNul, StepName, explain
from ..format.policy import ComparePolicy

if TYPE_CHECKING:
    from .check import CheckResult
from .capture import Capture, run_captured_step
from .changes import Conflict
from .ignore import Ignores
from .inputs import (
    WORKDIR,
    check_binds,
    digest_confined,
    hash_input,
    locate,
    parse_bind,
    relative,
)
from .journal import STATE_DIR, Journal, JournalEntry, find_project
from .provenance import detect, read_log

__all__ = ["WORKDIR", "RunOutcome", "default_env", "parse_bind", "run_step"]


def default_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The deterministic step environment (spec/recording.md §2), then the user's ``--env``."""
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": CONTAINER_HOME,
        "TZ": "UTC",
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        env["SOURCE_DATE_EPOCH"] = sde
    env.update(extra or {})
    return env


@dataclass
class RunOutcome:
    entry: JournalEntry
    exit_code: int
    missing_outputs: list[str] = field(default_factory=list)
    capture_fallback: str = ""
    """Why the step ran without an overlay (snapshot capture), if it did."""


_STEP_FIELDS: TypeAdapter[tuple[str, tuple[str, ...], dict[str, str]]] = TypeAdapter(
    tuple[StepName, tuple[NoNul, ...], dict[EnvName, NoNul]]
)


def _check_step_fields(name: str, argv: Sequence[str], env: dict[str, str]) -> None:
    """Refuse before running what the manifest would refuse after it (spec/format.md §2.1)."""
    try:
        _STEP_FIELDS.validate_python((name, tuple(argv), env))
    except ValidationError as e:
        err = e.errors()[0]
        what = ("step name", "command", "environment")[int(err["loc"][0])]
        raise UsageError(f"invalid {what}: {explain(err)}") from None


Policy = ComparePolicy | Callable[[BinaryIO], ComparePolicy]
"""A comparison policy, or one to be read off the output's content (``--compare auto``)."""


def _resolve_policies(policies: Mapping[str, Policy], view: Path) -> dict[str, ComparePolicy]:
    """Read each callable policy off the output the step wrote (in its ``view``)."""
    fixed = {rel: p for rel, p in policies.items() if not callable(p)}
    pending = {rel: p for rel, p in policies.items() if callable(p)}
    if not pending:
        return fixed
    view_fd = open_root(view, follow=False)
    try:
        for rel, choose in pending.items():
            try:
                with os.fdopen(open_regular(view_fd, rel, where=rel), "rb") as f:
                    fixed[rel] = choose(f)
            except (FileNotFoundError, UnsafePath):
                continue  # reported as missing or refused when the outputs are recorded
    finally:
        os.close(view_fd)
    return fixed


def run_step(
    image: str | os.PathLike[str] | None,
    argv: Sequence[str],
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    name: str | None = None,
    env: dict[str, str] | None = None,
    compare: Mapping[str, Policy] | None = None,
    runtime: str = "auto",
    network: bool = False,
    timeout: float | None = None,
    provenance: Sequence[str] = (),
    binds: Sequence[str | Mount] = (),
    capture: str = "auto",
    check: bool = False,
    group: str | None = None,
    params: dict[str, str] | None = None,
    echo: bool = True,
    project: Path | None = None,
) -> RunOutcome:
    """Run ``argv`` in ``image`` with the work directory bound at /work and record the step.

    Only what the step itself wrote is recorded (``capture``: ``auto`` — an overlay when
    possible, else a snapshot; spec/recording.md §3.1). Recording a name again supersedes the
    earlier record of that name. ``check`` runs the step twice and records the narrowest policy
    that makes the runs equivalent (§3.5). ``image=None`` records a step that ran on the host's
    own software (bwrap only, read-only): it is packed and shown but replay never runs it.
    """
    if not argv:
        raise UsageError("no command given", hint="capsa run --image IMG.sif -- COMMAND ARGS...")
    if capture not in ("auto", "overlay", "snapshot"):
        raise UsageError(f"unknown capture {capture!r}", hint="use auto, overlay or snapshot")
    if check and capture == "snapshot":
        raise UsageError("--check runs the step twice on overlays", hint="drop --capture snapshot")
    project = (project or find_project()).resolve()
    image_path = None if image is None else Path(image).resolve()
    if image_path is not None and not image_path.is_file():
        raise NotFoundError("no such image", where=str(image))
    if image_path is None and runtime not in ("auto", "bwrap"):
        raise UsageError(
            f"a step without an image runs under bwrap, not {runtime}", hint="use --runtime bwrap"
        )
    rt = get_runtime("bwrap" if image_path is None else runtime)
    mounts = [b if isinstance(b, Mount) else parse_bind(b) for b in binds]
    check_binds(project, mounts)
    located = [locate(project, mounts, p, "input") for p in inputs]
    out_rel = [relative(project, p, "output") for p in outputs]
    prov_rel = [relative(project, p, "provenance file") for p in provenance]
    given = {relative(project, p, "output"): c for p, c in (compare or {}).items()}
    for p in given:
        if p not in out_rel:
            raise UsageError(
                "a comparison policy is given for a path that is not an --output", where=p
            )
    step_inputs = [hash_input(project, mounts, x) for x in located]
    image_digest = None if image_path is None else sha256_file(image_path)
    journal = Journal(project)
    step_name = name or f"step{journal.next_seq()}"
    step_env = default_env(env)
    _check_step_fields(step_name, argv, step_env)
    journal.dir.mkdir(parents=True, exist_ok=True)  # exists before the step, so it is hidden
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="capsa-run-") as tmp:
        spec = RunSpec(
            image_path,
            image_digest,
            tuple(argv),
            step_env,
            WORKDIR,
            project,
            binds=tuple(mounts),
            network=network,
            timeout=timeout,
            # The step must not see or change the journal that records it.
            hide=(f"{WORKDIR}/{STATE_DIR}",),
        )
        mechanism = "overlay" if check else capture
        cap = run_captured_step(
            rt, spec, Path(tmp) / "stdout", Path(tmp) / "stderr", echo=echo, mechanism=mechanism
        )
        duration = time.time() - started
        stdout_digest = journal.store(cap.result.stdout)
        stderr_digest = journal.store(cap.result.stderr)
        draft = _Draft(
            step_name,
            image_path,
            image_digest,
            tuple(argv),
            step_env,
            tuple(mounts),
            step_inputs,
            group,
            params,
        )
        checked = None
        try:
            policies = _resolve_policies(given, cap.view)
            if check and cap.result.exit_code == 0:
                checked = _check(rt, spec, Path(tmp), cap, draft, out_rel, prov_rel, policies)
                policies = checked.policies
            return _record(
                journal,
                cap,
                draft,
                out_rel,
                prov_rel,
                policies,
                started,
                duration,
                (stdout_digest, stderr_digest),
                timeout,
                checked,
            )
        except BaseException:
            cap.discard()
            raise


def _check(
    rt: Runtime,
    spec: RunSpec,
    tmp: Path,
    first: Capture,
    draft: _Draft,
    out_rel: list[str],
    prov_rel: list[str],
    policies: dict[str, ComparePolicy],
) -> CheckResult:
    """Run the step a second time on a fresh overlay and compare its outputs with the first."""
    from .check import check_runs  # loads the comparators: only for --check

    second = run_captured_step(
        rt, spec, tmp / "stdout-2", tmp / "stderr-2", echo=False, mechanism="overlay"
    )
    try:
        outputs = [*out_rel, *_undeclared(first, draft, out_rel, prov_rel)]
        written = set(second.changes.written)
        return check_runs(first.view, second.view, outputs, policies, lambda rel: rel in written)
    finally:
        second.discard()


@dataclass(frozen=True)
class _Draft:
    """What is known of a step before it runs."""

    name: str
    image_path: Path | None
    image: str | None
    argv: tuple[str, ...]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    inputs: list[StepFile]
    group: str | None = None
    params: dict[str, str] | None = None


def _outcome(
    result: RunResult, timeout: float | None, refused: list[str], missing: list[str]
) -> tuple[str, str]:
    if result.timed_out:
        return "failed", f"timed out after {timeout} s"
    if result.exit_code != 0:
        return "failed", f"exit code {result.exit_code}"
    if refused:
        return (
            "failed",
            "declared outputs are not regular files (symbolic links are never followed): "
            + ", ".join(refused),
        )
    if missing:
        return "failed", f"declared outputs not produced: {', '.join(missing)}"
    return "ok", ""


def _record(
    journal: Journal,
    cap: Capture,
    draft: _Draft,
    out_rel: list[str],
    prov_rel: list[str],
    policies: dict[str, ComparePolicy],
    started: float,
    duration: float,
    logs: tuple[str, str],
    timeout: float | None,
    checked: CheckResult | None = None,
) -> RunOutcome:
    """Read what the step wrote (from its view), commit it, and journal the step."""
    written = set(cap.changes.written)
    undeclared = _undeclared(cap, draft, out_rel, prov_rel)
    view_fd = open_root(cap.view, follow=False)
    outputs: list[StepFile] = []
    missing: list[str] = []
    refused: list[str] = []
    skipped: list[str] = []
    try:
        for rel in [*out_rel, *undeclared]:
            try:
                if rel not in written:
                    raise FileNotFoundError(rel)
                digest = digest_confined(view_fd, rel)
            except FileNotFoundError:
                missing.append(rel)
                continue
            except UnsafePath:
                # A symbolic link (or a FIFO, a device) is never followed or sealed: a step could
                # point it at any file of the host, which the sandbox itself cannot read.
                (refused if rel in out_rel else skipped).append(rel)
                continue
            outputs.append(StepFile(path=rel, digest=digest, compare=policies.get(rel)))
        prov_records, prov_error = _provenance(journal, view_fd, prov_rel, written, draft.name)
    finally:
        os.close(view_fd)
    missing = [p for p in missing if p in out_rel]
    undeclared = [p for p in undeclared if p not in skipped]
    result = cap.result
    status, reason = _outcome(result, timeout, refused, missing)
    if checked is not None and checked.failure and status == "ok":
        status, reason = "failed", checked.failure
    try:
        cap.finish()  # the step's writes reach the project
    except Conflict as c:
        status, outputs = "failed", []
        reason = (
            f"not committed: {c.path} changed in the project while the step ran "
            "(its writes are kept under .capsa/tmp/)"
        )
    dirs = sorted({d for o in outputs for d in _parents(o.path) if d in cap.existed_dirs})
    step = Step(
        name=draft.name,
        image=draft.image,
        argv=draft.argv,
        env=draft.env,
        workdir=WORKDIR,
        binds=tuple(
            Bind(source=str(m.source), target=m.target, readonly=m.readonly) for m in draft.mounts
        ),
        inputs=tuple(draft.inputs),
        outputs=tuple(outputs),
        exit_code=result.exit_code,
        runtime=RuntimeInfo(name=result.runtime, version=result.version),
        stdout=logs[0],
        stderr=logs[1],
        provenance=tuple(prov_records),
        dirs=tuple(dirs) or None,
        group=draft.group,
        params=draft.params or None,
        host=HostInfo(
            hostname=socket.gethostname(),
            kernel=platform.release(),
            machine=platform.machine(),
            started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            duration_ms=int(duration * 1000),
            capsa_version=_version(),
        ),
    )
    entry = journal.append(
        step=step,
        image_path=str(draft.image_path or ""),
        undeclared_outputs=tuple(undeclared),
        deleted=tuple(cap.changes.deleted),
        capture=cap.mechanism,
        check=tuple(checked.notes) if checked is not None else None,
        status=status,
        reason=reason,
    )
    if prov_error is not None:
        prov_error.hint = f"step {draft.name!r} was recorded without it"
        raise prov_error
    if result.timed_out:
        raise RuntimeError_(
            f"step {draft.name!r} timed out after {timeout} s and was killed",
            hint="recorded as failed; raise --timeout",
        )
    return RunOutcome(entry, result.exit_code, missing + refused, cap.fallback_reason)


def _undeclared(cap: Capture, draft: _Draft, out_rel: list[str], prov_rel: list[str]) -> list[str]:
    """What the step wrote without declaring it: neither an output, an input, a provenance
    log nor ignored (.capsaignore)."""
    ignores = Ignores.for_project(cap.project)
    in_paths = {f.path for f in draft.inputs}
    skip = {*out_rel, *in_paths, *prov_rel}
    return [p for p in cap.changes.written if p not in skip and not ignores(p)]


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _provenance(
    journal: Journal, view_fd: int, prov_rel: list[str], written: set[str], step_name: str
) -> tuple[list[ProvenanceRecord], Error | None]:
    """The tool's own provenance logs: checked and kept, after the run that wrote them."""
    records: list[ProvenanceRecord] = []
    error: Error | None = None
    for rel in prov_rel:
        try:
            if rel not in written:
                raise FileNotFoundError(rel)
            data = read_log(open_regular(view_fd, rel, where=rel), rel)
            fmt, n = detect(data, rel)
        except FileNotFoundError:
            error = FormatError(
                "provenance file was not written",
                where=rel,
                hint="check the path the tool writes its provenance to",
            )
            continue
        except (FormatError, UnsafePath) as e:
            error = e
            continue
        records.append(
            ProvenanceRecord(
                path=f"provenance/{step_name}/{PurePosixPath(rel).name}",
                digest=journal.store_bytes(data),
                format=fmt,  # type: ignore[arg-type]
                activities=n,
            )
        )
    return records, error


def _version() -> str:
    from .._version import __version__

    return __version__
