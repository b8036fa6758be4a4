"""``capsa run``: execute one step in a container and record it in the journal (spec/recording.md).

Declared inputs are hashed before the run and outputs after it; files the step created or changed
without declaring them are recorded as outputs too and reported — known exactly from the step's
own writes (:mod:`.capture`), filtered by ``.capsaignore``. A failing command is recorded as
failed; recording a name again supersedes the earlier record.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import TypeAdapter, ValidationError

from .._internal.fs import UnsafePath, open_regular, open_root
from ..containers.runtime import (
    CONTAINER_HOME,
    DEFAULT_PATH,
    Mount,
    RunResult,
    RunSpec,
    get_runtime,
)
from ..errors import Error, FormatError, NotFoundError, RuntimeError_, UsageError
from ..format.digest import sha256_file, sha256_fileobj
from ..format.manifest import Bind, HostInfo, ProvenanceRecord, RuntimeInfo, Step, StepFile
from ..format.names import ContainerPath, EnvName, NoNul, StepName, explain
from ..format.policy import ComparePolicy
from .capture import Capture, run_captured_step
from .changes import Conflict
from .ignore import Ignores
from .journal import STATE_DIR, Journal, JournalEntry, find_project
from .provenance import detect, read_log

__all__ = ["WORKDIR", "RunOutcome", "default_env", "parse_bind", "run_step"]

WORKDIR = "/work"


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


def _relative(project: Path, p: str, what: str) -> str:
    raw = Path.cwd() / p
    # Directories above the file are resolved; the file itself never is: a symbolic link there is
    # refused when it is opened, and every directory is re-checked (no-follow) at that point too.
    full = raw.resolve() if raw.name in ("", ".", "..") else raw.parent.resolve() / raw.name
    try:
        rel = full.relative_to(project)
    except ValueError:
        raise UsageError(
            f"{what} is outside the work directory {project}",
            where=p,
            hint="steps see only their work directory; copy or link the file into it",
        ) from None
    if rel.parts and rel.parts[0] == STATE_DIR:
        raise UsageError(f"{what} is inside capsa's own {STATE_DIR}/", where=p)
    if str(rel) == ".":
        raise UsageError(f"{what} must be a file, not the work directory", where=p)
    return rel.as_posix()


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


def _digest_confined(root_fd: int, rel: str) -> str:
    """SHA-256 of the regular file ``rel`` below ``root_fd``, reached without following links."""
    with os.fdopen(open_regular(root_fd, rel, where=rel), "rb", buffering=0) as f:
        return sha256_fileobj(f)


def _digest_in(root: Path, rel: str) -> str:
    fd = open_root(root)
    try:
        return _digest_confined(fd, rel)
    finally:
        os.close(fd)


def parse_bind(text: str) -> Mount:
    """``HOST_PATH[:CONTAINER_PATH][:ro]`` (as ``apptainer --bind``): the container path
    defaults to the host path; the host path must exist."""
    parts = text.split(":")
    readonly = parts[-1] in ("ro", "rw") and len(parts) > 1 and parts.pop() == "ro"
    if len(parts) > 2 or not parts[0]:
        raise UsageError(f"--bind {text!r} is not HOST_PATH[:CONTAINER_PATH][:ro]")
    host = Path(parts[0]).resolve()
    target = parts[1] if len(parts) == 2 else str(host)
    if not host.exists():
        raise NotFoundError("bind source does not exist", where=parts[0])
    try:
        _CONTAINER_PATH.validate_python(target)
    except ValidationError as e:
        raise UsageError(f"bind target: {explain(e.errors()[0])}", where=target) from None
    if target == WORKDIR or target.startswith(WORKDIR + "/") or WORKDIR.startswith(target + "/"):
        raise UsageError(
            f"a bind over {WORKDIR} would hide the work directory",
            where=target,
            hint="bind the data elsewhere, e.g. HOST:/data",
        )
    if target.split("/")[1] in ("proc", "dev", "sys"):
        raise UsageError(f"cannot bind over {target}", where=target)
    return Mount(host, target, readonly)


_CONTAINER_PATH: TypeAdapter[str] = TypeAdapter(ContainerPath)
_NO_DIGEST = "sha256:" + "0" * 64  # replaced once the input is hashed


def _locate(project: Path, binds: Sequence[Mount], p: str, what: str) -> StepFile | str:
    """A project-relative path, or (for a file under a bind) a StepFile without its digest."""
    raw = Path.cwd() / p
    full = raw.resolve() if raw.name in ("", ".", "..") else raw.parent.resolve() / raw.name
    for b in binds:
        with contextlib.suppress(ValueError):
            rel = full.relative_to(b.source).as_posix()
            at = b.target if rel == "." else f"{b.target}/{rel}"
            return StepFile(path=f"binds/{at.strip('/')}", digest=_NO_DIGEST, at=at)
    return _relative(project, p, what)


def run_step(
    image: str | os.PathLike[str],
    argv: Sequence[str],
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    name: str | None = None,
    env: dict[str, str] | None = None,
    compare: dict[str, ComparePolicy] | None = None,
    runtime: str = "auto",
    network: bool = False,
    timeout: float | None = None,
    provenance: Sequence[str] = (),
    binds: Sequence[str | Mount] = (),
    capture: str = "auto",
    echo: bool = True,
    project: Path | None = None,
) -> RunOutcome:
    """Run ``argv`` in ``image`` with the work directory bound at /work and record the step.

    Only what the step itself wrote is recorded (``capture``: ``auto`` — an overlay when
    possible, else a snapshot; spec/recording.md §3.1). Recording a name again supersedes the
    earlier record of that name.
    """
    if not argv:
        raise UsageError("no command given", hint="capsa run --image IMG.sif -- COMMAND ARGS...")
    if capture not in ("auto", "overlay", "snapshot"):
        raise UsageError(f"unknown capture {capture!r}", hint="use auto, overlay or snapshot")
    project = (project or find_project()).resolve()
    image_path = Path(image).resolve()
    if not image_path.is_file():
        raise NotFoundError("no such image", where=str(image))
    rt = get_runtime(runtime)
    mounts = [b if isinstance(b, Mount) else parse_bind(b) for b in binds]
    _check_binds(project, mounts)
    located = [_locate(project, mounts, p, "input") for p in inputs]
    out_rel = [_relative(project, p, "output") for p in outputs]
    prov_rel = [_relative(project, p, "provenance file") for p in provenance]
    policies = {_relative(project, p, "output"): c for p, c in (compare or {}).items()}
    for p in policies:
        if p not in out_rel:
            raise UsageError(
                "a comparison policy is given for a path that is not an --output", where=p
            )
    step_inputs = [_hash_input(project, mounts, x) for x in located]
    image_digest = sha256_file(image_path)
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
        cap = run_captured_step(
            rt, spec, Path(tmp) / "stdout", Path(tmp) / "stderr", echo=echo, mechanism=capture
        )
        duration = time.time() - started
        stdout_digest = journal.store(cap.result.stdout)
        stderr_digest = journal.store(cap.result.stderr)
    step = _Draft(
        step_name, image_path, image_digest, tuple(argv), step_env, tuple(mounts), step_inputs
    )
    try:
        return _record(
            journal,
            cap,
            step,
            out_rel,
            prov_rel,
            policies,
            started,
            duration,
            (stdout_digest, stderr_digest),
            timeout,
        )
    except BaseException:
        cap.discard()
        raise


@dataclass(frozen=True)
class _Draft:
    """What is known of a step before it runs."""

    name: str
    image_path: Path
    image: str
    argv: tuple[str, ...]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    inputs: list[StepFile]


def _check_binds(project: Path, mounts: Sequence[Mount]) -> None:
    targets = [m.target for m in mounts]
    for i, t in enumerate(targets):
        for u in targets[i + 1 :]:
            if t == u or t.startswith(u + "/") or u.startswith(t + "/"):
                raise UsageError(f"binds {t} and {u} overlap", hint="bind each directory once")
    for m in mounts:
        if m.source == project or project.is_relative_to(m.source):
            raise UsageError(
                "a bind may not hold the work directory", where=str(m.source), hint="bind data only"
            )


def _hash_input(project: Path, mounts: Sequence[Mount], x: StepFile | str) -> StepFile:
    if isinstance(x, str):
        root, rel = project, x
    else:
        assert x.at is not None
        m = next(m for m in mounts if x.at == m.target or x.at.startswith(m.target + "/"))
        # A bound file is itself the input; below a bound directory, its path below the target.
        root, rel = (
            (m.source.parent, m.source.name)
            if x.at == m.target
            else (m.source, x.at[len(m.target) + 1 :])
        )
    try:
        digest = _digest_in(root, rel)
    except FileNotFoundError:
        raise NotFoundError(
            "input does not exist", where=str(root / rel), hint="create it or fix the path"
        ) from None
    except UnsafePath as e:
        e.what = f"input {e.what}"
        e.hint = "capsa records regular files only; name the file the link points to"
        raise
    if isinstance(x, str):
        return StepFile(path=x, digest=digest)
    return x.model_copy(update={"digest": digest})


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
) -> RunOutcome:
    """Read what the step wrote (from its view), commit it, and journal the step."""
    ignores = Ignores.for_project(journal.project)
    in_paths = {f.path for f in draft.inputs}
    written = set(cap.changes.written)
    undeclared = [
        p
        for p in cap.changes.written
        if p not in out_rel and p not in in_paths and p not in prov_rel and not ignores(p)
    ]
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
                digest = _digest_confined(view_fd, rel)
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
        image_path=str(draft.image_path),
        undeclared_outputs=tuple(undeclared),
        deleted=tuple(cap.changes.deleted),
        capture=cap.mechanism,
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
