"""A step's view of the project as an overlay: the project is the lower layer, the step writes
into an upper layer of its own (spec/recording.md §3.1). Set up by a tiny launcher that runs
before the runtime (``_overlay_launch.py``), so it works with any runtime that can bind a
directory at /work: bubblewrap 0.8 on a laptop, Apptainer on HPC."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ._overlay_launch import enter

__all__ = ["LAUNCH_FAILED", "Overlay"]

LAUNCH_FAILED = 125
"""The launcher's exit code when the overlay could not be set up (nothing ran)."""
_LAUNCHER = Path(__file__).with_name("_overlay_launch.py")


@dataclass(frozen=True)
class Overlay:
    """Directories of one overlay; ``upper``, ``work`` and ``merged`` live in a run directory on
    the project's own file system (so committing is a rename)."""

    lower: Path
    upper: Path
    work: Path
    merged: Path
    status: Path
    """Where the launcher writes why the overlay could not be set up."""

    def launcher(self) -> list[str]:
        """The argv prefix that mounts the overlay and then execs what follows."""
        return [
            sys.executable,
            "-I",
            "-S",
            str(_LAUNCHER),
            str(self.status),
            str(self.lower),
            str(self.upper),
            str(self.work),
            str(self.merged),
            "--",
        ]

    def can_fork_into(self) -> bool:
        """Whether the overlay can be set up in the forked child before exec (no second
        interpreter to start): only while this process has no other thread, which is what
        makes work between fork and exec safe."""
        return threading.active_count() == 1

    def preexec(self) -> None:
        """Enter the namespace and mount, in the child between fork and exec."""
        enter(str(self.status), str(self.lower), str(self.upper), str(self.work), str(self.merged))

    def failure(self) -> str | None:
        """Why the launcher could not set the overlay up, or None if it did."""
        try:
            return self.status.read_text().strip() or "unknown reason"
        except FileNotFoundError:
            return None
