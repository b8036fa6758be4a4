"""Progress on a terminal: one self-overwriting stderr line, silent when not a TTY or quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["NullProgress", "Progress", "format_size", "make_progress"]


def format_size(n: float) -> str:
    """A size in bytes for people: ``512 B``, ``1.5 KiB``, ``71.2 MiB`` (binary units, the one
    formatter every command uses)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


class NullProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class Progress(NullProgress):
    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        pct = 100 * self.done / self.total if self.total else 100.0
        rate = self.done / max(now - self.start, 1e-9)
        self.stream.write(
            f"\r{self.label}: {pct:5.1f}%  {format_size(self.done)} / {format_size(self.total)}"
            f"  {format_size(rate)}/s \x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()


def make_progress(label: str, total: int, enabled: bool | None = None) -> NullProgress:
    """A progress line on stderr when ``enabled`` (default: stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return Progress(label, total, sys.stderr) if enabled else NullProgress()
