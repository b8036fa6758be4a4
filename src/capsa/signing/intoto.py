"""in-toto Statements v1 and their DSSE envelopes: one encoding for every statement capsa writes
(the provenance export and the replay attestation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import dsse
from .keys import PrivateKey

__all__ = ["PAYLOAD_TYPE", "STATEMENT_TYPE", "payload", "sign", "statement", "subject"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def subject(name: str, sha256_hex: str, **fields: Any) -> dict[str, Any]:
    """A ResourceDescriptor naming something by its SHA-256 (hex, no prefix)."""
    return {"name": name, "digest": {"sha256": sha256_hex}, **fields}


def statement(
    subjects: Sequence[dict[str, Any]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": list(subjects),
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def payload(doc: dict[str, Any]) -> bytes:
    """The bytes a DSSE envelope signs: compact JSON, sorted keys, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sign(doc: dict[str, Any], keys: Sequence[PrivateKey]) -> bytes:
    """The statement as a DSSE envelope (payload type ``application/vnd.in-toto+json``)."""
    return dsse.sign(PAYLOAD_TYPE, payload(doc), list(keys)).to_json()
