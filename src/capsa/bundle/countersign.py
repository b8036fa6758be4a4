"""Countersigning: add a signature to an existing bundle (spec/signing.md §4).

The bundle is rewritten to a temporary file — every entry copied byte for byte, the new signature
entries appended, a new central directory — and renamed over the original, so the manifest, the
blobs and the bundle id do not change and a reader never sees a half-written bundle.

Two signers of one bundle take turns: each holds an exclusive lock on the bundle file while it
reads and rewrites it, and reads it only once the lock is its own and the name still leads to the
locked file (the other signer may have renamed a new one into place meanwhile). So the second
signer copies the first one's signature, and none is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .._internal.atomic import atomic_output
from ..errors import ExistsError, FormatError, NotFoundError, SignatureError, UsageError
from ..format.source import LocalFile
from ..format.zip64 import ZipEntry, ZipWriter
from ..signing.envelopes import envelope_for, signature_entry
from ..signing.keys import PrivateKey
from ..storage import is_url
from .reader import BundleReader

__all__ = ["sign_bundle"]


def sign_bundle(
    path: str | os.PathLike[str], keys: list[PrivateKey], *, replace: bool = False
) -> list[str]:
    """Add one signature per key to the bundle at ``path``, atomically; return the key ids.

    The bundle is rewritten to a temporary file (entries copied byte for byte, new signature
    entries appended, a new central directory written) and renamed over the original, which
    keeps its permission bits. Concurrent signers of one bundle wait for each other.
    """
    if is_url(os.fspath(path)):
        raise UsageError(
            "cannot sign a bundle at a URL: signing rewrites the file",
            where=os.fspath(path),
            hint="download it, sign the copy, upload it again (the bundle id does not change)",
        )
    src = Path(path)
    with _locked(src) as f, BundleReader(_FileSource(src, f)) as b:
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
        mode = os.fstat(f.fileno()).st_mode & 0o7777
        with atomic_output(src, force=True, mode=mode, exact_mode=True) as out:
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[BinaryIO]:
    """The bundle file at ``path``, open and exclusively locked (``flock``), and still the file
    ``path`` names once the lock is held."""
    while True:
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError("no such bundle", where=str(path)) from None
        except IsADirectoryError:
            raise FormatError("is a directory, not a bundle", where=str(path)) from None
        try:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise FormatError("not a regular file", where=str(path))
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            held, now = os.fstat(f.fileno()), path.stat()
        except FileNotFoundError:
            f.close()
            continue  # renamed away while we waited: take the new one
        except BaseException:
            f.close()
            raise
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            f.close()  # another signer renamed its bundle into place: lock that one
            continue
        try:
            yield f
        finally:
            f.close()  # releases the lock, after the new file has been renamed into place
        return


class _FileSource(LocalFile):
    """The locked file as a byte source (the same open file, not the name again)."""

    def __init__(self, path: Path, f: BinaryIO) -> None:
        self.path = path
        self._fd = os.dup(f.fileno())
        self._size = os.fstat(self._fd).st_size


def _copy(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    remaining = n
    while remaining:
        chunk = src.read(min(8 << 20, remaining))
        if not chunk:
            raise SignatureError("bundle changed while signing")
        dst.write(chunk)
        remaining -= len(chunk)
