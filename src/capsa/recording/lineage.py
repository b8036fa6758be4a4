"""Which recorded steps and files an output depends on, and packing them (spec/recording.md §4)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._internal.fs import ConfinedPath
from ..bundle.pack import PackResult, pack
from ..errors import IntegrityError, NotFoundError, UsageError
from ..format.manifest import Step, StepFile
from ..format.policy import ComparePolicy
from .graph import StepGraph
from .journal import Journal, JournalEntry, current, find_project

__all__ = ["Lineage", "lineage", "pack_from_journal", "select_steps"]


@dataclass
class Lineage:
    steps: list[JournalEntry]
    files: dict[str, tuple[Path | ConfinedPath, str, str]]
    """bundle path -> (host file, role, digest); a step's inputs and outputs are ConfinedPaths:
    read below the project without following any link a step may have planted."""


def select_steps(entries: list[JournalEntry], outputs: Sequence[str] = ()) -> list[JournalEntry]:
    """Successful journal steps that produced ``outputs`` (all if none), transitively, in order."""
    ok = [e for e in current(entries) if e.status == "ok"]
    if not outputs:
        return ok
    return [ok[i] for i in StepGraph([e.step for e in ok]).closure(outputs)]


def _image_name(path: str, digest: str, taken: dict[str, str]) -> str:
    name = PurePosixPath(path).name or "image.sif"
    logical = f"images/{name}"
    if taken.get(logical, digest) != digest:
        logical = f"images/{digest[7:19]}-{name}"
    taken[logical] = digest
    return logical


def lineage(project: Path, outputs: Sequence[str] = ()) -> Lineage:
    journal = Journal(project)
    entries = journal.entries()
    if not entries:
        raise NotFoundError(
            "no recorded steps in this directory",
            where=str(project),
            hint="record steps with `capsa run` first",
        )
    rel_outputs = []
    for o in outputs:
        full = (Path.cwd() / o).resolve()
        try:
            rel_outputs.append(full.relative_to(project).as_posix())
        except ValueError:
            raise UsageError("output is outside the work directory", where=o) from None
    steps = select_steps(entries, rel_outputs)
    if not steps:
        raise NotFoundError("no successful recorded steps to pack", where=str(project))
    produced_later: set[tuple[str, str]] = set()
    consumed: set[tuple[str, str]] = set()
    for e in steps:
        consumed.update((i.path, i.digest) for i in e.step.inputs)
    files: dict[str, tuple[Path | ConfinedPath, str, str]] = {}
    images: dict[str, str] = {}

    def add(logical: str, host: Path | ConfinedPath, role: str, digest: str) -> None:
        old = files.get(logical)
        if old is not None and old[2] != digest:
            # The same path was rewritten by a later step; the bundle keeps the last version and
            # the earlier one must still be on disk under its digest... it is not: refuse.
            raise IntegrityError(
                "a path was written twice with different content; only the last version is on disk",
                where=logical,
                hint="write each version to its own path",
            )
        files[logical] = (host, role, digest)

    graph = StepGraph([e.step for e in steps])
    for k, e in enumerate(steps):
        if e.step.image is not None:
            add(
                _image_name(e.image_path, e.step.image, images),
                Path(e.image_path),
                "image",
                e.step.image,
            )
        for i in e.step.inputs:
            if graph.producer(i.path, i.digest, k) is None:
                add(i.path, _host_file(project, e.step, i), "input", i.digest)
        for out in e.step.outputs:
            produced_later.add((out.path, out.digest))
            role = "intermediate" if (out.path, out.digest) in consumed else "output"
            add(out.path, ConfinedPath(project, out.path), role, out.digest)
        for rec in e.step.provenance:
            add(rec.path, journal.blob_path(rec.digest), "other", rec.digest)
        for stream in ("stdout", "stderr"):
            digest = getattr(e.step, stream)
            if digest is not None:
                add(f"logs/{e.step.name}.{stream}", journal.blob_path(digest), "other", digest)
    return Lineage(steps, files)


def _host_file(project: Path, step: Step, f: StepFile) -> ConfinedPath:
    """Where an input is on the recording host: in the project, or below one of its binds
    (``Bind.source`` is the recording host's path)."""
    if f.at is None:
        return ConfinedPath(project, f.path)
    for b in step.binds:
        if f.at == b.target:
            src = Path(b.source)
            return ConfinedPath(src.parent, src.name)
        if f.at.startswith(b.target + "/"):
            return ConfinedPath(Path(b.source), f.at[len(b.target) + 1 :])
    raise IntegrityError("input outside the work directory and every bind", where=f.path)


def with_policies(steps: list[Step], policies: dict[str, ComparePolicy]) -> list[Step]:
    """``steps`` with the comparison policy of the outputs ``policies`` names replaced (set at
    pack time: ``compare_set`` is ``pack``)."""
    if not policies:
        return steps
    named = set(policies)
    out = []
    for s in steps:
        outputs = tuple(
            o.model_copy(update={"compare": policies[o.path], "compare_set": "pack"})
            if o.path in policies
            else o
            for o in s.outputs
        )
        named -= {o.path for o in s.outputs}
        out.append(s.model_copy(update={"outputs": outputs}))
    if named:
        raise UsageError(
            "a comparison option names a path no packed step wrote", where=sorted(named)[0]
        )
    return out


def pack_from_journal(
    output: str | os.PathLike[str],
    outputs: Sequence[str] = (),
    *,
    project: Path | None = None,
    compare: dict[str, ComparePolicy] | None = None,
    **pack_options: object,
) -> PackResult:
    """Pack the steps behind ``outputs`` (all if none) with every file they need; each file must
    still have the digest it was recorded with (checked by pack as it hashes)."""
    project = (project or find_project()).resolve()
    lin = lineage(project, outputs)
    for logical, (host, _, _) in sorted(lin.files.items()):
        exists = os.path.lexists(host.root / host.rel if isinstance(host, ConfinedPath) else host)
        if not exists:
            raise NotFoundError(
                f"{logical} is no longer on disk",
                where=str(host),
                hint="restore it or re-run the step that made it",
            )
    return pack(
        output,
        files={k: v[0] for k, v in lin.files.items()},
        roles=[(_glob_escape(k), v[1]) for k, v in lin.files.items()],
        steps=with_policies([e.step for e in lin.steps], compare or {}),
        expected={k: v[2] for k, v in lin.files.items()},
        **pack_options,  # type: ignore[arg-type]
    )


def _glob_escape(path: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)
