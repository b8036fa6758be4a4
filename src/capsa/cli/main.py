"""The `capsa` command: a thin argparse layer over the public API.

Every failure is one line on stderr and a documented exit code (``ExitCode``, README "Exit
codes"); ``-v`` adds the traceback. Commands live in one module per group; this module builds the
parser from them and runs one.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import capsa

from ..errors import Error, ExitCode
from . import pack, read, record, replay, sif, snakemake, views
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
    for group in (pack, read, record, snakemake, replay, views):
        group.register(c)
    sif.register(c)
    add_export_parsers(sub, common)
    return parser


def _snakemake_argv(argv: Sequence[str]) -> list[str]:
    """Everything after the ``snakemake`` command word, untouched."""
    words = list(argv)
    return words[words.index("snakemake") + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "snakemake":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # Snakemake's own options: everything capsa does not know goes to it, in order.
        args.snakemake_args = _snakemake_argv(argv if argv is not None else sys.argv[1:])
    try:
        return int(args.func(args))
    except Error as e:
        if args.verbose:
            traceback.print_exc()
        print(f"capsa: error: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`capsa cat ... | head`): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:
        print("capsa: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except OSError as e:
        if args.verbose:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        print(f"capsa: error: {where}{e.strerror or e}", file=sys.stderr)
        return ExitCode.IO
