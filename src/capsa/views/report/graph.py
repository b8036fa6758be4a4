"""The lineage graph for people: origin files → steps → results, each step with its image as a
badge. Big productions are folded by rule, so 1,000 steps stay one readable picture.

Nodes carry display text only; their ids (``n0``, ``n1``, …) are made here and are the only
names a layout engine (Graphviz) ever sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...format.manifest import Step
from ...recording.graph import StepGraph, group_steps, rule_of

__all__ = [
    "DETAIL_FILES",
    "DETAIL_STEPS",
    "MARGIN",
    "Graph",
    "Node",
    "Placed",
    "build_graph",
    "group_steps",
    "rule_of",
]

DETAIL_STEPS = 40
"""More steps than this and the graph shows one node per rule, not per step."""
DETAIL_FILES = 120
MARGIN = 16.0
"""Space around a placed graph, in px."""
_LABEL = 34
_CHAR_W = 7.6  # px per character of a bold 12 px label (generous, so text fits)
_SUB_W = 6.0  # px per character of the 11 px second line


def _short(text: str, n: int = _LABEL) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Node:
    id: str
    kind: str  # origin | file | result | step
    label: str
    sub: str = ""
    badge: str = ""
    badge_index: int = -1
    title: str = ""
    """Full text for the tooltip."""
    anchor: str = ""
    """The page's own element id to link to (made by the report, never a bundle string)."""
    status: str = ""
    """A known verdict or step status, for colour; empty without a replay."""
    width: float = 0.0
    height: float = 0.0


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    grouped: bool = False

    def add(self, kind: str, label: str, **kw: object) -> int:
        n = Node(f"n{len(self.nodes)}", kind, _short(label), **kw)  # type: ignore[arg-type]
        n.sub = _short(n.sub)
        lines = 1 + bool(n.sub) + bool(n.badge)
        text = max(len(n.label) * _CHAR_W, len(n.sub) * _SUB_W, (len(n.badge) + 2) * _SUB_W)
        n.width = max(text, 50) + 20
        n.height = 12 + 16 * lines
        self.nodes.append(n)
        return len(self.nodes) - 1


@dataclass
class Placed:
    """Where everything goes: a box (x, y, width, height) per node, an SVG path per edge."""

    width: float
    height: float
    boxes: list[tuple[float, float, float, float]]
    paths: list[str] = field(default_factory=list)
    engine: str = "built-in layered layout"


# One file as it flows: (path, digest, index of the step that made it or -1 for an origin).
_File = tuple[str, str, int]


def _readers(steps: Sequence[Step]) -> dict[_File, set[int]]:
    """Every file instance, in order of first appearance, with the steps that read it."""
    graph = StepGraph(steps)
    readers: dict[_File, set[int]] = {}
    for j, s in enumerate(steps):
        for f in s.inputs:
            p = graph.producer(f.path, f.digest, before=j)
            readers.setdefault((f.path, f.digest, -1 if p is None else p), set()).add(j)
        for f in s.outputs:
            readers.setdefault((f.path, f.digest, j), set())
    return readers


def build_graph(
    steps: Sequence[Step],
    images: Mapping[str, tuple[str, int]],
    status: Mapping[int, str] | None = None,
    *,
    detail: bool | None = None,
) -> Graph:
    """The graph of ``steps``; ``images`` maps an image digest to (badge text, colour index),
    ``status`` a step index to its replay status. ``detail`` forces one node per step (True) or
    per rule (False); by default big productions are folded."""
    status = status or {}
    readers = _readers(steps)
    if detail is None:
        detail = len(steps) <= DETAIL_STEPS and len(readers) <= DETAIL_FILES
    groups = {str(i): [i] for i in range(len(steps))} if detail else group_steps(steps)
    g = Graph(grouped=not detail)
    group_of: dict[int, int] = {}
    for k, (key, members) in enumerate(groups.items()):
        used = {steps[i].image for i in members}
        badge, colour = ("", -1)
        if used == {None}:
            badge = "no image"
        elif len(used) == 1:
            badge, colour = images.get(next(iter(used)) or "", ("", -1))
        if len(used) > 1:
            badge = f"{len(used)} images"
        worst = _worst([status.get(i, "") for i in members])
        if detail:
            s = steps[members[0]]
            node = g.add(
                "step", s.name, sub=" ".join(s.argv), badge=badge, badge_index=colour,
                title=f"{s.name}: {' '.join(s.argv)}"[:2000], anchor=f"step-{members[0]}",
                status=worst,
            )  # fmt: skip
        else:
            node = g.add(
                "step", key, sub=f"\u00d7{len(members)} steps" if len(members) > 1 else "",
                badge=badge, badge_index=colour, title=f"{key}: {len(members)} steps"[:2000],
                anchor=f"group-{k}", status=worst,
            )  # fmt: skip
        for i in members:
            group_of[i] = node
    # Files: one node each in detail, else one per (made by, read by) — a fan-out is one node.
    bunches: dict[tuple[int, frozenset[int]], list[_File]] = {}
    if not detail:
        for f, read_by in readers.items():
            made_by = group_of[f[2]] if f[2] >= 0 else -1
            bunches.setdefault((made_by, frozenset(group_of[j] for j in read_by)), []).append(f)
    flows = [[f] for f in readers] if detail else list(bunches.values())
    edges: set[tuple[int, int]] = set()
    for files in flows:
        made_by = group_of[files[0][2]] if files[0][2] >= 0 else -1
        read_by = {group_of[j] for f in files for j in readers[f]}
        kind = "origin" if made_by < 0 else "file" if read_by else "result"
        path = files[0][0]
        if len(files) == 1:
            node = g.add(kind, path, sub=files[0][1][7:19], title=f"{path} {files[0][1]}"[:2000])
        else:
            node = g.add(kind, f"{len(files)} files", sub=f"e.g. {path}", title=path[:2000])
        if made_by >= 0:
            edges.add((made_by, node))
        edges.update((node, r) for r in read_by)
    g.edges = sorted(edges)
    return g


_RANK = [
    "",
    "skipped",
    "identical",
    "ok",
    "equivalent",
    "missing",
    "different",
    "timeout",
    "failed",
]


def _worst(found: Sequence[str]) -> str:
    return max(found, key=lambda s: _RANK.index(s) if s in _RANK else 0, default="")
