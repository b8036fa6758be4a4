"""Signed replay attestations: an in-toto Statement v1 in a DSSE envelope (spec/replay.md §5).

"I replayed bundle <id>: identical" becomes a file anyone can check with the replayer's public key.
Its subjects are things a generic in-toto verifier can hash itself: the bundle file, and each
output the replay produced.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .._internal.atomic import atomic_output
from ..bundle.reader import BundleReader
from ..errors import IntegrityError
from ..format.digest import parse_digest
from ..format.source import ByteSource
from ..signing import intoto
from ..signing.keys import PrivateKey
from ..storage import open_source

__all__ = [
    "PREDICATE_TYPE",
    "replay_statement",
    "write_replay_attestation",
]

PREDICATE_TYPE = "urn:capsa:predicate:replay:v1"
_READ = 4 << 20


def replay_statement(
    report: dict[str, Any], bundle_name: str, bundle_sha256: str
) -> dict[str, Any]:
    """Subjects: the bundle file by the SHA-256 of its bytes, then every output the replay
    produced, by its bundle path (``STEP:PATH`` when an earlier step already named that path)
    and the digest of the replayed bytes; predicate: the report, with the bundle id."""
    predicate = {k: v for k, v in report.items() if k != "workdir"}
    subjects = [intoto.subject(bundle_name, bundle_sha256)]
    named: set[str] = {bundle_name}
    for step in report["steps"]:
        for out in step["outputs"]:
            if out.get("found"):
                name = out["path"] if out["path"] not in named else f"{step['name']}:{out['path']}"
                named.add(name)
                subjects.append(intoto.subject(name, parse_digest(out["found"])))
    return intoto.statement(subjects, PREDICATE_TYPE, predicate)


def _bundle_sha256(source: ByteSource, bundle_id: str) -> str:
    """SHA-256 of the whole bundle file, after checking it is still the bundle replayed."""
    with BundleReader(source) as b:
        if b.id != bundle_id:
            raise IntegrityError(
                "the bundle changed while it was replayed",
                where=source.name,
                expected=bundle_id,
                found=b.id,
                hint="replay it again",
            )
        sha = hashlib.sha256()
        for offset in range(0, source.size, _READ):
            sha.update(source.read_at(offset, min(_READ, source.size - offset)))
    return sha.hexdigest()


def write_replay_attestation(
    report: dict[str, Any],
    bundle: str | os.PathLike[str],
    keys: list[PrivateKey],
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    source = open_source(bundle, what="bundle")
    digest = _bundle_sha256(source, report["bundle_id"])  # closes the source
    name = os.fspath(bundle).rstrip("/").rsplit("/", 1)[-1]
    statement = replay_statement(report, name, digest)
    out = (
        Path(output)
        if output
        else Path(f"replay-{parse_digest(report['bundle_id'])[:12]}.intoto.json")
    )
    with atomic_output(out, force=force) as f:
        f.write(intoto.sign(statement, keys) + b"\n")
    return out
