"""What every export needs from a bundle: digests, images, times, lineage, JSON output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .._internal.atomic import atomic_output
from ..bundle import Bundle
from ..format.digest import parse_digest
from ..format.manifest import HostInfo, Manifest, Step
from ..recording.graph import StepGraph
from ..views.history import image_info

__all__ = [
    "ImageRef",
    "dumps",
    "end_time",
    "file_for",
    "hexof",
    "images",
    "origins",
    "recorder_versions",
    "results",
    "run_span",
    "start_time",
    "write_bytes",
    "write_json",
]


def hexof(digest: str) -> str:
    """The 64 hex digits of ``sha256:<hex>``."""
    return parse_digest(digest)


@dataclass(frozen=True)
class ImageRef:
    """A SIF image a step ran in, as the exports describe it."""

    digest: str
    path: str | None
    """Its bundle path (role ``image`` preferred), or None when it is stored only as a blob."""
    size: int
    media_type: str
    sif_id: str
    arch: str
    image_from: str

    @property
    def label(self) -> str:
        return (
            self.image_from
            or (self.path.rsplit("/", 1)[-1] if self.path else "")
            or f"SIF image {hexof(self.digest)[:12]}"
        )


def _path_of(m: Manifest, digest: str) -> str | None:
    paths = sorted(p for p, f in m.files.items() if f.digest == digest)
    preferred = [p for p in paths if m.files[p].role == "image"]
    chosen = preferred or paths
    return chosen[0] if chosen else None


def images(bundle: Bundle) -> dict[str, ImageRef]:
    """Every image the steps name, by digest, in first-use order; read in place (no extraction)."""
    m = bundle.manifest
    out: dict[str, ImageRef] = {}
    for s in m.steps:
        if s.image is None or s.image in out:
            continue
        info = image_info(bundle, s.image)
        blob = m.blobs[s.image]
        out[s.image] = ImageRef(
            s.image,
            _path_of(m, s.image),
            blob.size,
            blob.media_type,
            info["sif_id"],
            info["arch"],
            info["image_from"],
        )
    return out


def file_for(m: Manifest, path: str, digest: str) -> bool:
    """Is (path, digest) — a step's input or output — the bundle file at ``path``?

    A path may be written by several steps; only the last content is a bundle file, earlier
    ones are kept as blobs (spec/format.md §7.5).
    """
    f = m.files.get(path)
    return f is not None and f.digest == digest


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def start_time(host: HostInfo | None) -> str | None:
    if host is None or _parse_time(host.started) is None:
        return None
    return host.started


def end_time(host: HostInfo | None) -> str | None:
    """``started + duration_ms`` in ISO 8601 UTC, or None when the step has no recorded start."""
    if host is None:
        return None
    start = _parse_time(host.started)
    if start is None:
        return None
    end = start + timedelta(milliseconds=host.duration_ms)
    if host.duration_ms % 1000 == 0:
        return end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return end.strftime("%Y-%m-%dT%H:%M:%S.") + f"{end.microsecond // 1000:03d}Z"


def _key(text: str) -> datetime:
    return datetime.fromisoformat(text[:-1])  # "…Z" (Python 3.10 has no "Z" in fromisoformat)


def run_span(steps: tuple[Step, ...]) -> tuple[str | None, str | None]:
    """The earliest recorded start and the latest recorded end of ``steps`` (None if none)."""
    starts = [t for t in (start_time(s.host) for s in steps) if t is not None]
    ends = [t for t in (end_time(s.host) for s in steps) if t is not None]
    return (min(starts, key=_key) if starts else None, max(ends, key=_key) if ends else None)


def origins(steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    """(path, digest) of the inputs no earlier step produced, in order of first use."""
    return StepGraph(steps).origins()


def results(steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    """(path, digest) of step outputs no later step read: the run's final results."""
    return StepGraph(steps).results()


def recorder_versions(steps: tuple[Step, ...]) -> list[str]:
    return sorted({s.host.capsa_version for s in steps if s.host and s.host.capsa_version})


def dumps(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_json(doc: Any, out: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``doc`` as indented UTF-8 JSON atomically (``-`` is standard output)."""
    return write_bytes(dumps(doc), out, force=force)


def write_bytes(data: bytes, out: str | os.PathLike[str], *, force: bool = False) -> Path:
    if str(out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return Path("-")
    with atomic_output(out, force=force) as f:
        f.write(data)
    return Path(out)
