"""Reading bundles: open and cross-check, list members, random access.

Reading trusts nothing (spec/format.md §10): the container, entry names and order, the manifest
and its agreement with the entries are checked on open; seek tables when a blob is first read;
digests by `verify` and while extracting.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from .._internal.crc import crc32
from ..errors import Error, FormatError, IntegrityError, NotFoundError, UsageError
from ..format import zstdseek
from ..format.digest import format_digest, parse_digest
from ..format.layout import (
    ENTRY_LIMITS,
    MANIFEST_ENTRY,
    MIMETYPE,
    ORDER,
    blob_entry,
    classify,
)
from ..format.manifest import Blob, Manifest, parse_manifest
from ..format.source import ByteSource, Window
from ..format.zip64 import ZipEntry, check_local_header, read_directory
from ..storage import is_url, open_source

__all__ = ["BundleReader", "Member", "MemberFile", "crc_mismatch"]

_R = TypeVar("_R", bound="BundleReader")
_CACHE_FRAMES = 4


@dataclass(frozen=True)
class Member:
    """A logical file in a bundle, as `capsa ls` shows it."""

    path: str
    digest: str
    role: str
    size: int
    stored_size: int
    encoding: str
    media_type: str
    mode: str


class BundleReader:
    """An open bundle's structure and members, read through a byte source.

    :class:`capsa.Bundle` adds verification and extraction; use :func:`capsa.open`.
    """

    def __init__(self, target: str | os.PathLike[str] | ByteSource) -> None:
        if isinstance(target, ByteSource):
            self.source: ByteSource = target
        else:
            self.source = open_source(target, what="bundle")
        # A URL stays a string (Path would fold its "//"); both print as the user wrote them.
        name = self.source.name
        self.path: Path | str = name if is_url(name) else Path(name)
        try:
            self._load()
        except Error as e:
            self.source.close()
            if e.where is None:
                e.where = str(self.path)
            elif not e.where.startswith(str(self.path)):
                e.where = f"{self.path}: {e.where}"
            raise
        except BaseException:
            self.source.close()
            raise

    def _load(self) -> None:
        self.file_size = self.source.size
        if self.file_size < 38 + len(MIMETYPE):
            raise FormatError(
                "not a capsa bundle: bad magic (no 'mimetype' entry first)",
                hint="is this the right file?",
            )
        head = self.source.read_at(0, 38 + len(MIMETYPE))
        if head[:4] != b"PK\x03\x04" or head[30:38] != b"mimetype" or head[38:] != MIMETYPE:
            raise FormatError(
                "not a capsa bundle: bad magic (no 'mimetype' entry first)",
                hint="is this the right file?",
            )
        # A remote source checks each local header when its entry is first used, not all on
        # open: one request each would make `capsa ls URL` cost one request per blob.
        lazy = self.source.local_extent() is None
        self.entries: list[ZipEntry] = read_directory(self.source, local_headers=not lazy)
        self._unchecked = {e.name for e in self.entries} if lazy else set()
        self._check_lock = threading.Lock()
        self._by_name = {e.name: e for e in self.entries}
        last = -1
        for e in self.entries:
            kind = classify(e.name)
            if kind == "unknown":
                raise FormatError(
                    "unknown entry name (path traversal or foreign file?)",
                    where=f"entry {e.name!r}",
                )
            if ORDER[kind] < last or (kind in ("mimetype", "manifest") and ORDER[kind] == last):
                raise FormatError("entry out of order", where=f"entry {e.name!r}")
            last = ORDER[kind]
        if self.entries[0].name != "mimetype":
            raise FormatError("not a capsa bundle: 'mimetype' is not the first entry")
        if self._read_small(self.entries[0]) != MIMETYPE:
            raise FormatError("mimetype entry has unexpected content")
        man = self._by_name.get(MANIFEST_ENTRY)
        if man is None:
            raise FormatError("no manifest.json entry")
        self.manifest_bytes: bytes = self._read_small(man)
        self.manifest: Manifest = parse_manifest(self.manifest_bytes)
        self.id = format_digest(hashlib.sha256(self.manifest_bytes).hexdigest())
        self.signature_entries = [e.name for e in self.entries if classify(e.name) == "signature"]
        wanted = {
            blob_entry(parse_digest(d), b.encoding): (d, b)
            for d, b in self.manifest.blobs.items()
            if b.encoding != "external"  # format 1.3: no entry, the bytes live at its URLs
        }
        for e in self.entries:
            if classify(e.name) != "blob":
                continue
            if e.name not in wanted:
                raise FormatError(
                    "blob entry not listed in the manifest (or listed with another encoding)",
                    where=f"entry {e.name!r}",
                )
            _, b = wanted.pop(e.name)
            if e.size != b.stored_size:
                raise IntegrityError(
                    "declared size lie: stored size differs from the manifest",
                    where=f"entry {e.name!r}",
                    expected=str(b.stored_size),
                    found=str(e.size),
                )
            if b.encoding == "identity" and b.size != b.stored_size:
                raise IntegrityError(
                    "declared size lie: identity blob with size != stored size",
                    where=f"entry {e.name!r}",
                )
        if wanted:
            missing = next(iter(wanted))
            raise FormatError(
                "blob listed in the manifest has no entry", where=f"entry {missing!r}"
            )

    def checked(self, e: ZipEntry) -> ZipEntry:
        """``e``, its local header checked (spec §10.1) if that was left for first use."""
        if e.name in self._unchecked:
            try:
                check_local_header(self.source, e)
            except Error as err:
                err.where = f"{self.path}: {err.where}" if err.where else str(self.path)
                raise
            with self._check_lock:
                self._unchecked.discard(e.name)
        return e

    def check_local_headers(self) -> None:
        """Check every local header not checked yet (verification does)."""
        for e in self.entries:
            self.checked(e)

    def _read_small(self, e: ZipEntry) -> bytes:
        limit = ENTRY_LIMITS.get(classify(e.name), 0)
        if e.size > limit:
            raise FormatError(
                f"entry larger than {limit} bytes (spec §3.5)", where=f"entry {e.name!r}"
            )
        data = self.source.read_at(self.checked(e).data_offset, e.size)
        if zlib.crc32(data) != e.crc:
            raise IntegrityError("CRC-32 mismatch", where=f"entry {e.name!r}")
        return data

    def read_entry(self, name: str) -> bytes:
        """Raw bytes of a small entry (manifest, signature), CRC-checked."""
        e = self._by_name.get(name)
        if e is None:
            raise NotFoundError("no such entry", where=f"{self.path}: {name}")
        return self._read_small(e)

    def read_at(self, offset: int, n: int) -> bytes:
        """``n`` bytes of the bundle file at ``offset`` (FormatError if it is shorter)."""
        return self.source.read_at(offset, n)

    # -- members ------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        out = []
        for path, f in sorted(self.manifest.files.items()):
            b = self.manifest.blobs[f.digest]
            out.append(
                Member(
                    path, f.digest, f.role, b.size, b.stored_size, b.encoding, b.media_type, f.mode
                )
            )
        return out

    def blob_entry(self, digest: str) -> tuple[Blob, ZipEntry]:
        b = self.manifest.blobs.get(digest)
        if b is None:
            raise NotFoundError("no such blob", where=f"{self.path}: {digest}")
        if b.encoding == "external":
            raise FormatError(
                "an external blob has no entry in the bundle",
                where=f"{self.path}: {digest}",
                hint="capsa.open() reads it from its URLs; `capsa fetch` downloads it",
            )
        return b, self.checked(self._by_name[blob_entry(parse_digest(digest), b.encoding)])

    def blob_source(self, digest: str) -> Window:
        """The stored bytes of a blob as a byte source of their own (for an identity blob:
        its content, e.g. a SIF image a runtime reads in place)."""
        _, entry = self.blob_entry(digest)
        return Window(self.source, entry.data_offset, entry.size, name=f"{self.path}: {digest}")

    def open_blob(self, digest: str) -> MemberFile:
        blob, entry = self.blob_entry(digest)
        return MemberFile(self, blob, entry, where=f"{self.path}: {digest}")

    def open_member(self, path: str) -> MemberFile:
        """A seekable, read-only binary file over a member's uncompressed bytes."""
        f = self.manifest.files.get(path)
        if f is None:
            raise NotFoundError(
                "no such member", where=f"{self.path}: {path}", hint="`capsa ls` lists the members"
            )
        blob, entry = self.blob_entry(f.digest)
        return MemberFile(self, blob, entry, where=f"{self.path}: {path}")

    def copy_member(
        self, path: str, out: BinaryIO, *, offset: int = 0, length: int | None = None
    ) -> int:
        """Write a member (or ``length`` bytes of it from ``offset``) to ``out``; return how many
        bytes were written. A whole member is checked against its digest as it streams: a
        damaged one raises IntegrityError after its bytes were written (``capsa cat``)."""
        if offset < 0 or (length is not None and length < 0):
            raise UsageError("--offset and --length must not be negative")
        with self.open_member(path) as f:
            whole = not offset and length is None
            sha = hashlib.sha256() if whole else None
            f.seek(offset)
            remaining = length if length is not None else max(f.size - offset, 0)
            written = 0
            while remaining > 0 and (chunk := f.read(min(4 << 20, remaining))):
                out.write(chunk)
                if sha is not None:
                    sha.update(chunk)
                remaining -= len(chunk)
                written += len(chunk)
            crc_ok = f.crc_matches()
        expected = self.manifest.files[path].digest
        if sha is not None and format_digest(sha.hexdigest()) != expected:
            raise IntegrityError(
                "digest mismatch: the bytes written are damaged",
                where=f"{self.path}: {path}",
                expected=expected,
            )
        if sha is not None and crc_ok is False:
            raise crc_mismatch(f"{self.path}: {path}")
        return written

    def seek_index(self, blob: Blob, entry: ZipEntry, where: str) -> zstdseek.SeekIndex:
        def read_at(off: int, n: int) -> bytes:
            return self.source.read_at(entry.data_offset + off, n)

        return zstdseek.parse_seek_table(read_at, entry.size, blob.size, where=where)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        self.source.close()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def crc_mismatch(where: str) -> IntegrityError:
    """The ZIP CRC-32 of a blob entry does not match its stored bytes (spec §3.1, §10.2)."""
    return IntegrityError(
        "CRC-32 mismatch: the ZIP headers' CRC is not that of the stored bytes",
        where=where,
        hint="the bundle was damaged or edited; unzip -t reports the same",
    )


class MemberFile(io.RawIOBase):
    """Random access to one blob: identity blobs by offset, zstd blobs frame by frame.

    Only the frames a read touches are read and decompressed (a few are cached), so
    ``h5py.File(bundle.open_member("x.h5"))`` reads a dataset without inflating the file.
    The stored bytes read in order from the start go into a CRC-32 on the way, so a whole read
    can be checked against the entry's CRC at no extra read (:meth:`crc_matches`).
    """

    def __init__(self, bundle: BundleReader, blob: Blob, entry: ZipEntry, *, where: str) -> None:
        super().__init__()
        self._bundle = bundle
        self._entry = entry
        self._size = blob.size
        self._where = where
        self._pos = 0
        self._crc, self._crc_at = 0, 0  # CRC-32 of the stored bytes [0, _crc_at)
        self._index: zstdseek.SeekIndex | None = None
        if blob.encoding == "zstd-seekable":
            self._index = bundle.seek_index(blob, entry, where)
            self._dctx = zstdseek.new_decompressor()
            self._cache: OrderedDict[int, bytes] = OrderedDict()

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _frame(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is not None:
            self._cache.move_to_end(i)
            return data
        idx = self._index
        assert idx is not None
        c0, c1 = idx.comp[i], idx.comp[i + 1]
        raw = self._bundle.read_at(self._entry.data_offset + c0, c1 - c0)
        self._count_crc(c0, raw)
        data = zstdseek.decompress_frame(
            self._dctx,
            raw,
            idx.decomp[i + 1] - idx.decomp[i],
            idx.checksums[i],
            where=f"{self._where} frame {i}",
        )
        self._cache[i] = data
        if len(self._cache) > _CACHE_FRAMES:
            self._cache.popitem(last=False)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(self._size - self._pos, 0))
        if want <= 0:
            return 0
        if self._index is None:
            data = self._bundle.read_at(self._entry.data_offset + self._pos, want)
            self._count_crc(self._pos, data)
            view[:want] = data
        else:
            done = 0
            while done < want:
                pos = self._pos + done
                i = self._index.frame_of(pos)
                frame = self._frame(i)
                start = pos - self._index.decomp[i]
                n = min(len(frame) - start, want - done)
                view[done : done + n] = frame[start : start + n]
                done += n
        self._pos += want
        return want

    def _count_crc(self, offset: int, raw: bytes) -> None:
        if offset == self._crc_at:
            self._crc = crc32(raw, self._crc)
            self._crc_at += len(raw)

    def crc_matches(self) -> bool | None:
        """Whether the stored bytes read so far, in order from the start, have the entry's
        CRC-32 — None when they are not all of them (a partial or out-of-order read). For a
        zstd blob whose frames were all read, the seek table (already checked) is added."""
        if self._index is not None and self._crc_at == self._index.comp[-1] < self._entry.size:
            tail = self._bundle.read_at(
                self._entry.data_offset + self._crc_at, self._entry.size - self._crc_at
            )
            self._count_crc(self._crc_at, tail)
        if self._crc_at != self._entry.size:
            return None
        return self._crc == self._entry.crc

    def readall(self) -> bytes:
        out = bytearray()
        while chunk := self.read(zstdseek.FRAME_SIZE * 4):
            out += chunk
        return bytes(out)
