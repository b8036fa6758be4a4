"""Bundle signatures: DSSE envelopes over the exact manifest bytes, countersigning, trust policy.

Implements spec/signing.md. A signature never changes the manifest or any blob, so the bundle id
(the manifest digest) is the same before and after signing.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from . import dsse
from ._atomic import atomic_output
from ._zip import ZipEntry, ZipWriter
from .bundle import Bundle, Problem
from .errors import Error, ExistsError, SignatureError
from .keys import PrivateKey, PublicKey, load_public_key

__all__ = [
    "PAYLOAD_TYPE",
    "SignatureCheck",
    "check_signatures",
    "envelope_for",
    "load_trusted_keys",
    "sign_bundle",
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
    return dsse.sign(PAYLOAD_TYPE, manifest_bytes, [key]).to_json()


@dataclass
class SignatureCheck:
    """One signature entry as `capsa verify` reports it."""

    entry: str
    keyid: str
    status: str  # "valid" | "invalid" | "unknown-key" | "malformed"
    trusted: bool
    reason: str = ""


def sign_bundle(
    path: str | os.PathLike[str], keys: list[PrivateKey], *, replace: bool = False
) -> list[str]:
    """Add one signature per key to the bundle at ``path``, atomically; return the key ids.

    The bundle is rewritten to a temporary file (entries copied byte for byte, new signature
    entries appended, a new central directory written) and renamed over the original.
    """
    src = Path(path)
    with Bundle(src) as b:
        existing = {e.name: e for e in b.entries}
        new: list[tuple[str, bytes]] = []
        for key in keys:
            name = signature_entry(key.keyid)
            if name in existing and not replace:
                raise ExistsError(
                    f"already signed by {key.keyid}",
                    where=str(src),
                    hint="use --force to sign again with this key",
                )
            new.append((name, envelope_for(b.manifest_bytes, key)))
        names = {n for n, _ in new}
        kept = [e for e in b.entries if e.name not in names]
        with atomic_output(src, force=True) as out, src.open("rb") as f:
            writer = ZipWriter(out)
            for e in kept:
                # Copy each kept entry verbatim (header and data); offsets may shift when a
                # replaced signature is dropped, so entries are re-recorded at their new place.
                f.seek(e.header_offset)
                start = out.tell()
                _copy(f, out, e.data_offset + e.size - e.header_offset)
                writer.entries.append(
                    ZipEntry(
                        e.name,
                        start,
                        start + e.data_offset - e.header_offset,
                        e.size,
                        e.crc,
                        e.local_zip64,
                    )
                )
            for name, data in sorted(new):
                writer.add_bytes(name, data)
            writer.close()
    return [k.keyid for k in keys]


def _copy(src: object, dst: object, n: int) -> None:
    remaining = n
    while remaining:
        chunk = src.read(min(8 << 20, remaining))  # type: ignore[attr-defined]
        if not chunk:
            raise SignatureError("bundle changed while signing")
        dst.write(chunk)  # type: ignore[attr-defined]
        remaining -= len(chunk)


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


def check_signatures(
    bundle: Bundle, keys: list[PublicKey], *, require: bool
) -> tuple[list[SignatureCheck], list[Problem]]:
    """Check every signature entry against the manifest bytes and the trusted ``keys``."""
    by_id = {k.keyid: k for k in keys}
    checks: list[SignatureCheck] = []
    problems: list[Problem] = []
    message_payload = bundle.manifest_bytes
    for name in bundle.signature_entries:
        where = f"{bundle.path}: {name}"
        try:
            env = dsse.parse_envelope(bundle.read_entry(name), where=where)
        except Error as e:
            checks.append(SignatureCheck(name, "", "malformed", False, e.what))
            problems.append(Problem(where, f"malformed signature: {e.what}", "signature"))
            continue
        for s in env.signatures:
            check = _check_one(name, env, s, by_id, message_payload)
            checks.append(check)
            if check.status in ("invalid", "malformed"):
                problems.append(
                    Problem(
                        where,
                        f"{check.status} signature ({check.keyid}): {check.reason}",
                        "signature",
                    )
                )
    if require and not any(c.status == "valid" and c.trusted for c in checks):
        what = "bundle is not signed" if not checks else "no valid signature by a trusted key"
        problems.append(Problem(str(bundle.path), what, "signature"))
    return checks, problems


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
    key = by_id.get(s.keyid)
    if key is None:
        return SignatureCheck(name, s.keyid, "unknown-key", False, "no trusted key with this id")
    if not key.verify(s.sig, dsse.pae(env.payload_type, env.payload)):
        return SignatureCheck(name, s.keyid, "invalid", True, "signature does not verify")
    return SignatureCheck(name, s.keyid, "valid", True)
