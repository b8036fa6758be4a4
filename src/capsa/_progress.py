"""Progress on a terminal: one self-overwriting stderr line, silent when not a TTY or quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["NullProgress", "Progress", "make_progress"]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


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
            f"\r{self.label}: {pct:5.1f}%  {_human(self.done)} / {_human(self.total)}"
            f"  {_human(rate)}/s \x1b[K"
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
