"""Hostile bundles for the hardening tests: any manifest, written and signed as capsa would
(identity blobs, or zstd-seekable ones whose frames may lie about their content).

``capsa.pack`` refuses what the models refuse, so an attacker's bundle is assembled here from the
format's own pieces (the ZIP writer, canonical JSON, DSSE envelopes): the hostile strings sit in a
manifest that a valid signature covers, which is exactly what a reader must still refuse.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capsa.format import zstdseek
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


def zstd_seekable(data: bytes) -> bytes:
    """``data`` in the Zstandard seekable format of spec §6 (1 MiB frames and a seek table)."""
    cctx = zstdseek.new_compressor()
    frames, table = [], []
    for i in range(0, len(data), zstdseek.FRAME_SIZE):
        chunk = data[i : i + zstdseek.FRAME_SIZE]
        frame = cctx.compress(chunk)
        frames.append(frame)
        table.append((len(frame), len(chunk), zstdseek.frame_checksum(frame)))
    return b"".join(frames) + zstdseek.encode_seek_table(table)


def write_bundle(
    out: Path,
    files: dict[str, bytes],
    steps: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    key: PrivateKey | None = None,
    keys: Sequence[PrivateKey] = (),
    compressed: dict[str, bytes] | None = None,
    description: str = "",
) -> Path:
    """Write ``files`` and ``steps`` verbatim into a bundle, signed by ``key`` (and ``keys``).

    Blobs are identity, except the paths in ``compressed``: they are stored zstd-seekable, as the
    compression of ``compressed[path]`` — which a lying signer makes differ from the content
    the manifest claims (``files[path]``: its digest and size)."""
    blobs: dict[str, bytes] = {}
    stored: dict[str, bytes] = {}
    for path, data in files.items():
        blobs.setdefault(digest(data), data)
        if compressed and path in compressed:
            stored[digest(data)] = zstd_seekable(compressed[path])

    def blob(d: str, b: bytes) -> dict[str, Any]:
        if d not in stored:
            meta = {"stored_size": len(b), "encoding": "identity"}
        else:
            s = stored[d]
            meta = {"stored_size": len(s), "encoding": "zstd-seekable", "stored_digest": digest(s)}
        return {"size": len(b), "media_type": "application/octet-stream", **meta}

    manifest = {
        "capsa": FORMAT_VERSION,
        "bundle": {
            "title": "hostile",
            "description": description,
            "authors": [],
            "identifiers": [],
        },
        "blobs": {d: blob(d, b) for d, b in sorted(blobs.items())},
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
        data = stored.get(d, data)
        name = "blobs/sha256/" + d[7:] + (".zst" if d in stored else "")
        z.begin_streamed(len(name))
        buf.write(data)
        z.end_streamed(name, len(data), zlib.crc32(data))
    z.add_bytes("manifest.json", man)
    signers = {signature_entry(k.keyid): k for k in [*([key] if key else []), *keys]}
    for name, k in sorted(signers.items()):
        z.add_bytes(name, envelope_for(man, k))
    z.close()
    out.write_bytes(buf.getvalue())
    return out
