"""Everything the report shows, gathered from a bundle (and a replay report) as plain data:
identity, the verification made now, images, steps with their files and compare policies, the
replay verdicts matched to steps, and sampled series of what differs."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ...bundle import Bundle
from ...bundle.verify import check_signatures
from ...errors import Error, UsageError
from ...format.manifest import Author, StepFile
from ...replay.report import OutputReport, ReplayReport, StepReport
from ...signing.envelopes import SignatureCheck
from ...signing.keys import PublicKey
from .graph import group_steps
from .images import ImageDetails, image_details
from .series import Series, replayed_file, sample_pair

__all__ = ["FileRef", "ReportData", "StepView", "gather", "policy_text"]

MAX_SERIES = 24
"""Sampled plots per report (each reads a few hundred values from two files)."""
_SERIES_PER_OUTPUT = 6


@dataclass
class FileRef:
    path: str
    digest: str
    size: int
    policy: str = ""


@dataclass
class StepView:
    index: int
    name: str
    group: str
    argv: list[str]
    command: str
    image: str
    env: dict[str, str]
    workdir: str
    runtime: str
    exit_code: int
    recorded: str
    host: str
    duration_ms: int
    inputs: list[FileRef]
    outputs: list[FileRef]
    replay: StepReport | None = None
    status: str = ""
    """Replay status for colour: the step's status if not ok, else its worst verdict."""


@dataclass
class ReportData:
    bundle: str
    bundle_id: str
    format: str
    title: str
    description: str
    authors: list[Author]
    license: str
    identifiers: list[tuple[str, str]]
    created: str
    signatures: list[SignatureCheck]
    level: str
    verified_ok: bool
    problems: list[tuple[str, str, str]]
    """(where, what, kind) of every problem verification found."""
    blobs_checked: int
    bytes_checked: int
    made_at: str
    trust: list[tuple[str, str]]
    """How the trusted keys were given: ("--key", FILE) or ("--trusted-keys", DIR)."""
    images: dict[str, ImageDetails]
    steps: list[StepView]
    groups: dict[str, list[int]]
    files: list[tuple[str, str, int, str]]
    """(path, role, size, digest) of every member."""
    content_size: int
    stored_size: int
    file_size: int
    replay: ReplayReport | None = None
    series: dict[tuple[int, str], list[Series]] = field(default_factory=dict)
    """(step index, output path) → sampled series of its differing datasets."""


def policy_text(f: StepFile) -> str:
    """How replay compares an output: the method and every option that is set."""
    if f.compare is None:
        return "bytes (identical SHA-256)"
    options = f.compare.model_dump(exclude={"method"}, exclude_none=True, exclude_defaults=True)
    parts = []
    for k, v in options.items():
        shown = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        parts.append(f"{k.replace('_', ' ')} {shown}")
    return f.compare.method + (f": {'; '.join(parts)}" if parts else "")


def _made_at() -> str:
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    stamp = int(sde) if sde.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def _status(rep: StepReport | None) -> str:
    if rep is None:
        return ""
    if rep.status != "ok":
        return rep.status
    order = ["identical", "equivalent", "missing", "different"]
    verdicts = [o.verdict for o in rep.outputs if o.verdict in order]
    return max(verdicts, key=order.index) if verdicts else "ok"


def gather(
    b: Bundle,
    *,
    keys: Sequence[PublicKey] = (),
    trust: Sequence[tuple[str, str]] = (),
    replay: ReplayReport | None = None,
    level: Literal["structure", "fixity", "full"] = "full",
    progress: bool | None = None,
) -> ReportData:
    """The report's data for ``b``: signatures checked against ``keys`` and the bundle verified
    at ``level`` now; ``replay`` (for this bundle) matched to its steps. ``trust`` says how the
    keys were given — ("--key", FILE), ("--trusted-keys", DIR) — for the reproduce commands."""
    m = b.manifest
    if replay is not None and replay.bundle_id != b.id:
        raise UsageError(
            "the replay report is for another bundle",
            where=f"{b.path}: {b.id} vs {replay.bundle_id}",
            hint="give the replay of this bundle (capsa replay BUNDLE --json)",
        )
    rep = b.verify(level, keys=keys, require_signature=False, progress=progress)
    sigs = rep.signatures if level == "full" else check_signatures(b, list(keys), require=False)[0]
    sizes = {d: blob.size for d, blob in m.blobs.items()}
    image_paths: dict[str, list[str]] = {}
    for p, f in m.files.items():
        if f.role == "image":
            image_paths.setdefault(f.digest, []).append(p)
    for s in m.steps:
        if s.image is not None:
            image_paths.setdefault(s.image, [])
    images = {d: image_details(b, d, paths) for d, paths in image_paths.items()}
    by_name = {s.name: s for s in replay.steps} if replay else {}
    groups = group_steps(m.steps)
    group_of = {i: g for g, members in groups.items() for i in members}
    steps = []
    for i, s in enumerate(m.steps):
        host = s.host
        sr = by_name.get(s.name)
        steps.append(
            StepView(
                index=i,
                name=s.name,
                group=group_of[i],
                argv=list(s.argv),
                command=shlex.join(s.argv),
                image=s.image or "",
                env=dict(s.env),
                workdir=s.workdir,
                runtime=f"{s.runtime.name} {s.runtime.version}".strip(),
                exit_code=s.exit_code,
                recorded=host.started if host else "",
                host=" ".join(x for x in (host.hostname, host.machine) if x) if host else "",
                duration_ms=host.duration_ms if host else 0,
                inputs=[FileRef(f.path, f.digest, sizes.get(f.digest, 0)) for f in s.inputs],
                outputs=[
                    FileRef(f.path, f.digest, sizes.get(f.digest, 0), policy_text(f))
                    for f in s.outputs
                ],
                replay=sr,
                status=_status(sr),
            )
        )
    data = ReportData(
        bundle=str(b.path),
        bundle_id=b.id,
        format=m.capsa,
        title=m.bundle.title,
        description=m.bundle.description,
        authors=list(m.bundle.authors),
        license=m.bundle.license or "",
        identifiers=[(i.scheme, i.value) for i in m.bundle.identifiers],
        created=m.bundle.created or "",
        signatures=sigs,
        level=level,
        verified_ok=rep.ok,
        problems=[(p.where, p.what, p.kind) for p in rep.problems],
        blobs_checked=rep.blobs_checked,
        bytes_checked=rep.bytes_checked,
        made_at=_made_at(),
        trust=list(trust),
        images=images,
        steps=steps,
        groups=groups,
        files=[(mem.path, mem.role, mem.size, mem.digest) for mem in b.members()],
        content_size=sum(x.size for x in m.blobs.values()),
        stored_size=sum(x.stored_size for x in m.blobs.values()),
        file_size=b.file_size,
        replay=replay,
    )
    if replay is not None and replay.workdir:
        _sample_all(b, data, replay.workdir)
    return data


def data_differences(o: OutputReport) -> list[dict[str, Any]]:
    """The differences of ``o`` that count elements (HDF5 data, and any comparator that reports
    ``count`` and ``elements`` the same way), flattened for plotting."""
    rows = []
    for d in o.differences:
        detail = d.get("detail")
        if (
            isinstance(detail, dict)
            and isinstance(detail.get("count"), int)
            and isinstance(detail.get("elements"), int)
        ):
            rows.append({"path": d.get("path", "")} | detail)
    return rows


def _sample_all(b: Bundle, data: ReportData, workdir: str) -> None:
    budget = MAX_SERIES
    for st in data.steps:
        if st.replay is None:
            continue
        for o in st.replay.outputs:
            if budget <= 0:
                return
            if o.verdict != "different" or o.expected not in b.manifest.blobs:
                continue
            wanted = [d for d in o.differences if d.get("kind") == "data"][:_SERIES_PER_OUTPUT]
            if not wanted:
                continue
            fd = replayed_file(workdir, st.index, st.name, o.path)
            if fd is None:
                continue
            try:
                found = sample_pair(b, o.expected, fd, wanted[:budget])
            except Error:
                found = []  # the recorded blob cannot be read: verification says why
            finally:
                os.close(fd)
            if found:
                data.series[(st.index, o.path)] = found
                budget -= len(found)
