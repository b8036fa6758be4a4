"""The `capsa` command: a thin argparse layer over the public API.

Every failure is one line on stderr and a documented exit code (``ExitCode``, README "Exit
codes"); ``-v`` adds the traceback. Commands live in one module per group; this module builds the
parser from them and runs one.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

import capsa

from ..errors import Error, ExitCode
from . import image, pack, read, record, replay, report, sif, snakemake, views
from ._common import Commands, flags
from .export import add_parsers as add_export_parsers

__all__ = ["build_parser", "main"]


def _epilog() -> str:
    codes = ", ".join(f"{int(c)} {c.meaning.split(';')[0].split(':')[0]}" for c in ExitCode)
    return f"exit codes: {codes}"


def build_parser() -> argparse.ArgumentParser:
    common = flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="capsa",
        parents=[flags(False)],
        description="Seal an analysis (SIF images, HDF5 data, provenance) into one signed file.",
        epilog=_epilog(),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"capsa {capsa.__version__} (format {capsa.FORMAT_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = Commands(sub, common)
    for group in (pack, read, record, snakemake, replay, report, views):
        group.register(c)
    sif.register(c)
    image.register(c)
    add_export_parsers(sub, common)
    return parser


def _snakemake_argv(argv: Sequence[str]) -> list[str]:
    """Everything after the ``snakemake`` command word, untouched."""
    words = list(argv)
    return words[words.index("snakemake") + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``capsa`` command; return its exit code. Nothing escapes as a traceback unless
    ``-v``: capsa's errors, OS errors and Ctrl-C are one line each, and anything else is a bug,
    reported as one (exit 70)."""
    verbose = False

    def fail(text: str, code: int) -> int:
        if verbose:
            traceback.print_exc()
        print(f"capsa: error: {text}", file=sys.stderr)
        return code

    with _interrupts() as interrupted:
        try:
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            if extra:
                if getattr(args, "command", None) != "snakemake":
                    parser.error(f"unrecognized arguments: {' '.join(extra)}")
                # Snakemake's own options: everything capsa does not know goes to it, in order.
                args.snakemake_args = _snakemake_argv(argv if argv is not None else sys.argv[1:])
            verbose = args.verbose
            from ..storage import allow_download  # loads the format models: not for --help

            allow_download(args.download)
            return int(args.func(args))
        except Error as e:
            return fail(e.diagnostics(), e.exit_code)
        except BrokenPipeError:
            # The reader went away (`capsa cat ... | head`): not an error worth a message.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return ExitCode.OK
        except KeyboardInterrupt:
            print("capsa: interrupted", file=sys.stderr)
            return ExitCode.INTERRUPTED
        except OSError as e:
            return fail(_os_error(e), ExitCode.IO)
        except SystemExit:
            raise  # argparse: --help, --version, usage errors
        except BaseException as e:
            if interrupted():
                # Ctrl-C inside an extension module surfaces as its own exception (a pyo3
                # panic, say); it is still an interrupt.
                print("capsa: interrupted", file=sys.stderr)
                return ExitCode.INTERRUPTED
            return fail(
                f"internal error: {type(e).__name__}: {e} "
                "(a bug in capsa: run again with -v and report it)",
                ExitCode.INTERNAL,
            )


@contextlib.contextmanager
def _interrupts() -> Iterator[Callable[[], bool]]:
    """Ctrl-C raises KeyboardInterrupt (so temporary files are removed on the way out), and is
    remembered; the previous handler is restored afterwards (``main`` may run in-process)."""
    seen = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal seen
        seen = True
        # An interrupt can land between opening a file and wrapping it (inside io.open): the
        # unwinding then drops an open file, which is no leak worth a warning on the way out.
        warnings.filterwarnings("ignore", category=ResourceWarning)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: seen
    finally:
        signal.signal(signal.SIGINT, previous)


_NO_ROOM = {errno.ENOSPC: "is full", errno.EDQUOT: "is over quota", errno.EROFS: "is read-only"}


def _os_error(e: OSError) -> str:
    """``WHERE: WHAT`` for an OS error; a full or read-only file system is named by its mount
    point, so the user knows which one to free or which destination to change."""
    where = f"{e.filename}: " if e.filename else ""
    text = f"{where}{e.strerror or e}"
    state = _NO_ROOM.get(e.errno or 0)
    if state and e.filename:
        text += f" (the file system mounted at {_mount_point(os.fsdecode(e.filename))} {state})"
    return text


def _mount_point(path: str) -> str:
    """The longest mount point above ``path`` (Linux: /proc/self/mountinfo, which also knows
    bind mounts; elsewhere the first directory above that is on another device)."""
    p = Path(path).absolute()
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        lines = []
    points = [_unescape(line.split(" ")[4]) for line in lines if line.count(" ") >= 4]
    if points:
        return max((m for m in points if p.is_relative_to(m)), key=len, default="/")
    while not p.exists() and p != p.parent:
        p = p.parent
    while not p.is_mount() and p != p.parent:
        p = p.parent
    return str(p)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
