"""The few pieces of markup every part of the page uses. ``e`` is the one escape: every string
from a bundle or a replay report goes through it (html.escape, quotes too), in text and in
attributes, in HTML and in SVG alike. Class names come from fixed tables here."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

__all__ = ["BADGE_COLOURS", "KNOWN_STATUS", "e", "pill", "rows", "short", "status_class"]

KNOWN_STATUS = frozenset(
    ("identical", "equivalent", "different", "missing", "ok", "failed", "timeout", "skipped")
)
BADGE_COLOURS = 8
"""Image badges cycle through this many colours (``.b0`` … ``.b7``, ``.c0`` … ``.c7`` in CSS)."""


def e(x: object) -> str:
    return escape(str(x), quote=True)


def status_class(status: str) -> str:
    return f"s-{status}" if status in KNOWN_STATUS else "s-none"


def pill(status: str, text: str | None = None) -> str:
    return f'<span class="pill {status_class(status)}">{e(text or status)}</span>'


def short(digest: str) -> str:
    """A digest shortened for tables; the whole one is its tooltip."""
    return f'<code title="{e(digest)}">{e(digest[:19])}…</code>' if len(digest) > 19 else e(digest)


def rows(cells: Iterable[Iterable[str]]) -> str:
    """Table rows of cells that are markup already."""
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
