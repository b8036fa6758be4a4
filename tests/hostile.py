"""Hostile bundles for the hardening tests: any manifest, written and signed as capsa would.

``capsa.pack`` refuses what the models refuse, so an attacker's bundle is assembled here from the
format's own pieces (the ZIP writer, canonical JSON, DSSE envelopes): the hostile strings sit in a
manifest that a valid signature covers, which is exactly what a reader must still refuse.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path
from typing import Any

from capsa.format.canonical import canonical_json
from capsa.format.manifest import FORMAT_VERSION
from capsa.format.zip64 import ZipWriter
from capsa.signing.envelopes import envelope_for, signature_entry
from capsa.signing.keys import PrivateKey


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def step(name: str, image: bytes, argv: list[str], **fields: Any) -> dict[str, Any]:
    """A step as the manifest spells it (no model validation), with defaults filled in."""
    s: dict[str, Any] = {
        "name": name,
        "image": digest(image),
        "argv": argv,
        "env": {"PATH": "/bin:/usr/bin"},
        "workdir": "/work",
        "binds": [],
        "inputs": [],
        "outputs": [],
        "exit_code": 0,
        "runtime": {"name": "bwrap", "version": ""},
        "provenance": [],
    }
    s.update(fields)
    return s


def write_bundle(
    out: Path,
    files: dict[str, bytes],
    steps: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    key: PrivateKey | None = None,
) -> Path:
    """Write ``files`` (identity blobs) and ``steps`` verbatim into a bundle, signed by ``key``."""
    blobs: dict[str, bytes] = {}
    for data in files.values():
        blobs.setdefault(digest(data), data)
    manifest = {
        "capsa": FORMAT_VERSION,
        "bundle": {"title": "hostile", "description": "", "authors": [], "identifiers": []},
        "blobs": {
            d: {
                "size": len(b),
                "stored_size": len(b),
                "encoding": "identity",
                "media_type": "application/octet-stream",
            }
            for d, b in sorted(blobs.items())
        },
        "files": {
            p: {"digest": digest(b), "role": "other", "mode": "0644"} for p, b in files.items()
        },
        "steps": list(steps),
    }
    man = canonical_json(manifest)
    buf = io.BytesIO()
    z = ZipWriter(buf)
    z.add_bytes("mimetype", b"application/vnd.capsa.bundle+zip")
    for d, data in sorted(blobs.items()):
        name = "blobs/sha256/" + d[7:]
        z.begin_streamed(len(name))
        buf.write(data)
        z.end_streamed(name, len(data), zlib.crc32(data))
    z.add_bytes("manifest.json", man)
    if key is not None:
        z.add_bytes(signature_entry(key.keyid), envelope_for(man, key))
    z.close()
    out.write_bytes(buf.getvalue())
    return out
