"""The replay journal (spec/replay.md §2.1): one JSON line per finished step, appended beside the
replay directory, so that ``--resume`` continues an interrupted replay without running again the
steps whose verdicts it already has.

The first line names the bundle (its id, the manifest's SHA-256) and the mode; a journal of
another bundle or mode is never resumed. Each line is written with one ``write`` on an
``O_APPEND`` descriptor and synced: a crash leaves at most a torn last line, which is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..format.manifest import Step
from .report import OutputReport, StepReport

__all__ = ["SUFFIX", "ReplayJournal", "find_journal", "load_journal"]

SUFFIX = ".journal"
_KIND = "capsa-replay-journal"
_VERSION = 1


class ReplayJournal:
    def __init__(self, path: Path, header: dict[str, Any] | None = None) -> None:
        """Open ``path`` for appending; a new journal starts with ``header``."""
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if header is not None and os.fstat(self.fd).st_size == 0:
            self._line({"kind": _KIND, "version": _VERSION, **header})

    def _line(self, doc: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode())
        os.fsync(self.fd)

    def append(self, index: int, report: StepReport) -> None:
        from dataclasses import asdict

        self._line({"index": index, "report": asdict(report)})

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _report(doc: dict[str, Any]) -> StepReport:
    outputs = [OutputReport(**o) for o in doc.pop("outputs")]
    return StepReport(**doc, outputs=outputs)


def load_journal(
    path: Path, bundle_id: str, mode: str, steps: Sequence[Step]
) -> dict[int, StepReport]:
    """The reports a journal holds, by step index, after checking it is this bundle's."""
    lines = path.read_bytes().split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = {}
    if header.get("kind") != _KIND or header.get("version") != _VERSION:
        raise UsageError("not a capsa replay journal", where=str(path))
    if header.get("bundle_id") != bundle_id:
        raise UsageError(
            "this replay journal is of another bundle",
            where=str(path),
            hint=f"it replayed {header.get('bundle_id')}; replay without --resume",
        )
    if header.get("mode") != mode:
        raise UsageError(
            f"this replay journal is of a {header.get('mode')} replay, not {mode}",
            where=str(path),
        )
    done: dict[int, StepReport] = {}
    for raw in lines[1:]:
        try:
            doc = json.loads(raw)
            i = doc["index"]
            rep = _report(dict(doc["report"]))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line (the replay was killed while writing it)
        if isinstance(i, int) and 0 <= i < len(steps) and steps[i].name == rep.name:
            rep.resumed = True
            done[i] = rep
    return done


def find_journal(where: Path, bundle_id: str) -> Path:
    """The newest journal of ``bundle_id`` among the replays in ``where``."""
    found = []
    for p in where.glob(f"capsa-replay-*{SUFFIX}"):
        try:
            with p.open("rb") as f:
                header = json.loads(f.readline())
            if header.get("kind") == _KIND and header.get("bundle_id") == bundle_id:
                found.append((p.stat().st_mtime, p))
        except (OSError, ValueError, AttributeError):
            continue
    if not found:
        raise UsageError(
            "no interrupted replay of this bundle to resume",
            where=str(where),
            hint="give the --workdir of the interrupted replay, or replay without --resume",
        )
    return max(found)[1]
