"""Running one step so that exactly its own writes are known (spec/recording.md §3.1).

``overlay``: the project is the lower layer of an overlay the step runs on; its upper layer is
the step's change set, read before anything reaches the project, then committed under the
project's lock, refusing a commit that would replace what another step wrote meanwhile. Cost is
proportional to what the step wrote, not to the size of the project, and parallel steps in one
project never see or claim each other's files.

``snapshot``: where overlays cannot be mounted (no unprivileged user namespaces, an overlayfs or
NFS project), the project is snapshotted before and after the step, under an exclusive project
lock so that concurrent steps run one at a time (correct, but serial), and the files capsa's own
standard output and error go to are never outputs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._internal.lock import locked
from ..containers.runtime import RunResult, RunSpec, Runtime
from ..containers.runtime.cache import remove_tree
from ..containers.runtime.overlay import LAUNCH_FAILED, Overlay
from ..errors import RuntimeError_
from .changes import ChangeSet, Conflict, commit, scan, start_tick
from .journal import STATE_DIR

__all__ = ["Capture", "run_captured_step"]


@dataclass
class Capture:
    """What the step did, and where to read the files it wrote before they are committed."""

    result: RunResult
    mechanism: str  # "overlay" | "snapshot"
    changes: ChangeSet
    view: Path
    project: Path
    """The directory the written files are read from (the upper layer, or the project)."""
    existed_dirs: set[str] = field(default_factory=set)
    """Directories of the project that existed before the step."""
    fallback_reason: str = ""
    finish: Callable[[], None] = lambda: None
    """Commit (overlay) and clean up; raises Conflict when another step changed a path first."""
    discard: Callable[[], None] = lambda: None


def _run_dir(project: Path) -> Path:
    base = project / STATE_DIR / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    d = base / f"run-{os.getpid()}-{secrets.token_hex(4)}"
    d.mkdir(mode=0o700)
    return d


def run_captured_step(
    rt: Runtime,
    spec: RunSpec,
    stdout: Path,
    stderr: Path,
    *,
    echo: bool,
    mechanism: str = "auto",
) -> Capture:
    """Run ``spec`` (its ``work_source`` is the project) and say what it changed."""
    project = spec.work_source
    reason = ""
    if mechanism in ("auto", "overlay"):
        capture = _overlay(rt, spec, stdout, stderr, echo=echo)
        if not isinstance(capture, str):
            return capture
        if mechanism == "overlay":
            raise RuntimeError_(
                f"cannot run the step on an overlay: {capture}",
                hint="use --capture snapshot (steps then run one at a time)",
            )
        reason = capture
    cap = _snapshot_run(rt, spec, stdout, stderr, project, echo=echo)
    cap.fallback_reason = reason
    return cap


def _overlay(
    rt: Runtime, spec: RunSpec, stdout: Path, stderr: Path, *, echo: bool
) -> Capture | str:
    project = spec.work_source
    run = _run_dir(project)
    for d in ("upper", "work", "merged"):
        (run / d).mkdir()
    ov = Overlay(project, run / "upper", run / "work", run / "merged", run / "overlay-status")
    t0 = start_tick(run / "start")
    try:
        result = rt.run(replace(spec, overlay=ov), stdout, stderr, echo=echo)
    except BaseException:
        remove_tree(run)
        raise
    why = ov.failure()
    if why is not None and result.exit_code == LAUNCH_FAILED:
        remove_tree(run)
        return why
    lock = project / STATE_DIR / "commit.lock"

    def finish() -> None:
        with locked(lock):
            plan = scan(ov.upper, project, t0)
            if plan.conflicts:
                raise Conflict(plan.conflicts[0])
            commit(plan, ov.upper, project, run / "trash")
        remove_tree(run)

    def discard() -> None:
        remove_tree(run)

    # Read the change set now (nothing is committed yet); the commit re-plans under the lock.
    plan = scan(ov.upper, project, t0)
    existed = _existing_dirs(project, plan.changes.written)
    return Capture(
        result,
        "overlay",
        plan.changes,
        ov.upper,
        project,
        existed,
        finish=finish,
        discard=discard,
    )


def _existing_dirs(project: Path, written: list[str]) -> set[str]:
    dirs = set()
    for rel in written:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if (project / d).is_dir() and not (project / d).is_symlink():
                dirs.add(d)
    return dirs


@contextlib.contextmanager
def _exclusive(project: Path) -> Iterator[None]:
    with locked(project / STATE_DIR / "run.lock"):
        yield


def _own_outputs() -> set[tuple[int, int]]:
    """(device, inode) of the files capsa's own stdout/stderr are redirected to."""
    out = set()
    for fd in (1, 2):
        with contextlib.suppress(OSError, ValueError):
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                out.add((st.st_dev, st.st_ino))
    return out


def _snapshot(root: Path) -> tuple[dict[str, tuple[int, int, int, int]], set[str]]:
    files: dict[str, tuple[int, int, int, int]] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        rel_here = here.relative_to(root).as_posix()
        for d in dirnames:
            dirs.add(d if rel_here == "." else f"{rel_here}/{d}")
        for name in filenames:
            p = here / name
            try:
                st = p.lstat()
            except OSError:
                continue
            rel = name if rel_here == "." else f"{rel_here}/{name}"
            files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    return files, dirs


def _snapshot_run(
    rt: Runtime, spec: RunSpec, stdout: Path, stderr: Path, project: Path, *, echo: bool
) -> Capture:
    with _exclusive(project):
        before, dirs = _snapshot(project)
        result = rt.run(spec, stdout, stderr, echo=echo)
        after, _ = _snapshot(project)
    own = _own_outputs()
    written = sorted(
        p for p, st in after.items() if before.get(p) != st and (st[3], st[2]) not in own
    )
    deleted = sorted(set(before) - set(after))
    return Capture(result, "snapshot", ChangeSet(written, deleted), project, project, dirs)
