"""``capsa run``: execute one step in a container and record it in the journal (spec/recording.md).

Declared inputs are hashed before the run and outputs after it; files the command created or
changed in the work directory without declaring them are found by comparing snapshots, recorded
as outputs and reported. A failing command is recorded as failed.
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pydantic import TypeAdapter, ValidationError

from .._internal.fs import UnsafePath, open_regular, open_root
from ..containers.runtime import CONTAINER_HOME, DEFAULT_PATH, RunSpec, Runtime, get_runtime
from ..errors import Error, FormatError, NotFoundError, RuntimeError_, UsageError
from ..format.digest import sha256_file, sha256_fileobj
from ..format.manifest import HostInfo, ProvenanceRecord, RuntimeInfo, Step, StepFile
from ..format.names import EnvName, NoNul, StepName, explain
from ..format.policy import ComparePolicy
from .journal import STATE_DIR, Journal, JournalEntry, find_project
from .provenance import detect, read_log

__all__ = ["WORKDIR", "RunOutcome", "default_env", "run_step"]

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


Policy = ComparePolicy | Callable[[BinaryIO], ComparePolicy]
"""A comparison policy, or one to be read off the output's content (``--compare auto``)."""


def _policy(policy: Policy | None, project_fd: int, rel: str) -> ComparePolicy | None:
    if policy is None or not callable(policy):
        return policy
    with os.fdopen(open_regular(project_fd, rel, where=rel), "rb") as f:
        return policy(f)


def _digest_confined(project_fd: int, rel: str) -> str:
    """SHA-256 of the regular file ``rel`` below the project, reached without following links."""
    with os.fdopen(open_regular(project_fd, rel, where=rel), "rb", buffering=0) as f:
        return sha256_fileobj(f)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in filenames:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            if not p.is_symlink():
                snap[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return snap


def run_step(
    image: str | os.PathLike[str],
    argv: Sequence[str],
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    name: str | None = None,
    env: dict[str, str] | None = None,
    compare: dict[str, Policy] | None = None,
    runtime: str = "auto",
    network: bool = False,
    timeout: float | None = None,
    provenance: Sequence[str] = (),
    echo: bool = True,
    project: Path | None = None,
) -> RunOutcome:
    """Run ``argv`` in ``image`` with the work directory bound at /work and record the step."""
    if not argv:
        raise UsageError("no command given", hint="capsa run --image IMG.sif -- COMMAND ARGS...")
    project = (project or find_project()).resolve()
    image_path = Path(image).resolve()
    if not image_path.is_file():
        raise NotFoundError("no such image", where=str(image))
    rt = get_runtime(runtime)
    in_rel = [_relative(project, p, "input") for p in inputs]
    out_rel = [_relative(project, p, "output") for p in outputs]
    prov_rel = [_relative(project, p, "provenance file") for p in provenance]
    policies = {_relative(project, p, "output"): c for p, c in (compare or {}).items()}
    for p in policies:
        if p not in out_rel:
            raise UsageError(
                "a comparison policy is given for a path that is not an --output", where=p
            )
    project_fd = open_root(project)
    try:
        return _run(
            project,
            project_fd,
            image_path,
            argv,
            in_rel,
            out_rel,
            prov_rel,
            policies,
            rt,
            name=name,
            env=env,
            network=network,
            timeout=timeout,
            echo=echo,
        )
    finally:
        os.close(project_fd)


def _run(
    project: Path,
    project_fd: int,
    image_path: Path,
    argv: Sequence[str],
    in_rel: list[str],
    out_rel: list[str],
    prov_rel: list[str],
    policies: dict[str, Policy],
    rt: Runtime,
    *,
    name: str | None,
    env: dict[str, str] | None,
    network: bool,
    timeout: float | None,
    echo: bool,
) -> RunOutcome:
    step_inputs = []
    for rel in in_rel:
        try:
            step_inputs.append(StepFile(path=rel, digest=_digest_confined(project_fd, rel)))
        except FileNotFoundError:
            raise NotFoundError(
                "input does not exist", where=rel, hint="create it or fix the path"
            ) from None
        except UnsafePath as e:
            e.what = f"input {e.what}"
            e.hint = "capsa records regular files only; name the file the link points to"
            raise
    image_digest = sha256_file(image_path)
    journal = Journal(project)
    seq_hint = journal.next_seq()
    step_name = name or f"step{seq_hint}"
    if any(e.step.name == step_name for e in journal.entries()):
        raise UsageError(
            f"a step named {step_name!r} is already recorded",
            hint="choose another --name (names identify steps in replay)",
        )
    step_env = default_env(env)
    _check_step_fields(step_name, argv, step_env)
    journal.dir.mkdir(parents=True, exist_ok=True)  # exists before the step, so it is hidden
    before = _snapshot(project)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="capsa-run-") as tmp:
        spec = RunSpec(
            image_path,
            image_digest,
            tuple(argv),
            step_env,
            WORKDIR,
            project,
            network=network,
            timeout=timeout,
            # The step must not see or change the journal that records it.
            hide=(f"{WORKDIR}/{STATE_DIR}",),
        )
        result = rt.run(spec, Path(tmp) / "stdout", Path(tmp) / "stderr", echo=echo)
        duration = time.time() - started
        stdout_digest = journal.store(result.stdout)
        stderr_digest = journal.store(result.stderr)
    after = _snapshot(project)
    changed = sorted(p for p, st in after.items() if before.get(p) != st)
    undeclared = [p for p in changed if p not in out_rel and p not in in_rel]
    step_outputs, missing, refused = [], [], []
    for rel in [*out_rel, *undeclared]:
        try:
            digest = _digest_confined(project_fd, rel)
        except FileNotFoundError:
            missing.append(rel)
            continue
        except UnsafePath:
            # A symbolic link (or a FIFO, a device) is never followed or sealed: a step could
            # point it at any file of the host, which the sandbox itself cannot read.
            if rel in out_rel:
                refused.append(rel)
            continue
        step_outputs.append(
            StepFile(path=rel, digest=digest, compare=_policy(policies.get(rel), project_fd, rel))
        )
    missing = [p for p in missing if p in out_rel]
    status, reason = "ok", ""
    code = result.exit_code
    if result.timed_out:
        status, reason = "failed", f"timed out after {timeout} s"
    elif code != 0:
        status, reason = "failed", f"exit code {code}"
    elif refused:
        status, reason = (
            "failed",
            "declared outputs are not regular files (symbolic links are never followed): "
            + ", ".join(refused),
        )
    elif missing:
        status, reason = "failed", f"declared outputs not produced: {', '.join(missing)}"
    # The tool's own provenance log: checked and kept, after the run that wrote it.
    prov_records: list[ProvenanceRecord] = []
    prov_error: Error | None = None
    for rel in prov_rel:
        try:
            data = read_log(open_regular(project_fd, rel, where=rel), rel)
            fmt, n = detect(data, rel)
        except FileNotFoundError:
            prov_error = FormatError(
                "provenance file was not written",
                where=rel,
                hint="check the path the tool writes its provenance to",
            )
            continue
        except (FormatError, UnsafePath) as e:
            prov_error = e
            continue
        prov_records.append(
            ProvenanceRecord(
                path=f"provenance/{step_name}/{PurePosixPath(rel).name}",
                digest=journal.store_bytes(data),
                format=fmt,  # type: ignore[arg-type]
                activities=n,
            )
        )
    step = Step(
        name=step_name,
        image=image_digest,
        argv=tuple(argv),
        env=step_env,
        workdir=WORKDIR,
        inputs=tuple(step_inputs),
        outputs=tuple(step_outputs),
        exit_code=code,
        runtime=RuntimeInfo(name=result.runtime, version=result.version),
        stdout=stdout_digest,
        stderr=stderr_digest,
        provenance=tuple(prov_records),
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
        image_path=str(image_path),
        undeclared_outputs=tuple(undeclared),
        status=status,
        reason=reason,
    )
    if prov_error is not None:
        prov_error.hint = f"step {step_name!r} was recorded without it"
        raise prov_error
    if result.timed_out:
        raise RuntimeError_(
            f"step {step_name!r} timed out after {timeout} s and was killed",
            hint="recorded as failed; raise --timeout",
        )
    return RunOutcome(entry, code, missing + refused)


def _version() -> str:
    from .._version import __version__

    return __version__
