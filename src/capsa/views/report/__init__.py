"""One self-contained HTML page about a bundle and its replay, for the people who read results:
identity and signatures (verified when the page is made), the lineage graph, every step with its
image and files, the replay verdicts with what differs, and how to reproduce it.

No script, no font, nothing fetched: inline CSS and SVG only, so it works from ``file://``
offline and prints. Everything from the bundle is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..._internal.atomic import atomic_output, check_destination
from ...bundle import Bundle
from ...replay.report import ReplayReport
from ...signing.keys import PublicKey
from .data import ReportData, gather
from .graph import group_steps, rule_of
from .page import render_page
from .replayfile import load_replay, replay_from_dict

__all__ = [
    "ReportData",
    "ReportResult",
    "gather",
    "group_steps",
    "load_replay",
    "render_page",
    "replay_from_dict",
    "rule_of",
    "write_report",
]


@dataclass
class ReportResult:
    path: str
    bytes: int
    layout: str
    steps: int
    verified_ok: bool
    replay_ok: bool | None
    problems: list[dict[str, str]]
    """What verification found (where, what, kind), as the page lists it."""


def write_report(
    path: str | os.PathLike[str],
    b: Bundle,
    *,
    keys: Sequence[PublicKey] = (),
    trust: Sequence[tuple[str, str]] = (),
    replay: ReplayReport | None = None,
    level: Literal["structure", "fixity", "full"] = "full",
    layout: str = "auto",
    force: bool = False,
    progress: bool | None = None,
) -> ReportResult:
    """Write the report of ``b`` to ``path`` (atomically; an existing file only with ``force``)."""
    check_destination(path, force=force)  # before the verification, which may take a while
    data = gather(b, keys=keys, trust=trust, replay=replay, level=level, progress=progress)
    page, engine = render_page(data, b.manifest.steps, layout=layout)
    raw = page.encode("utf-8")
    with atomic_output(path, force=force) as f:
        f.write(raw)
    return ReportResult(
        str(Path(path)), len(raw), engine, len(data.steps), data.verified_ok,
        None if replay is None else replay.ok,
        [{"where": w, "what": what, "kind": k} for w, what, k in data.problems],
    )  # fmt: skip
