"""What every command shares: the -v/-q flags, subcommand registration, JSON output, progress,
sizes, and loading keys. Handlers parse arguments, call the public API and render; nothing here
does library work."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .._internal.progress import format_size
from ..signing.keys import PrivateKey, PublicKey

__all__ = [
    "Commands",
    "emit_json",
    "human",
    "progress",
    "signing_keys_for",
    "trusted_keys",
]

human = format_size
Handler = Callable[[argparse.Namespace], int]


def flags(default: object) -> argparse.ArgumentParser:
    """-v and -q, on the top level (``default`` False) and on every subcommand (SUPPRESS, so a
    subcommand's default does not overwrite ``capsa -v CMD``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="show tracebacks on errors"
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress, no summary"
    )
    p.add_argument(
        "--download",
        action="store_true",
        default=default,
        help="a bundle URL whose server has no range requests: copy it to a temporary file",
    )
    return p


class Commands:
    """Registers subcommands on the ``capsa`` parser, each with the common flags."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self.sub, self.common = sub, common

    def add(self, name: str, func: Handler, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self.sub.add_parser(
            name, parents=[self.common], help=help, description=help
        )
        p.set_defaults(func=func)
        return p

    @staticmethod
    def trust_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--key",
            action="append",
            default=[],
            metavar="PUBLIC_KEY",
            help="a trusted public key (PEM or OpenSSH); repeatable",
        )
        p.add_argument(
            "--trusted-keys",
            action="append",
            default=[],
            metavar="DIR",
            help="trust every *.pub / *.pem key in DIR",
        )


def progress(args: argparse.Namespace) -> bool | None:
    """Progress on a terminal unless -q (None lets the library ask whether stderr is one)."""
    return False if args.quiet else None


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def signing_keys_for(paths: list[str], args: argparse.Namespace) -> list[PrivateKey]:
    from ._keys import signing_keys

    return signing_keys(paths, getattr(args, "passphrase_file", None))


def trusted_keys(args: argparse.Namespace) -> list[PublicKey]:
    from ..signing.envelopes import load_trusted_keys

    return load_trusted_keys(args.key, args.trusted_keys)
