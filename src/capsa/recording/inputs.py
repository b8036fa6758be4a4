"""Inputs of a step: in the project, or below a ``--bind`` of data outside it (spec/recording.md
§3.4); located without following links and hashed before the step runs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from .._internal.fs import UnsafePath, open_regular, open_root
from ..containers.runtime import Mount
from ..errors import NotFoundError, UsageError
from ..format.digest import sha256_fileobj
from ..format.manifest import StepFile
from ..format.names import ContainerPath, explain
from .journal import STATE_DIR

__all__ = [
    "WORKDIR",
    "check_binds",
    "digest_confined",
    "hash_input",
    "locate",
    "parse_bind",
    "relative",
]

WORKDIR = "/work"

_CONTAINER_PATH: TypeAdapter[str] = TypeAdapter(ContainerPath)
_NO_DIGEST = "sha256:" + "0" * 64  # replaced once the input is hashed


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


def locate(project: Path, binds: Sequence[Mount], p: str, what: str) -> StepFile | str:
    """A project-relative path, or (for a file under a bind) a StepFile without its digest."""
    raw = Path.cwd() / p
    full = raw.resolve() if raw.name in ("", ".", "..") else raw.parent.resolve() / raw.name
    for b in binds:
        with contextlib.suppress(ValueError):
            rel = full.relative_to(b.source).as_posix()
            at = b.target if rel == "." else f"{b.target}/{rel}"
            return StepFile(path=f"binds/{at.strip('/')}", digest=_NO_DIGEST, at=at)
    return relative(project, p, what)


def check_binds(project: Path, mounts: Sequence[Mount]) -> None:
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


def hash_input(project: Path, mounts: Sequence[Mount], x: StepFile | str) -> StepFile:
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
        digest = digest_in(root, rel)
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


def digest_in(root: Path, rel: str) -> str:
    fd = open_root(root)
    try:
        return digest_confined(fd, rel)
    finally:
        os.close(fd)


def digest_confined(root_fd: int, rel: str) -> str:
    """SHA-256 of the regular file ``rel`` below ``root_fd``, reached without following links."""
    with os.fdopen(open_regular(root_fd, rel, where=rel), "rb", buffering=0) as f:
        return sha256_fileobj(f)


def relative(project: Path, p: str, what: str) -> str:
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
