"""``python -m capsa`` and the ``capsa`` command (the console script calls :func:`run`).

The first thing the command does is make Ctrl-C exit 130 with one line (README "Exit codes"):
importing capsa's dependencies takes a few hundred milliseconds, and an interrupt during them
would otherwise print a traceback — or, inside a Rust extension's initialisation, a panic. Until
the command line is parsed nothing has been written, so exiting at once is safe; from then on
``cli.main`` turns Ctrl-C into ``KeyboardInterrupt``, so temporary files are removed on the way out.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

from .errors import ExitCode


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"capsa: interrupted\n")
    os._exit(ExitCode.INTERRUPTED)


def run() -> None:
    """Entry point of the ``capsa`` command."""
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from .cli.main import main

    raise SystemExit(main())


if __name__ == "__main__":
    run()
