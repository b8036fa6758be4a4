"""A live count of replayed steps on a terminal: one self-overwriting stderr line, as
``_internal.progress`` draws byte counts; silent when stderr is not a TTY or with -q."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .report import NO_IMAGE, StepReport

__all__ = ["StepProgress"]


class StepProgress:
    def __init__(self, total: int, enabled: bool | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.quiet = enabled is False  # -q: not even the dashboard's address
        self.total = total
        self.done = self.running = self.failed = 0
        self.last = 0.0

    def started(self, i: int) -> None:
        self.running += 1
        self._draw()

    def finished(self, i: int, report: StepReport, *, resumed: bool = False) -> None:
        if not resumed:
            self.running -= 1
        self.done += 1
        if (report.status != "ok" and report.reason != NO_IMAGE) or any(
            o.verdict not in ("identical", "equivalent") for o in report.outputs
        ):
            self.failed += 1
        self._draw()

    def note(self, text: str) -> None:
        """A line of its own (the Dask dashboard's address), unless quiet."""
        if not self.quiet:
            self.stream.write(f"\r\x1b[K{text}\n" if self.enabled else f"{text}\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        self.stream.write(
            f"\rreplay: {self.done}/{self.total} steps done, {self.running} running, "
            f"{self.failed} not reproduced\x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
