"""Run a process with its output captured to files (and optionally echoed), with a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

__all__ = ["run_captured"]


def _pump(src: BinaryIO, dst: BinaryIO, echo: BinaryIO | None) -> None:
    while chunk := src.read1(1 << 16):  # type: ignore[attr-defined]
        dst.write(chunk)
        if echo is not None:
            echo.write(chunk)
            echo.flush()


def run_captured(
    cmd: list[str],
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    *,
    timeout: float | None,
    echo: bool,
    pass_fds: tuple[int, ...] = (),
    executable: str | None = None,
) -> tuple[int, bool]:
    """Exit code (negative signal number if killed) and whether the timeout fired.

    The process gets its own session so that a timeout or Ctrl-C kills the whole tree.
    """
    with (
        stdout.open("wb") as out,
        stderr.open("wb") as err,
        subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=pass_fds,
            executable=executable,
        ) as proc,
    ):
        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(
                target=_pump, args=(proc.stdout, out, sys.stdout.buffer if echo else None)
            ),
            threading.Thread(
                target=_pump, args=(proc.stderr, err, sys.stderr.buffer if echo else None)
            ),
        ]
        for t in threads:
            t.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        except BaseException:
            _kill(proc)
            raise
        finally:
            for t in threads:
                t.join()
    return proc.returncode, timed_out


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
