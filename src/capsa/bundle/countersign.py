"""Countersigning: add a signature to an existing bundle (spec/signing.md §4).

The bundle is rewritten to a temporary file — every entry copied byte for byte, the new signature
entries appended, a new central directory — and renamed over the original, so the manifest, the
blobs and the bundle id do not change and a reader never sees a half-written bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._internal.atomic import atomic_output
from ..errors import ExistsError, SignatureError
from ..format.zip64 import ZipEntry, ZipWriter
from ..signing.envelopes import envelope_for, signature_entry
from ..signing.keys import PrivateKey
from .reader import BundleReader

__all__ = ["sign_bundle"]


def sign_bundle(
    path: str | os.PathLike[str], keys: list[PrivateKey], *, replace: bool = False
) -> list[str]:
    """Add one signature per key to the bundle at ``path``, atomically; return the key ids.

    The bundle is rewritten to a temporary file (entries copied byte for byte, new signature
    entries appended, a new central directory written) and renamed over the original.
    """
    src = Path(path)
    with BundleReader(src) as b:
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
