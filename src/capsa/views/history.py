"""File history: the origin inputs and the steps that led to an output, oldest first, with the
image each ran in ("container ID"), as KM3NeT physicists read it from their HDF5 tools."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import Bundle, open_bundle
from ..errors import Error, NotFoundError
from ..format.digest import sha256_file
from ..format.layout import MIMETYPE
from ..format.manifest import Step
from ..recording.graph import StepGraph, group_names

__all__ = [
    "History",
    "HistoryStep",
    "bundle_history",
    "by_rule",
    "history_of",
    "image_info",
    "journal_history",
    "to_dot",
]


@dataclass
class HistoryStep:
    name: str
    argv: list[str]
    image: str
    """The image's digest; empty for a step recorded without an image."""
    image_path: str = ""
    sif_id: str = ""
    image_from: str = ""
    arch: str = ""
    inputs: list[dict[str, str]] = field(default_factory=list)
    outputs: list[dict[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    runtime: str = ""
    exit_code: int = 0
    recorded: str = ""


@dataclass
class History:
    path: str
    digest: str
    origins: list[dict[str, str]]
    steps: list[HistoryStep]
    source: str


def by_rule(h: History) -> list[tuple[str, list[HistoryStep]]]:
    """The history's steps by rule, in order of first appearance: the one grouping `capsa
    report` folds its graph by (``recording.graph.group_names``)."""
    groups = group_names([s.name for s in h.steps])
    return [(rule, [h.steps[i] for i in members]) for rule, members in groups.items()]


def image_info(b: Bundle, digest: str) -> dict[str, str]:
    """SIF ID, architecture and the deffile's ``From:`` of an image blob (read in place)."""
    from ..containers.sif import sif_from_file

    info = {"sif_id": "", "image_from": "", "arch": ""}
    try:
        with b.open_blob(digest) as f:
            img = sif_from_file(f, f.size, where=digest)
            info["sif_id"], info["arch"] = img.id, img.arch
            for d in img.of_type("Deffile"):
                for line in (
                    img.read_object(d, limit=1 << 20).decode("utf-8", "replace").splitlines()
                ):
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "from":
                        info["image_from"] = value.strip()
                        break
    except Error:
        pass  # not a SIF, or damaged: history still shows the digest
    return info


def _history(
    steps: list[Step],
    target: str,
    digest: str | None,
    source: str,
    images: dict[str, str],
    info: Any = None,
) -> History:
    # Restrict to steps whose output matched (path, digest) when a digest is known.
    graph = StepGraph(steps)
    last = graph.producer(target, digest)
    if last is None:
        raise NotFoundError(
            "no recorded step produced this file", where=target, hint="it may be an original input"
        )
    chosen = graph.closure([target], before=last + 1)
    out = []
    for i in chosen:
        s = steps[i]
        h = HistoryStep(
            s.name,
            list(s.argv),
            s.image or "",
            images.get(s.image or "", ""),
            inputs=[{"path": f.path, "digest": f.digest} for f in s.inputs],
            outputs=[{"path": f.path, "digest": f.digest} for f in s.outputs],
            env=dict(s.env),
            runtime=f"{s.runtime.name} {s.runtime.version}".strip(),
            exit_code=s.exit_code,
            recorded=s.host.started if s.host else "",
        )
        if info is not None and s.image is not None:
            for k, v in info(s.image).items():
                setattr(h, k, v)
        out.append(h)
    found = digest or next(o.digest for o in steps[last].outputs if o.path == target)
    origins = [{"path": p, "digest": d} for p, d in graph.origins(chosen)]
    return History(target, found, origins, out, source)


def bundle_history(b: Bundle, path: str | None = None) -> History:
    """History of ``path`` in the bundle (default: its only output, or the last step's first)."""
    m = b.manifest
    if not m.steps:
        raise NotFoundError("the bundle has no recorded steps", where=str(b.path))
    if path is None:
        outs = [p for p, f in m.files.items() if f.role == "output"]
        path = (
            outs[0]
            if len(outs) == 1
            else m.steps[-1].outputs[0].path
            if m.steps[-1].outputs
            else ""
        )
    if path not in m.files:
        raise NotFoundError(
            "no such file in the bundle",
            where=f"{b.path}: {path}",
            hint="`capsa ls` lists the files",
        )
    images = {f.digest: p for p, f in m.files.items() if f.role == "image"}
    cache: dict[str, dict[str, str]] = {}

    def info(d: str) -> dict[str, str]:
        if d not in cache:
            cache[d] = image_info(b, d)
        return cache[d]

    return _history(list(m.steps), path, m.files[path].digest, str(b.path), images, info)


def journal_history(file: Path) -> History:
    """History of a file on disk, found by its digest in the local journal."""
    from ..recording.journal import Journal, find_project

    project = find_project(file.resolve().parent)
    entries = [e for e in Journal(project).entries() if e.status == "ok"]
    digest = sha256_file(file)
    for e in reversed(entries):
        for o in e.step.outputs:
            if o.digest == digest:
                images = {x.step.image: x.image_path for x in entries if x.step.image}
                return _history([x.step for x in entries], o.path, digest, str(project), images)
    raise NotFoundError(
        "no recorded step produced a file with this content",
        where=str(file),
        hint="it may be an original input, or changed since it was recorded",
    )


def history_of(target: str | os.PathLike[str], path: str | None = None) -> History:
    """History of ``path`` in bundle ``target``, or of the file ``target`` on disk (looked up in
    its project's journal) when ``target`` is not a bundle and no ``path`` is given."""
    p = Path(target)
    if path is None and p.suffix != ".capsa" and p.is_file() and not _is_bundle(p):
        return journal_history(p)
    with open_bundle(target) as b:
        return bundle_history(b, path)


def _is_bundle(p: Path) -> bool:
    with p.open("rb") as f:
        head = f.read(38 + len(MIMETYPE))
    return head[30:38] == b"mimetype" and head[38:] == MIMETYPE


def to_dot(h: History) -> str:
    """The lineage as a Graphviz DOT digraph: files are boxes, steps are ellipses."""

    def q(*lines: str) -> str:
        esc = [x.replace("\\", "\\\\").replace('"', '\\"') for x in lines]
        return '"' + "\\n".join(esc) + '"'

    lines = ["digraph capsa_history {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    seen: set[str] = set()

    def file_node(path: str, digest: str) -> str:
        key = f"file:{path}@{digest[7:19]}"
        if key not in seen:
            seen.add(key)
            lines.append(f"  {q(key)} [shape=box, label={q(path, digest[7:19])}];")
        return key

    for s in h.steps:
        sid = f"step:{s.name}"
        label = q(
            s.name, " ".join(s.argv)[:60], f"image {s.image[7:19]}" if s.image else "no image"
        )
        lines.append(f"  {q(sid)} [shape=ellipse, label={label}];")
        for f in s.inputs:
            lines.append(f"  {q(file_node(f['path'], f['digest']))} -> {q(sid)};")
        for f in s.outputs:
            lines.append(f"  {q(sid)} -> {q(file_node(f['path'], f['digest']))};")
    lines.append("}")
    return "\n".join(lines) + "\n"
