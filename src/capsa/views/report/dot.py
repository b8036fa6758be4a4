"""Graphviz ``dot`` as the layout engine of the lineage graph.

dot is given only our node ids and box sizes — no label, no bundle string — and asked for
``-Tplain`` (positions and spline control points as numbers). The report draws the SVG itself from
those numbers, so nothing dot writes is ever embedded: a hostile name cannot reach the page through
it. Any failure (not installed, time-out, unexpected output) returns None and the built-in layout
is used.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from .graph import MARGIN, Graph, Placed

__all__ = ["dot_layout", "dot_version"]

_DPI = 72.0


@functools.cache
def dot_version() -> str:
    exe = shutil.which("dot")
    if exe is None:
        return ""
    try:
        done = subprocess.run([exe, "-V"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    words = done.stderr.decode("ascii", "replace").split()
    return words[words.index("version") + 1] if "version" in words[:-1] else "?"


def _source(g: Graph) -> str:
    lines = [
        "digraph lineage {",
        "  graph [rankdir=LR, nodesep=0.2, ranksep=0.6];",
        '  node [shape=box, fixedsize=true, label=""];',
    ]
    for n in g.nodes:
        lines.append(f"  {n.id} [width={n.width / _DPI:.3f}, height={n.height / _DPI:.3f}];")
    for a, b in g.edges:
        lines.append(f"  {g.nodes[a].id} -> {g.nodes[b].id};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _parse(text: str, g: Graph) -> Placed | None:
    index = {n.id: i for i, n in enumerate(g.nodes)}
    boxes: list[tuple[float, float, float, float] | None] = [None] * len(g.nodes)
    edges: dict[tuple[int, int], str] = {}
    height = width = 0.0
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "graph" and len(f) == 4:
            width, height = float(f[2]) * _DPI, float(f[3]) * _DPI
        elif f[0] == "node" and len(f) >= 6 and f[1] in index:
            x, y, w, h = (float(v) * _DPI for v in f[2:6])
            boxes[index[f[1]]] = (x - w / 2 + MARGIN, height - y - h / 2 + MARGIN, w, h)
        elif f[0] == "edge" and len(f) >= 4 and f[1] in index and f[2] in index:
            count = int(f[3])
            nums = [float(v) * _DPI for v in f[4 : 4 + 2 * count]]
            if count < 4 or len(nums) != 2 * count:
                return None
            pts = [
                (nums[k] + MARGIN, height - nums[k + 1] + MARGIN) for k in range(0, len(nums), 2)
            ]
            d = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
            for k in range(1, len(pts) - 2, 3):
                d.append("C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts[k : k + 3]))
            edges[(index[f[1]], index[f[2]])] = " ".join(d)
    if any(b is None for b in boxes) or any(e not in edges for e in g.edges):
        return None
    return Placed(
        width + 2 * MARGIN,
        height + 2 * MARGIN,
        [b for b in boxes if b is not None],
        [edges[e] for e in g.edges],
        engine=f"Graphviz dot {dot_version()}",
    )


def dot_layout(g: Graph, *, timeout: float = 20.0) -> Placed | None:
    """The layout dot makes of ``g``, or None when dot is missing, slow or says something else."""
    exe = shutil.which("dot")
    if exe is None or not g.nodes:
        return None
    try:
        done = subprocess.run(
            [exe, "-Tplain"],
            input=_source(g).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return _parse(done.stdout.decode("ascii"), g)
    except (UnicodeDecodeError, ValueError):
        return None
