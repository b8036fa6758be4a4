"""Inline SVG: the lineage graph, and the small plots of what differs.

Every piece of text is escaped with :func:`html.escape` (quotes too); class names and colours come
from fixed tables here, never from a bundle; numbers are formatted by us.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .graph import Graph, Placed
from .markup import BADGE_COLOURS, e, status_class
from .series import Series

__all__ = ["difference_bars", "graph_svg", "series_svg"]


def graph_svg(g: Graph, p: Placed) -> str:
    w, h = math.ceil(p.width), math.ceil(p.height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" viewBox="0 0 {w} {h}" '
        f'width="{w}" height="{h}" role="img" aria-label="lineage graph" '
        # Shrink to the page while the text stays readable (to 60 %), scroll beyond that.
        f'style="width: 100%; max-width: {w}px; min-width: {math.ceil(w * 0.6)}px; height: auto">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
        '<g class="edges">',
    ]
    out += [f'<path d="{d}" marker-end="url(#arrow)"/>' for d in p.paths]
    out.append('</g><g class="nodes">')
    for n, (x, y, bw, bh) in zip(g.nodes, p.boxes, strict=True):
        cls = f"node k-{n.kind} {status_class(n.status)}"
        body = [f"<title>{e(n.title or n.label)}</title>"]
        rx = 14 if n.kind == "step" else 3
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}" rx="{rx}" '
            'class="box"/>'
        )
        cx, ty = x + bw / 2, y + 19
        body.append(f'<text x="{cx:.1f}" y="{ty:.1f}" class="label">{e(n.label)}</text>')
        if n.sub:
            ty += 16
            body.append(f'<text x="{cx:.1f}" y="{ty:.1f}" class="sub">{e(n.sub)}</text>')
        if n.badge:
            ty += 16
            colour = f"b{n.badge_index % BADGE_COLOURS}" if n.badge_index >= 0 else "bn"
            bwid = len(n.badge) * 6.4 + 12
            body.append(
                f'<rect x="{cx - bwid / 2:.1f}" y="{ty - 11:.1f}" width="{bwid:.1f}" height="15" '
                f'rx="7" class="badge {colour}"/>'
            )
            body.append(f'<text x="{cx:.1f}" y="{ty:.1f}" class="badge-text">{e(n.badge)}</text>')
        inner = "".join(body)
        if n.anchor:
            inner = f'<a href="#{e(n.anchor)}">{inner}</a>'
        out.append(f'<g class="{cls}">{inner}</g>')
    out.append("</g></svg>")
    return "\n".join(out)


def _num(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return e(v) if isinstance(v, str) else "?"
    return f"{v:.4g}" if isinstance(v, float) else f"{v:,}"


def difference_bars(rows: Sequence[dict[str, Any]]) -> str:
    """One bar per differing place: the share of its elements that differ (at least a sliver, so a
    single element shows), labelled with the count and the largest differences, and ticks where
    the first differing elements are when the place is one-dimensional."""
    bar_x, bar_w, row_h, label_w = 230, 300, 38, 220
    width, height = bar_x + 480, row_h * len(rows) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot bars" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="differing elements">'
    ]
    for k, r in enumerate(rows):
        y = 4 + k * row_h
        count, total = r.get("count"), r.get("elements")
        share = count / total if isinstance(count, int) and isinstance(total, int) and total else 0
        path = str(r.get("path", ""))
        shown = path if len(path) * 6.6 <= label_w else "…" + path[-int(label_w / 6.6) + 1 :]
        out.append(
            f'<text x="0" y="{y + 13}" class="label"><title>{e(path)}</title>{e(shown)}</text>'
        )
        out.append(f'<rect x="{bar_x}" y="{y + 3}" width="{bar_w}" height="12" class="track"/>')
        fill = max(2.0, share * bar_w) if share else 0.0
        out.append(f'<rect x="{bar_x}" y="{y + 3}" width="{fill:.1f}" height="12" class="bar"/>')
        for first in r.get("first") or []:
            if isinstance(first, list) and len(first) == 1 and isinstance(first[0], int) and total:
                tx = bar_x + min(1.0, first[0] / total) * bar_w
                out.append(
                    f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y + 1}" y2="{y + 17}" class="tick"/>'
                )
        text = f"{_num(count)} of {_num(total)} elements ({share:.2%})"
        if "max_abs" in r:
            text += f" · max abs {_num(r['max_abs'])} · max rel {_num(r.get('max_rel'))}"
        if r.get("nan"):
            text += f" · {_num(r['nan'])} NaN vs number"
        out.append(f'<text x="{bar_x}" y="{y + 30}" class="note">{text}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _polyline(xs: Sequence[float], ys: Sequence[float], cls: str) -> str:
    """Polylines through the finite points (a NaN or infinity breaks the line)."""
    parts, cur = [], []
    for x, y in zip(xs, ys, strict=True):
        if math.isfinite(y):
            cur.append(f"{x:.1f},{y:.1f}")
        elif cur:
            parts.append(cur)
            cur = []
    if cur:
        parts.append(cur)
    return "".join(f'<polyline points="{" ".join(p)}" class="{cls}"/>' for p in parts)


def series_svg(s: Series) -> str:
    """Recorded and replayed values (upper panel) and replayed minus recorded (lower panel)."""
    width, left, plot_w, panel_h, gap = 560, 70, 470, 110, 34
    height = 2 * panel_h + gap + 30
    diff = [b - a for a, b in zip(s.recorded, s.replayed, strict=True)]
    top = 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot series" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="recorded and '
        f'replayed values">'
    ]
    last = max(s.length - 1, 1)
    xs = [left + i / last * plot_w for i in s.index]
    for k, (values, label) in enumerate(
        ((s.recorded + s.replayed, "value"), (diff, "replayed \u2212 recorded"))
    ):
        y0 = top + k * (panel_h + gap)
        finite = [v for v in values if math.isfinite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        if k == 1:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        if hi == lo:
            lo, hi = lo - 1, hi + 1

        def sy(v: float, y0: int = y0, lo: float = lo, hi: float = hi) -> float:
            return y0 + panel_h - (v - lo) / (hi - lo) * panel_h

        out.append(
            f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" class="frame"/>'
            f'<text x="{left - 6}" y="{y0 + 10}" class="axis end">{_num(hi)}</text>'
            f'<text x="{left - 6}" y="{y0 + panel_h}" class="axis end">{_num(lo)}</text>'
            f'<text x="{left + 4}" y="{y0 + 12}" class="axis">{e(label)}</text>'
        )
        if k == 0:
            out.append(_polyline(xs, [sy(v) for v in s.recorded], "recorded"))
            out.append(_polyline(xs, [sy(v) for v in s.replayed], "replayed"))
        else:
            zero = sy(0.0)
            out.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{zero:.1f}" y2="{zero:.1f}" '
                'class="zero"/>'
            )
            out.append(_polyline(xs, [sy(v) for v in diff], "difference"))
    base = top + 2 * panel_h + gap + 14
    out.append(
        f'<text x="{left}" y="{base}" class="axis">0</text>'
        f'<text x="{left + plot_w}" y="{base}" class="axis end">{_num(s.length - 1)}</text>'
        f'<text x="{left + plot_w / 2:.0f}" y="{base}" class="axis mid">index along the first '
        f"axis ({len(s.index)} of {_num(s.length)} sampled)</text>"
    )
    out.append("</svg>")
    return "\n".join(out)
