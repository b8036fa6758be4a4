"""Placing the lineage graph left to right: Graphviz ``dot`` when it is installed (see
:mod:`.dot`), else this built-in layered (Sugiyama-style) layout in pure Python:

1. layers by longest path from the origins;
2. edges longer than one layer get a chain of invisible points, so they bend around nodes;
3. the order inside each layer by barycentre sweeps, down and up, to keep crossings few;
4. coordinates: layers side by side, each node pulled towards its neighbours' centres, never
   overlapping.
"""

from __future__ import annotations

import itertools

from ...errors import UsageError
from .graph import MARGIN, Graph, Placed

__all__ = ["layered_layout", "place"]

LAYER_GAP = 50.0
NODE_GAP = 14.0
_SWEEPS = 8


def place(g: Graph, engine: str = "auto", *, timeout: float = 20.0) -> Placed:
    """Lay ``g`` out with ``engine``: "dot", "builtin", or "auto" (dot when it works)."""
    if engine not in ("auto", "dot", "builtin"):
        raise UsageError(f"unknown layout {engine!r}", hint="use auto, dot or builtin")
    if engine in ("auto", "dot"):
        from .dot import dot_layout

        placed = dot_layout(g, timeout=timeout)
        if placed is not None:
            return placed
        if engine == "dot":
            raise UsageError(
                "Graphviz dot is not installed, or failed on this graph",
                hint="install graphviz, or use --layout builtin",
            )
    return layered_layout(g)


def _layers(n: int, edges: list[tuple[int, int]]) -> list[int]:
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    layer = [0] * n
    todo = [v for v in range(n) if indeg[v] == 0]
    while todo:
        v = todo.pop()
        for w in succ[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                todo.append(w)
    return layer


def _spline(points: list[tuple[float, float]]) -> str:
    """A smooth path through ``points`` with horizontal tangents (left to right flow)."""
    x0, y0 = points[0]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in points[1:]:
        dx = (x1 - x0) / 2
        d.append(f"C{x0 + dx:.1f},{y0:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(d)


def layered_layout(g: Graph) -> Placed:
    n = len(g.nodes)
    layer = _layers(n, g.edges)
    # Long edges become chains through dummy points (ids n, n+1, …; size zero).
    size = [(nd.width, nd.height) for nd in g.nodes]
    chains: list[list[int]] = []
    adj: list[tuple[int, int]] = []
    for a, b in g.edges:
        chain = [a]
        for lv in range(layer[a] + 1, layer[b]):
            layer.append(lv)
            size.append((0.0, 0.0))
            chain.append(len(layer) - 1)
        chain.append(b)
        chains.append(chain)
        adj.extend(itertools.pairwise(chain))
    total = len(layer)
    preds: list[list[int]] = [[] for _ in range(total)]
    succs: list[list[int]] = [[] for _ in range(total)]
    for a, b in adj:
        succs[a].append(b)
        preds[b].append(a)
    depth = max(layer, default=0) + 1
    rows: list[list[int]] = [[] for _ in range(depth)]
    for v in range(total):
        rows[layer[v]].append(v)
    pos = [0.0] * total
    for row in rows:
        for i, v in enumerate(row):
            pos[v] = float(i)
    for sweep in range(_SWEEPS):
        down = sweep % 2 == 0
        order = range(1, depth) if down else range(depth - 2, -1, -1)
        for lv in order:
            row = rows[lv]
            near = preds if down else succs

            def centre(v: int, near: list[list[int]] = near) -> float:
                ns = near[v]
                return sum(pos[u] for u in ns) / len(ns) if ns else pos[v]

            row.sort(key=centre)
            for i, v in enumerate(row):
                pos[v] = float(i)
    # Coordinates: x by layer, y stacked then pulled towards neighbours.
    widths = [max((size[v][0] for v in row), default=0.0) for row in rows]
    xs = [MARGIN]
    for w in widths[:-1]:
        xs.append(xs[-1] + w + LAYER_GAP)
    y = [0.0] * total
    for row in rows:
        top = 0.0
        for v in row:
            y[v] = top + size[v][1] / 2
            top += size[v][1] + (NODE_GAP if size[v][1] else NODE_GAP / 2)
    for sweep in range(4):
        for row in rows if sweep % 2 == 0 else rows[::-1]:
            want = []
            for v in row:
                ns = preds[v] + succs[v]
                want.append(sum(y[u] for u in ns) / len(ns) if ns else y[v])
            _pack(row, want, size, y)
    low = min((y[v] - size[v][1] / 2 for v in range(total)), default=0.0)
    boxes = []
    for v in range(n):
        w, h = size[v]
        cx = xs[layer[v]] + widths[layer[v]] / 2
        boxes.append((cx - w / 2, y[v] - h / 2 - low + MARGIN, w, h))
    paths = []
    for chain in chains:
        pts = []
        for k, v in enumerate(chain):
            cx = xs[layer[v]] + widths[layer[v]] / 2
            w = size[v][0]
            x = cx + w / 2 if k == 0 else cx - w / 2 if k == len(chain) - 1 else cx
            pts.append((x, y[v] - low + MARGIN))
        paths.append(_spline(pts))
    height = max((y[v] + size[v][1] / 2 - low for v in range(total)), default=0.0) + 2 * MARGIN
    width = xs[-1] + widths[-1] + MARGIN if rows else 2 * MARGIN
    return Placed(width, height, boxes, paths)


def _pack(
    row: list[int], want: list[float], size: list[tuple[float, float]], y: list[float]
) -> None:
    """Put each node of ``row`` as near its wanted centre as the order and gaps allow."""
    if not row:
        return
    gap = [size[v][1] / 2 for v in row]
    placed = list(want)
    for i in range(1, len(row)):  # push down what overlaps its upper neighbour
        placed[i] = max(placed[i], placed[i - 1] + gap[i - 1] + gap[i] + NODE_GAP)
    # Shift the whole row so that on average it sits where it wanted to.
    shift = sum(w - p for w, p in zip(want, placed, strict=True)) / len(row)
    for v, p in zip(row, placed, strict=True):
        y[v] = p + shift
