"""Zstandard seekable format: frame compression, seek table encoding, and a checked index.

Implements the format of zstd's ``contrib/seekable_format`` as profiled by spec/format.md §6:
independent frames of at most ``FRAME_SIZE`` bytes (each with its content size and XXH64
checksum), then one skippable frame holding the seek table with the checksum flag set.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

from ..errors import FormatError, IntegrityError

__all__ = [
    "FAST",
    "FRAME_SIZE",
    "MAX_FRAME_SIZE",
    "SeekIndex",
    "decompress_frame",
    "encode_seek_table",
    "new_compressor",
    "new_decompressor",
    "parse_seek_table",
]

FRAME_SIZE = 1 << 20
"""Uncompressed size of every frame but the last, as capsa writes them (spec §6.2)."""
MAX_FRAME_SIZE = 8 << 20
"""Largest uncompressed frame a reader accepts; bounds memory per read (spec §6.3)."""
LEVEL = 3
FAST = 0
"""Not a zstd level: capsa's fast setting (spec §6.2), zstd's ``fast`` strategy with a 13-bit
hash table and 5-byte minimum matches. On physics tables (HDF5 numbers: many short repeats) it
compresses ~1.5x faster than level 3 and ~10 % smaller; on text it sits between levels 1 and 3."""

SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
FOOTER_SIZE = 9
ENTRY_SIZE = 12  # compressed u32, decompressed u32, checksum u32 (checksum flag always set)
_CHECKSUM_FLAG = 0x80
_FOOTER = struct.Struct("<IBI")
_HEADER = struct.Struct("<II")


def new_compressor(level: int = LEVEL) -> zstandard.ZstdCompressor:
    """A compressor producing frames as spec §6.2 requires (content size + checksum, 1 thread).

    ``level`` is a zstd level (1-22) or :data:`FAST`."""
    if level == FAST:
        params = zstandard.ZstdCompressionParameters(
            window_log=20,  # a frame is 1 MiB: a larger window finds nothing more
            hash_log=13,
            chain_log=16,  # unused by the fast strategy
            search_log=1,
            min_match=5,
            target_length=0,
            strategy=zstandard.STRATEGY_FAST,
            write_checksum=True,
            write_content_size=True,
            threads=0,
        )
        return zstandard.ZstdCompressor(compression_params=params)
    return zstandard.ZstdCompressor(
        level=level, write_checksum=True, write_content_size=True, threads=0
    )


def new_decompressor() -> zstandard.ZstdDecompressor:
    # A bounded window keeps a hostile frame from reserving more memory than a frame may hold.
    return zstandard.ZstdDecompressor(max_window_size=MAX_FRAME_SIZE)


def encode_seek_table(entries: list[tuple[int, int, int]]) -> bytes:
    """Seek table skippable frame for ``(compressed, decompressed, checksum)`` triples."""
    body = bytearray()
    for c, d, x in entries:
        body += struct.pack("<III", c, d, x)
    body += _FOOTER.pack(len(entries), _CHECKSUM_FLAG, SEEKABLE_MAGIC)
    return _HEADER.pack(SKIPPABLE_MAGIC, len(body)) + bytes(body)


def frame_checksum(frame: bytes | memoryview) -> int:
    """The XXH64-low-32 content checksum zstd stores as a frame's last 4 bytes."""
    return int.from_bytes(frame[-4:], "little")


def compress_bound(n: int) -> int:
    """ZSTD_COMPRESSBOUND(n) from zstd.h: the largest frame zstd can emit for n input bytes."""
    margin = ((128 << 10) - n) >> 11 if n < (128 << 10) else 0
    return n + (n >> 8) + margin + 32  # +32: frame header and checksum, generously


@dataclass(frozen=True)
class SeekIndex:
    """Validated seek table: cumulative compressed and decompressed offsets of each frame."""

    comp: array  # type: ignore[type-arg]  # len n+1, comp[i] = start of frame i in the entry
    decomp: array  # type: ignore[type-arg]  # len n+1, decomp[i] = first byte of frame i
    checksums: array  # type: ignore[type-arg]

    @property
    def frames(self) -> int:
        return len(self.comp) - 1

    @property
    def size(self) -> int:
        return int(self.decomp[-1])

    def frame_of(self, pos: int) -> int:
        """Index of the frame holding uncompressed offset ``pos`` (0 <= pos < size)."""
        return bisect_right(self.decomp, pos) - 1


def parse_seek_table(
    read_at: Callable[[int, int], bytes], stored_size: int, size: int, *, where: str
) -> SeekIndex:
    """Read and check the seek table at the end of a stored entry of ``stored_size`` bytes.

    ``size`` is the uncompressed size the manifest declares; the table must add up to exactly
    that and to exactly the entry's stored size, and no frame may exceed MAX_FRAME_SIZE, so a
    reader commits no memory that the declared sizes did not bound (spec §6.3).
    """
    if stored_size < _HEADER.size + FOOTER_SIZE:
        raise FormatError("seek table truncated: entry too short", where=where)
    n, descriptor, magic = _FOOTER.unpack(read_at(stored_size - FOOTER_SIZE, FOOTER_SIZE))
    if magic != SEEKABLE_MAGIC:
        raise FormatError("seek table truncated or missing: bad seekable magic", where=where)
    if descriptor != _CHECKSUM_FLAG:
        raise FormatError(f"seek table descriptor {descriptor:#04x} not supported", where=where)
    table_size = _HEADER.size + n * ENTRY_SIZE + FOOTER_SIZE
    if table_size > stored_size:
        raise FormatError(f"seek table truncated: {n} frames do not fit the entry", where=where)
    start = stored_size - table_size
    raw = read_at(start, table_size - FOOTER_SIZE)
    skip_magic, frame_size = _HEADER.unpack_from(raw)
    if skip_magic != SKIPPABLE_MAGIC or frame_size != table_size - _HEADER.size:
        raise FormatError("seek table truncated: bad skippable frame header", where=where)
    values = array("I")
    values.frombytes(raw[_HEADER.size :])
    if values.itemsize != 4:  # pragma: no cover - every platform capsa runs on
        raise FormatError("unsupported platform integer size", where=where)
    if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover - big-endian hosts
        values.byteswap()
    comp = array("Q", [0])
    decomp = array("Q", [0])
    csum = array("I")
    c_total = d_total = 0
    for i in range(n):
        c, d, x = values[3 * i], values[3 * i + 1], values[3 * i + 2]
        if d == 0 or d > MAX_FRAME_SIZE:
            raise FormatError(
                f"frame {i} declares {d} bytes (allowed 1..{MAX_FRAME_SIZE})", where=where
            )
        if c == 0 or c > compress_bound(d):
            raise FormatError(f"frame {i} declares an impossible compressed size {c}", where=where)
        c_total += c
        d_total += d
        comp.append(c_total)
        decomp.append(d_total)
        csum.append(x)
    if c_total != start:
        raise FormatError(
            f"seek table frames cover {c_total} bytes, entry has {start}", where=where
        )
    if d_total != size:
        raise IntegrityError(
            "declared size lie: seek table and manifest disagree",
            where=where,
            expected=str(size),
            found=str(d_total),
        )
    return SeekIndex(comp, decomp, csum)


def decompress_frame(
    dctx: zstandard.ZstdDecompressor,
    frame: bytes | memoryview,
    size: int,
    checksum: int,
    *,
    where: str,
) -> bytes:
    """Decompress exactly one frame that must yield exactly ``size`` bytes."""
    try:
        params = zstandard.get_frame_parameters(frame)
        if params.content_size != size or not params.has_checksum:
            raise FormatError(
                f"frame header declares {params.content_size} bytes, seek table {size}",
                where=where,
            )
        if frame_checksum(frame) != checksum:
            raise IntegrityError("frame checksum differs from seek table", where=where)
        out = dctx.decompress(frame, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"corrupt zstd frame: {e}", where=where) from e
    if len(out) != size:
        raise IntegrityError(f"frame yields {len(out)} bytes, expected {size}", where=where)
    return out
