"""Run a process with its output captured to files (and optionally echoed), with a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .base import RunSpec
from .overlay import LAUNCH_FAILED

__all__ = ["run_captured", "run_with_overlay"]


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
    preexec_fn: Callable[[], None] | None = None,
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
            preexec_fn=preexec_fn,
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


def run_with_overlay(
    cmd: list[str],
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    spec: RunSpec,
    *,
    echo: bool,
    pass_fds: tuple[int, ...] = (),
    executable: str | None = None,
) -> tuple[int, bool]:
    """``run_captured``, on the spec's overlay when it has one: set up in the forked child when
    that is safe, else by the launcher process; (LAUNCH_FAILED, False) if it cannot be."""
    ov = spec.overlay
    if ov is None:
        return run_captured(
            cmd,
            env,
            stdout,
            stderr,
            timeout=spec.timeout,
            echo=echo,
            pass_fds=pass_fds,
            executable=executable,
        )
    if not ov.can_fork_into():
        # The launcher execs cmd[0] by name (PATH), after mounting the overlay.
        cmd = [*ov.launcher(), *cmd]
        return run_captured(
            cmd, env, stdout, stderr, timeout=spec.timeout, echo=echo, pass_fds=pass_fds
        )
    try:
        return run_captured(
            cmd,
            env,
            stdout,
            stderr,
            timeout=spec.timeout,
            echo=echo,
            preexec_fn=ov.preexec,
            pass_fds=pass_fds,
            executable=executable,
        )
    except subprocess.SubprocessError:
        if ov.failure() is None:
            raise
        return LAUNCH_FAILED, False
