"""The ZIP64 container profile of spec/format.md §3: a streaming writer and a strict reader.

Only what capsa writes is accepted: STORED entries, fixed header fields, entries packed back to
back from offset 0, the central directory right after them, a ZIP64 end record, no comment.
Every header field is stored twice (local and central) and the reader compares both copies.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import FormatError
from .source import ByteSource

__all__ = ["MAX_DIRECTORY", "ZipEntry", "ZipWriter", "check_local_header", "read_directory"]

LOCAL_SIG = 0x04034B50
CENTRAL_SIG = 0x02014B50
EOCD64_SIG = 0x06064B50
LOCATOR_SIG = 0x07064B50
EOCD_SIG = 0x06054B50

LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
EOCD64 = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
LOCATOR = struct.Struct("<IIQI")  # 20 bytes
EOCD = struct.Struct("<IHHHHIIH")  # 22 bytes
ZIP64_TAG = 0x0001

VERSION_MADE_BY = (3 << 8) | 45  # Unix, APPNOTE 4.5
VERSION_NEEDED = 45  # ZIP64
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01: no clock in the container (spec §3.2)
DOS_TIME = 0
EXTERNAL_ATTR = 0o100644 << 16  # regular file, rw-r--r--
U32 = 0xFFFFFFFF
U16 = 0xFFFF
MAX_DIRECTORY = 64 << 20
"""Largest central directory a reader loads (about 500 000 entries)."""
MAX_NAME = 1024


@dataclass(frozen=True)
class ZipEntry:
    name: str
    header_offset: int
    data_offset: int
    size: int
    crc: int
    local_zip64: bool


def _zip64_extra(values: list[int]) -> bytes:
    return struct.pack(f"<HH{len(values)}Q", ZIP64_TAG, 8 * len(values), *values)


class ZipWriter:
    """Writes entries one after the other to a seekable file; `close()` adds the directory."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.entries: list[ZipEntry] = []
        self._pending: tuple[int, int] | None = None

    @property
    def offset(self) -> int:
        return self.f.tell()

    def add_bytes(self, name: str, data: bytes) -> ZipEntry:
        """A small entry whose size is known: no ZIP64 extra in its local header."""
        if len(data) >= U32:
            raise ValueError("add_bytes is for small entries")
        raw = name.encode()
        off = self.f.tell()
        crc = zlib.crc32(data)
        self.f.write(
            LOCAL.pack(
                LOCAL_SIG,
                VERSION_NEEDED,
                0,
                0,
                DOS_TIME,
                DOS_DATE,
                crc,
                len(data),
                len(data),
                len(raw),
                0,
            )
        )
        self.f.write(raw)
        self.f.write(data)
        entry = ZipEntry(name, off, off + LOCAL.size + len(raw), len(data), crc, False)
        self.entries.append(entry)
        return entry

    def begin_streamed(self, name_length: int) -> int:
        """Reserve a local header (placeholder name, ZIP64 sizes) and return the data offset."""
        off = self.f.tell()
        self.f.write(
            LOCAL.pack(
                LOCAL_SIG, VERSION_NEEDED, 0, 0, DOS_TIME, DOS_DATE, 0, U32, U32, name_length, 20
            )
        )
        self.f.write(b"\0" * name_length)
        self.f.write(_zip64_extra([0, 0]))
        self._pending = (off, name_length)
        return self.f.tell()

    def end_streamed(self, name: str, size: int, crc: int) -> ZipEntry:
        """Patch the reserved header with the final name, CRC and size."""
        assert self._pending is not None
        off, name_length = self._pending
        raw = name.encode()
        assert len(raw) == name_length
        end = self.f.tell()
        self.f.seek(off + 14)
        self.f.write(struct.pack("<I", crc))
        self.f.seek(off + LOCAL.size)
        self.f.write(raw)
        self.f.write(_zip64_extra([size, size]))
        self.f.seek(end)
        self._pending = None
        entry = ZipEntry(name, off, off + LOCAL.size + name_length + 20, size, crc, True)
        self.entries.append(entry)
        return entry

    def abandon_streamed(self) -> None:
        """Drop the entry being streamed (its content turned out to be stored already)."""
        assert self._pending is not None
        self.f.seek(self._pending[0])
        self.f.truncate()
        self._pending = None

    def close(self) -> None:
        cd_start = self.f.tell()
        out = bytearray()
        for e in self.entries:
            big = [v for v in (e.size, e.size) if v >= U32]
            if e.header_offset >= U32:
                big.append(e.header_offset)
            extra = _zip64_extra(big) if big else b""
            raw = e.name.encode()
            out += CENTRAL.pack(
                CENTRAL_SIG,
                VERSION_MADE_BY,
                VERSION_NEEDED,
                0,
                0,
                DOS_TIME,
                DOS_DATE,
                e.crc,
                min(e.size, U32),
                min(e.size, U32),
                len(raw),
                len(extra),
                0,
                0,
                0,
                EXTERNAL_ATTR,
                min(e.header_offset, U32),
            )
            out += raw + extra
        self.f.write(out)
        cd_size = len(out)
        eocd64_off = self.f.tell()
        n = len(self.entries)
        self.f.write(
            EOCD64.pack(
                EOCD64_SIG,
                EOCD64.size - 12,
                VERSION_MADE_BY,
                VERSION_NEEDED,
                0,
                0,
                n,
                n,
                cd_size,
                cd_start,
            )
        )
        self.f.write(LOCATOR.pack(LOCATOR_SIG, 0, eocd64_off, 1))
        self.f.write(
            EOCD.pack(
                EOCD_SIG, 0, 0, min(n, U16), min(n, U16), min(cd_size, U32), min(cd_start, U32), 0
            )
        )


def _parse_zip64(extra: bytes, wanted: list[bool], where: str) -> list[int]:
    """Values from the ZIP64 extra field, for each 32-bit field that held 0xFFFFFFFF."""
    pos, found = 0, None
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise FormatError("malformed extra field", where=where)
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if len(body) != size:
            raise FormatError("malformed extra field", where=where)
        if tag == ZIP64_TAG:
            if found is not None:
                raise FormatError("two ZIP64 extra fields", where=where)
            found = body
        pos += 4 + size
    need = sum(wanted)
    if need == 0:
        if found is not None:
            raise FormatError("unexpected ZIP64 extra field", where=where)
        return []
    if found is None or len(found) != 8 * need:
        raise FormatError("ZIP64 extra field missing or of the wrong size", where=where)
    return list(struct.unpack(f"<{need}Q", found))


def read_directory(source: ByteSource, *, local_headers: bool = True) -> list[ZipEntry]:
    """Parse and cross-check the whole container structure; return entries in file order.

    Two reads: the end records, then the central directory; then one small read per entry for
    its local header. With ``local_headers=False`` (a remote source, where each is a request)
    the data offsets follow from the directory alone — entries are contiguous, so each local
    header's length is the gap to the next entry — and the caller checks each local header with
    :func:`check_local_header` before it uses the entry's data."""
    file_size = source.size
    tail = EOCD64.size + LOCATOR.size + EOCD.size
    if file_size < tail:
        raise FormatError("not a capsa bundle: too short for a ZIP64 end record")
    raw = source.read_at(file_size - tail, tail)
    e64 = EOCD64.unpack_from(raw, 0)
    loc = LOCATOR.unpack_from(raw, EOCD64.size)
    eocd = EOCD.unpack_from(raw, EOCD64.size + LOCATOR.size)
    if eocd[0] != EOCD_SIG or eocd[7] != 0:
        raise FormatError("not a capsa bundle: no ZIP end record at the end of the file")
    if loc[0] != LOCATOR_SIG or e64[0] != EOCD64_SIG:
        raise FormatError("not a capsa bundle: no ZIP64 end record")
    eocd64_off = file_size - tail
    if loc[1:] != (0, eocd64_off, 1):
        raise FormatError("ZIP64 locator does not point at the ZIP64 end record")
    _, rec_size, made_by, needed, disk, cd_disk, n_disk, n, cd_size, cd_off = e64
    if (rec_size, made_by, needed, disk, cd_disk) != (
        EOCD64.size - 12,
        VERSION_MADE_BY,
        VERSION_NEEDED,
        0,
        0,
    ) or n_disk != n:
        raise FormatError("ZIP64 end record has unsupported fields")
    if eocd[1:7] != (0, 0, min(n, U16), min(n, U16), min(cd_size, U32), min(cd_off, U32)):
        raise FormatError("ZIP end record disagrees with the ZIP64 end record")
    if cd_off + cd_size != eocd64_off:
        raise FormatError("central directory does not end where the ZIP64 end record starts")
    if cd_size > MAX_DIRECTORY or n > cd_size // CENTRAL.size:
        raise FormatError(
            f"central directory too large or inconsistent ({n} entries, {cd_size} bytes)"
        )
    cd = source.read_at(cd_off, cd_size)
    entries: list[ZipEntry] = []
    names: set[str] = set()
    pos = 0
    expected_offset = 0
    for i in range(n):
        where = f"central directory entry {i}"
        if pos + CENTRAL.size > len(cd):
            raise FormatError("central directory truncated", where=where)
        h = CENTRAL.unpack_from(cd, pos)
        (
            sig,
            made_by,
            needed,
            flags,
            method,
            mtime,
            mdate,
            crc,
            csize,
            usize,
            nlen,
            elen,
            clen,
            disk,
            iattr,
            eattr,
            off32,
        ) = h
        if sig != CENTRAL_SIG:
            raise FormatError("bad central directory signature", where=where)
        fixed = (made_by, needed, flags, method, mtime, mdate, clen, disk, iattr, eattr)
        if fixed != (
            VERSION_MADE_BY,
            VERSION_NEEDED,
            0,
            0,
            DOS_TIME,
            DOS_DATE,
            0,
            0,
            0,
            EXTERNAL_ATTR,
        ):
            raise FormatError("entry is not a STORED entry as capsa writes them", where=where)
        if nlen == 0 or nlen > MAX_NAME:
            raise FormatError(f"entry name length {nlen} out of range", where=where)
        body = cd[pos + CENTRAL.size : pos + CENTRAL.size + nlen + elen]
        if len(body) != nlen + elen:
            raise FormatError("central directory truncated", where=where)
        try:
            name = body[:nlen].decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("entry name is not UTF-8", where=where) from e
        where = f"entry {name!r}"
        if name in names:
            raise FormatError("duplicate entry", where=where)
        names.add(name)
        big = _parse_zip64(body[nlen:], [usize == U32, csize == U32, off32 == U32], where)
        it = iter(big)
        usize = next(it) if usize == U32 else usize
        csize = next(it) if csize == U32 else csize
        offset = next(it) if off32 == U32 else off32
        if usize != csize:
            raise FormatError(
                "compressed and uncompressed sizes differ in a STORED entry", where=where
            )
        if not local_headers:
            entries.append(ZipEntry(name, offset, -1, usize, crc, False))
            pos += CENTRAL.size + nlen + elen
            continue
        if offset != expected_offset:
            raise FormatError(
                f"entry starts at {offset}, expected {expected_offset} (gap, overlap or reorder)",
                where=where,
            )
        entry = _check_local(source, name, offset, crc, usize, where)
        if entry.data_offset + usize > cd_off:
            raise FormatError("entry data runs into the central directory", where=where)
        entries.append(entry)
        expected_offset = entry.data_offset + usize
        pos += CENTRAL.size + nlen + elen
    if pos != len(cd):
        raise FormatError("central directory has trailing bytes")
    if not local_headers:
        return _chain(entries, cd_off)
    if expected_offset != cd_off:
        raise FormatError("bytes between the last entry and the central directory")
    return entries


def _chain(entries: list[ZipEntry], cd_off: int) -> list[ZipEntry]:
    """Data offsets from the directory alone: entries are contiguous (spec §3.1), so each
    local header is what lies between an entry's offset and its data, which ends where the
    next entry (or the central directory) starts; its length must be one capsa writes."""
    out: list[ZipEntry] = []
    expected = 0
    for i, e in enumerate(entries):
        where = f"entry {e.name!r}"
        if e.header_offset != expected:
            raise FormatError(
                f"entry starts at {e.header_offset}, expected {expected} (gap, overlap or reorder)",
                where=where,
            )
        end = entries[i + 1].header_offset if i + 1 < len(entries) else cd_off
        data = end - e.size
        extra = data - e.header_offset - LOCAL.size - len(e.name.encode())
        if extra not in (0, 20) or (extra == 0 and e.size >= U32):
            raise FormatError("entry data does not end where the next entry starts", where=where)
        out.append(ZipEntry(e.name, e.header_offset, data, e.size, e.crc, extra == 20))
        expected = end
    return out


def check_local_header(source: ByteSource, entry: ZipEntry) -> None:
    """Check the local header of an entry read with ``local_headers=False``."""
    where = f"entry {entry.name!r}"
    found = _check_local(source, entry.name, entry.header_offset, entry.crc, entry.size, where)
    if found != entry:
        raise FormatError("local header disagrees with the central directory", where=where)


def _check_local(
    source: ByteSource, name: str, offset: int, crc: int, size: int, where: str
) -> ZipEntry:
    raw_name = name.encode()
    head = source.read_at(offset, LOCAL.size + len(raw_name) + 20)
    sig, needed, flags, method, mtime, mdate, lcrc, csize, usize, nlen, elen = LOCAL.unpack_from(
        head
    )
    if sig != LOCAL_SIG:
        raise FormatError("bad local header signature", where=where)
    if (needed, flags, method, mtime, mdate, lcrc, nlen) != (
        VERSION_NEEDED,
        0,
        0,
        DOS_TIME,
        DOS_DATE,
        crc,
        len(raw_name),
    ):
        raise FormatError("local header disagrees with the central directory", where=where)
    if head[LOCAL.size : LOCAL.size + nlen] != raw_name:
        raise FormatError("local header names another entry", where=where)
    if elen == 0:
        if (csize, usize) != (size, size) or size >= U32:
            raise FormatError("local header sizes disagree with the central directory", where=where)
        zip64 = False
    elif elen == 20:
        extra = head[LOCAL.size + nlen : LOCAL.size + nlen + 20]
        if (csize, usize) != (U32, U32) or extra != _zip64_extra([size, size]):
            raise FormatError("local ZIP64 sizes disagree with the central directory", where=where)
        zip64 = True
    else:
        raise FormatError("unexpected local extra field", where=where)
    return ZipEntry(name, offset, offset + LOCAL.size + nlen + elen, size, crc, zip64)
