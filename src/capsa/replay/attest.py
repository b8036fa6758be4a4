"""Signed replay attestations: an in-toto Statement v1 in a DSSE envelope (spec/replay.md §5).

"I replayed bundle <id>: identical" becomes a file anyone can check with the replayer's public key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._internal.atomic import atomic_output
from ..format.digest import parse_digest
from ..signing import dsse
from ..signing.keys import PrivateKey

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "replay_statement",
    "write_replay_attestation",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:capsa:predicate:replay:v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def replay_statement(report: dict[str, Any], bundle_name: str) -> dict[str, Any]:
    """Subject: the bundle, by the digest of its manifest (its id); predicate: the report."""
    predicate = {k: v for k, v in report.items() if k != "workdir"}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": bundle_name, "digest": {"sha256": parse_digest(report["bundle_id"])}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def write_replay_attestation(
    report: dict[str, Any],
    bundle: str | os.PathLike[str],
    keys: list[PrivateKey],
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    statement = replay_statement(report, Path(bundle).name)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    out = (
        Path(output)
        if output
        else Path(f"replay-{parse_digest(report['bundle_id'])[:12]}.intoto.json")
    )
    with atomic_output(out, force=force) as f:
        f.write(dsse.sign(PAYLOAD_TYPE, payload, keys).to_json() + b"\n")
    return out
