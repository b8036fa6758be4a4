"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1.0) as capsa uses them.

The signature is over PAE(payloadType, payload) — never over a re-serialisation — and the
payload is kept as the exact bytes received (spec/signing.md §3).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError
from ..format.layout import MAX_ENVELOPE as LIMIT
from .keys import PrivateKey, PublicKey

__all__ = ["Envelope", "Signature", "pae", "parse_envelope", "sign"]

MAX_ENVELOPE = LIMIT
"""Largest envelope parsed (spec/format.md §3.5): a bundle signature of the largest manifest."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> bytes:
        """Compact JSON with sorted keys, so signing the same bytes twice gives the same file."""
        obj = {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    def verify(self, key: PublicKey) -> list[bool]:
        """For each signature: is it ``key``'s valid signature of this envelope's PAE?"""
        message = pae(self.payload_type, self.payload)
        return [s.keyid == key.keyid and key.verify(s.sig, message) for s in self.signatures]


def sign(payload_type: str, payload: bytes, keys: list[PrivateKey]) -> Envelope:
    message = pae(payload_type, payload)
    return Envelope(payload_type, payload, tuple(Signature(k.keyid, k.sign(message)) for k in keys))


def _b64(value: Any, what: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"envelope {what} is not a string", where=where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"envelope {what} is not valid base64", where=where) from e


def parse_envelope(data: bytes, *, where: str) -> Envelope:
    """Parse a DSSE envelope strictly: exactly the three fields, well-typed, valid base64."""
    if len(data) > MAX_ENVELOPE:
        raise FormatError("signature envelope too large", where=where)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"signature envelope is not valid JSON: {e}", where=where) from e
    if not isinstance(obj, dict) or set(obj) != {"payload", "payloadType", "signatures"}:
        raise FormatError(
            "not a DSSE envelope (needs payload, payloadType, signatures)", where=where
        )
    if not isinstance(obj["payloadType"], str):
        raise FormatError("envelope payloadType is not a string", where=where)
    sigs = obj["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise FormatError("envelope has no signatures", where=where)
    out = []
    for s in sigs:
        if not isinstance(s, dict) or not {"sig"} <= set(s) <= {"keyid", "sig"}:
            raise FormatError("malformed signature in envelope", where=where)
        keyid = s.get("keyid", "")
        if not isinstance(keyid, str):
            raise FormatError("envelope keyid is not a string", where=where)
        out.append(Signature(keyid, _b64(s["sig"], "signature", where)))
    return Envelope(obj["payloadType"], _b64(obj["payload"], "payload", where), tuple(out))
