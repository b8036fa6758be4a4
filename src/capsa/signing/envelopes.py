"""Bundle signatures: DSSE envelopes over the exact manifest bytes, and their statuses.

Implements spec/signing.md §3-§5 on bytes alone (no bundle I/O): ``capsa.bundle`` writes the
envelopes (pack, countersign) and reads them (verify). A signature never changes the manifest or
any blob, so the bundle id (the manifest digest) is the same before and after signing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import Error, SignatureError
from . import dsse
from .keys import PrivateKey, PublicKey, load_public_key

__all__ = [
    "PAYLOAD_TYPE",
    "SignatureCheck",
    "check_envelope",
    "envelope_for",
    "load_trusted_keys",
    "signature_entry",
]

PAYLOAD_TYPE = "application/vnd.capsa.manifest+json"
"""DSSE payloadType of a capsa bundle signature (spec/signing.md §3)."""


def signature_entry(keyid: str) -> str:
    """``signatures/<hex of the key fingerprint>.dsse.json`` (spec/signing.md §4)."""
    b64 = keyid.removeprefix("SHA256:")
    raw = base64.b64decode(b64 + "=" * (-len(b64) % 4))
    return f"signatures/{raw.hex()}.dsse.json"


def envelope_for(manifest_bytes: bytes, key: PrivateKey) -> bytes:
    """The signature entry's bytes; never larger than a reader accepts (spec/format.md §3.5)."""
    data = dsse.sign(PAYLOAD_TYPE, manifest_bytes, [key]).to_json()
    if len(data) > dsse.MAX_ENVELOPE:
        raise SignatureError(
            f"the signature envelope would be {len(data)} bytes, more than the "
            f"{dsse.MAX_ENVELOPE} a reader accepts (spec/format.md §3.5)",
            hint="the manifest is too large to sign; split the bundle",
        )
    return data


@dataclass
class SignatureCheck:
    """One signature entry as `capsa verify` reports it."""

    entry: str
    keyid: str
    status: str  # "valid" | "invalid" | "unknown-key" | "malformed"
    trusted: bool
    reason: str = ""


def _signature_shape(sig: bytes) -> str | None:
    """Why ``sig`` cannot be a signature of any algorithm capsa accepts (spec/signing.md §2), or
    None. Checked before the key is looked up, so a damaged signature by a key the verifier does
    not hold is still caught when the damage changed its shape (spec/signing.md §5)."""
    if len(sig) == 64:  # Ed25519
        return None
    if 256 <= len(sig) <= 2048:  # RSA, 2048 to 16384 bits: the modulus' length
        return None
    if _ecdsa_der(sig):  # ECDSA P-256, DER SEQUENCE { INTEGER r, INTEGER s }
        return None
    return f"a {len(sig)}-byte signature is not Ed25519, ECDSA P-256 (DER) or RSA ≥ 2048 bits"


def _ecdsa_der(sig: bytes) -> bool:
    if len(sig) < 8 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
        return False
    pos = 2
    for _ in range(2):
        if pos + 2 > len(sig) or sig[pos] != 0x02 or not 1 <= sig[pos + 1] <= 33:
            return False
        pos += 2 + sig[pos + 1]
    return pos == len(sig)


def load_trusted_keys(paths: list[str], directories: list[str]) -> list[PublicKey]:
    keys = [load_public_key(p) for p in paths]
    for d in directories:
        dpath = Path(d)
        if not dpath.is_dir():
            raise SignatureError("trusted keys directory does not exist", where=d)
        for p in sorted(dpath.iterdir()):
            if p.suffix in (".pub", ".pem") and p.is_file():
                keys.append(load_public_key(p))
    return keys


def check_envelope(
    name: str, data: bytes, manifest_bytes: bytes, keys: Sequence[PublicKey]
) -> list[SignatureCheck]:
    """The status of each signature in the envelope entry ``name`` (spec/signing.md §5)."""
    by_id = {k.keyid: k for k in keys}
    try:
        env = dsse.parse_envelope(data, where=name)
    except Error as e:
        return [SignatureCheck(name, "", "malformed", False, e.what)]
    return [_check_one(name, env, s, by_id, manifest_bytes) for s in env.signatures]


def _check_one(
    name: str, env: dsse.Envelope, s: dsse.Signature, by_id: dict[str, PublicKey], payload: bytes
) -> SignatureCheck:
    if env.payload_type != PAYLOAD_TYPE:
        return SignatureCheck(
            name,
            s.keyid,
            "invalid",
            False,
            f"payload type {env.payload_type!r} is not a capsa manifest",
        )
    if env.payload != payload:
        return SignatureCheck(
            name, s.keyid, "invalid", False, "envelope payload is not this bundle's manifest"
        )
    if len(env.signatures) != 1:
        return SignatureCheck(name, s.keyid, "malformed", False, "envelope must hold one signature")
    try:
        expected_name = signature_entry(s.keyid)
    except ValueError:
        expected_name = ""
    if expected_name != name:
        return SignatureCheck(
            name, s.keyid, "malformed", False, "entry name does not match the key id"
        )
    shape = _signature_shape(s.sig)
    if shape is not None:
        return SignatureCheck(name, s.keyid, "malformed", False, shape)
    key = by_id.get(s.keyid)
    if key is None:
        return SignatureCheck(
            name, s.keyid, "unknown-key", False, "not checked: no trusted key with this id"
        )
    if not key.verify(s.sig, dsse.pae(env.payload_type, env.payload)):
        return SignatureCheck(name, s.keyid, "invalid", True, "signature does not verify")
    return SignatureCheck(name, s.keyid, "valid", True)
