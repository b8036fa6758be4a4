"""Loading signing keys for the command line: passphrase file, CAPSA_PASSPHRASE, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import NotFoundError, SignatureError
from ..signing.keys import NEEDS_PASSPHRASE, PrivateKey, load_private_key

__all__ = ["passphrase", "signing_keys"]


def passphrase(passphrase_file: str | None) -> bytes | None:
    """The passphrase from ``passphrase_file`` (trailing newline dropped) or CAPSA_PASSPHRASE."""
    if passphrase_file:
        try:
            return Path(passphrase_file).read_bytes().rstrip(b"\r\n")
        except FileNotFoundError:
            raise NotFoundError("no such passphrase file", where=passphrase_file) from None
    env = os.environ.get("CAPSA_PASSPHRASE")
    return env.encode() if env is not None else None


def signing_keys(paths: Sequence[str], passphrase_file: str | None) -> list[PrivateKey]:
    """Load private keys; an encrypted one without a passphrase asks on a terminal."""
    keys = []
    for path in paths:
        try:
            keys.append(load_private_key(path, passphrase(passphrase_file)))
        except SignatureError as e:
            if e.what != NEEDS_PASSPHRASE or not sys.stdin.isatty():
                raise
            typed = getpass.getpass(f"passphrase for {path}: ").encode()
            keys.append(load_private_key(path, typed))
    return keys
