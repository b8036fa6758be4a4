"""Entry names and their order inside a bundle (spec/format.md §3.3)."""

from __future__ import annotations

import re

from .manifest import MAX_MANIFEST, MEDIA_TYPE

MIMETYPE_ENTRY = "mimetype"
MIMETYPE = MEDIA_TYPE.encode()
MANIFEST_ENTRY = "manifest.json"
BLOB_PREFIX = "blobs/sha256/"
ZSTD_SUFFIX = ".zst"
BLOB_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})(\.zst)?$")
SIGNATURE_RE = re.compile(r"^signatures/[0-9A-Za-z][0-9A-Za-z._-]{0,127}\.dsse\.json$")


MAX_ENVELOPE = 88 << 20
"""Largest signature entry (spec §3.5): the DSSE envelope of any manifest within MAX_MANIFEST
(base64 makes 4/3 of it, 85.4 MiB) with room for its JSON and a 16384-bit RSA signature."""
assert MAX_ENVELOPE > 4 * -(-MAX_MANIFEST // 3) + 8192

# Largest entry of each kind a reader loads whole (blobs are streamed and have no limit).
ENTRY_LIMITS = {"mimetype": len(MEDIA_TYPE), "manifest": MAX_MANIFEST, "signature": MAX_ENVELOPE}


def blob_entry(hexdigest: str, encoding: str) -> str:
    return BLOB_PREFIX + hexdigest + (ZSTD_SUFFIX if encoding == "zstd-seekable" else "")


def classify(name: str) -> str:
    """'mimetype', 'blob', 'manifest', 'signature', or 'unknown'."""
    if name == MIMETYPE_ENTRY:
        return "mimetype"
    if name == MANIFEST_ENTRY:
        return "manifest"
    if BLOB_RE.match(name):
        return "blob"
    if SIGNATURE_RE.match(name):
        return "signature"
    return "unknown"


# The order entries must appear in: a reader rejects any other order.
ORDER = {"mimetype": 0, "blob": 1, "manifest": 2, "signature": 3}
