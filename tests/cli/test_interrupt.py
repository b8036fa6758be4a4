"""Ctrl-C and the unexpected: one line and a documented exit code, never a traceback
(README "Exit codes"; issue 10 item 9). Real `capsa` processes, interrupted with a real SIGINT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from capsa.cli import read as read_commands

INTERRUPTED = "capsa: interrupted\n"


def _blocking_command(tmp_path: Path) -> list[str]:
    """A command that blocks for ever once started: opening a FIFO nobody writes to."""
    fifo = tmp_path / "passphrase"
    os.mkfifo(fifo)
    return ["keygen", "-o", str(tmp_path / "k"), "--passphrase-file", str(fifo)]


def _interrupt_after_imports(argv: list[str], skip: int) -> tuple[int, str]:
    """Start ``python -X importtime -m capsa ARGV``, send SIGINT once ``skip`` imports have
    finished after the package ``capsa`` itself (so at a known point of the start-up, without
    guessing at timings), return (exit code, stderr without the import-time lines)."""
    with subprocess.Popen(
        [sys.executable, "-W", "error", "-X", "importtime", "-m", "capsa", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as p:
        assert p.stderr is not None
        watchdog = threading.Timer(60, p.kill)  # waiting for a line that never comes
        watchdog.start()
        seen, started, lines = 0, False, []
        for line in p.stderr:
            if not line.startswith("import time:"):
                lines.append(line)
            elif started:
                seen += 1
                if seen == skip:
                    p.send_signal(signal.SIGINT)
            elif line.rstrip().endswith("| capsa"):
                started = True
        p.wait(timeout=60)
        watchdog.cancel()
    return p.returncode, "".join(lines)


# The first import after the package is capsa.__main__'s own ``import signal``, just before the
# handler exists; every later one is made with the handler in place.
@pytest.mark.parametrize("skip", [2, 5, 25, 60, 120, 200])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path: Path, skip: int) -> None:
    """From the first instruction on: while pydantic, cryptography (a Rust extension: an
    interrupt inside its initialisation used to be a pyo3 panic) and capsa itself load."""
    rc, err = _interrupt_after_imports(_blocking_command(tmp_path), skip)
    assert (rc, err) == (130, INTERRUPTED)


def test_ctrl_c_in_a_running_command_is_one_line_and_exit_130(tmp_path: Path) -> None:
    argv = _blocking_command(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "capsa", *argv], stderr=subprocess.PIPE, text=True
    ) as p:
        # Opening the FIFO for writing returns once capsa has opened it: the command runs.
        fd = os.open(argv[-1], os.O_WRONLY)
        try:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
        finally:
            os.close(fd)
    assert (p.returncode, err) == (130, INTERRUPTED)
    assert not list(tmp_path.glob("k*")), "an interrupted keygen wrote a key"


def test_the_console_script_is_the_entry_that_catches_ctrl_c(tmp_path: Path) -> None:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "capsa"]
    assert ep.value == "capsa.__main__:run"
    script = shutil.which("capsa", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the capsa console script is not installed beside this python")
    with subprocess.Popen(
        [script, *_blocking_command(tmp_path)], stderr=subprocess.PIPE, text=True
    ) as p:
        try:
            p.wait(timeout=0.15)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (130, INTERRUPTED)


def test_an_unexpected_exception_is_one_line_and_exit_70(
    cli, monkeypatch: pytest.MonkeyPatch, bundle_path: Path
) -> None:  # type: ignore[no-untyped-def]
    def bug(args: object) -> int:
        raise ValueError("something capsa did not expect")

    monkeypatch.setattr(read_commands, "cmd_ls", bug)
    r = cli("ls", bundle_path)
    assert r.rc == 70
    assert r.err_lines == [
        "capsa: error: internal error: ValueError: something capsa did not expect "
        "(a bug in capsa: run again with -v and report it)"
    ]
    r = cli("-v", "ls", bundle_path)
    assert r.rc == 70 and "Traceback" in r.err


def test_main_restores_the_sigint_handler(cli, bundle_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = signal.getsignal(signal.SIGINT)
    assert cli("ls", bundle_path).rc == 0
    assert signal.getsignal(signal.SIGINT) is before
