"""Signed replay attestations: an in-toto Statement v1 in a DSSE envelope (spec/replay.md §5).

"I replayed bundle <id>: identical" becomes a file anyone can check with the replayer's public key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._internal.atomic import atomic_output
from ..format.digest import parse_digest
from ..signing import intoto
from ..signing.keys import PrivateKey

__all__ = [
    "PREDICATE_TYPE",
    "replay_statement",
    "write_replay_attestation",
]

PREDICATE_TYPE = "urn:capsa:predicate:replay:v1"


def replay_statement(report: dict[str, Any], bundle_name: str) -> dict[str, Any]:
    """Subject: the bundle, by the digest of its manifest (its id); predicate: the report."""
    predicate = {k: v for k, v in report.items() if k != "workdir"}
    return intoto.statement(
        [intoto.subject(bundle_name, parse_digest(report["bundle_id"]))], PREDICATE_TYPE, predicate
    )


def write_replay_attestation(
    report: dict[str, Any],
    bundle: str | os.PathLike[str],
    keys: list[PrivateKey],
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    statement = replay_statement(report, Path(bundle).name)
    out = (
        Path(output)
        if output
        else Path(f"replay-{parse_digest(report['bundle_id'])[:12]}.intoto.json")
    )
    with atomic_output(out, force=force) as f:
        f.write(intoto.sign(statement, keys) + b"\n")
    return out
