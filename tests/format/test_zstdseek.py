"""capsa.zstdseek: seek table encoding/parsing and the per-frame checks of spec §6.3."""

from __future__ import annotations

import struct

import pytest
import zstandard

from capsa.errors import FormatError, IntegrityError
from capsa.format import zstdseek

FRAME = zstdseek.FRAME_SIZE


Table = list[tuple[int, int, int]]


def make_blob(data: bytes, frame_size: int = FRAME) -> tuple[bytes, list[bytes], Table]:
    """Seekable stream of ``data`` as capsa writes it: frames, then the seek table."""
    cctx = zstdseek.new_compressor()
    frames = [cctx.compress(data[i : i + frame_size]) for i in range(0, len(data), frame_size)]
    table = [
        (len(f), len(data[i * frame_size : (i + 1) * frame_size]), zstdseek.frame_checksum(f))
        for i, f in enumerate(frames)
    ]
    return b"".join(frames) + zstdseek.encode_seek_table(table), frames, table


def parse(blob: bytes, size: int) -> zstdseek.SeekIndex:
    def read_at(off: int, n: int) -> bytes:
        assert off >= 0 and off + n <= len(blob), "parser read outside the entry"
        return blob[off : off + n]

    return zstdseek.parse_seek_table(read_at, len(blob), size, where="test")


@pytest.fixture(scope="module")
def sample() -> bytes:
    # 2.5 frames of mildly compressible bytes
    return b"".join(b"%07d," % i for i in range(FRAME * 5 // 2 // 8 + 1))[: FRAME * 5 // 2]


def test_round_trip(sample: bytes) -> None:
    blob, frames, table = make_blob(sample)
    index = parse(blob, len(sample))
    assert index.frames == 3
    assert index.size == len(sample)
    assert list(index.decomp) == [0, FRAME, 2 * FRAME, len(sample)]
    assert list(index.comp) == [
        0,
        len(frames[0]),
        len(frames[0]) + len(frames[1]),
        sum(map(len, frames)),
    ]
    assert list(index.checksums) == [x for _, _, x in table]
    dctx = zstdseek.new_decompressor()
    out = b""
    for i in range(index.frames):
        raw = blob[index.comp[i] : index.comp[i + 1]]
        out += zstdseek.decompress_frame(
            dctx, raw, index.decomp[i + 1] - index.decomp[i], index.checksums[i], where="t"
        )
    assert out == sample


def test_stream_is_plain_zstd(sample: bytes) -> None:
    """Any zstd decoder reads the whole blob: frames concatenate, the seek table is skipped."""
    blob, _, _ = make_blob(sample)
    reader = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    assert reader.read() == sample


def test_frames_carry_content_size_and_checksum(sample: bytes) -> None:
    _, frames, table = make_blob(sample)
    for f, (_, d, x) in zip(frames, table, strict=True):
        params = zstandard.get_frame_parameters(f)
        assert params.content_size == d
        assert params.has_checksum
        assert x == zstdseek.frame_checksum(f)


def test_seek_table_layout() -> None:
    table = zstdseek.encode_seek_table([(10, 20, 0xDEADBEEF), (5, 7, 1)])
    magic, size = struct.unpack_from("<II", table)
    assert magic == 0x184D2A5E
    assert size == 12 * 2 + 9 == len(table) - 8
    assert struct.unpack_from("<6I", table, 8) == (10, 20, 0xDEADBEEF, 5, 7, 1)
    assert struct.unpack_from("<IBI", table, len(table) - 9) == (2, 0x80, 0x8F92EAB1)


def test_frame_of_boundaries(sample: bytes) -> None:
    index = parse(make_blob(sample)[0], len(sample))
    assert index.frame_of(0) == 0
    assert index.frame_of(FRAME - 1) == 0
    assert index.frame_of(FRAME) == 1
    assert index.frame_of(FRAME + 1) == 1
    assert index.frame_of(2 * FRAME) == 2
    assert index.frame_of(len(sample) - 1) == 2


def test_empty_table_for_empty_content() -> None:
    blob = zstdseek.encode_seek_table([])
    index = parse(blob, 0)
    assert index.frames == 0 and index.size == 0


# -- parse_seek_table rejects ------------------------------------------------------------------


def test_rejects_bad_seekable_magic(sample: bytes) -> None:
    blob = bytearray(make_blob(sample)[0])
    blob[-1] ^= 0x01
    with pytest.raises(FormatError, match="magic"):
        parse(bytes(blob), len(sample))


@pytest.mark.parametrize("descriptor", [0x00, 0x81, 0xC0, 0x83])
def test_rejects_bad_descriptor(sample: bytes, descriptor: int) -> None:
    blob = bytearray(make_blob(sample)[0])
    blob[-5] = descriptor
    with pytest.raises(FormatError, match="descriptor"):
        parse(bytes(blob), len(sample))


def test_rejects_bad_skippable_header(sample: bytes) -> None:
    blob, frames, _ = make_blob(sample)
    start = sum(map(len, frames))
    damaged = bytearray(blob)
    damaged[start] ^= 0x01  # skippable magic
    with pytest.raises(FormatError, match="skippable"):
        parse(bytes(damaged), len(sample))
    damaged = bytearray(blob)
    struct.pack_into("<I", damaged, start + 4, 12 * 3 + 9 + 1)  # Frame_Size
    with pytest.raises(FormatError, match="skippable"):
        parse(bytes(damaged), len(sample))


def test_rejects_too_many_frames_for_entry(sample: bytes) -> None:
    blob = bytearray(make_blob(sample)[0])
    struct.pack_into("<I", blob, len(blob) - 9, 10_000_000)
    with pytest.raises(FormatError, match="do not fit"):
        parse(bytes(blob), len(sample))


def test_rejects_truncated_entry() -> None:
    with pytest.raises(FormatError, match="truncated"):
        parse(b"\x00" * 16, 0)


def test_rejects_frames_covering_wrong_size(sample: bytes) -> None:
    _, frames, table = make_blob(sample)
    data = b"".join(frames)
    # one stray byte between the frames and the table
    with pytest.raises(FormatError, match="cover"):
        parse(data + b"\x00" + zstdseek.encode_seek_table(table), len(sample))
    # the table claims one compressed byte more than the frames hold
    c, d, x = table[0]
    lying = [(c + 1, d, x), *table[1:]]
    with pytest.raises(FormatError, match="cover"):
        parse(data + zstdseek.encode_seek_table(lying), len(sample))


def test_rejects_frame_larger_than_max() -> None:
    big = zstdseek.MAX_FRAME_SIZE + 1
    table = zstdseek.encode_seek_table([(100, big, 0)])
    with pytest.raises(FormatError, match="declares"):
        parse(b"\x00" * 100 + table, big)


def test_rejects_zero_byte_frame() -> None:
    table = zstdseek.encode_seek_table([(20, 0, 0)])
    with pytest.raises(FormatError, match="declares 0 bytes"):
        parse(b"\x00" * 20 + table, 0)


def test_rejects_impossible_compressed_size() -> None:
    # 1 KiB can never compress to more than ZSTD_COMPRESSBOUND(1 KiB) + 32 bytes
    c = zstdseek.compress_bound(1024) + 1
    table = zstdseek.encode_seek_table([(c, 1024, 0)])
    with pytest.raises(FormatError, match="impossible compressed size"):
        parse(b"\x00" * c + table, 1024)


@pytest.mark.parametrize("declared_delta", [-1, 1, 10 * FRAME])
def test_declared_size_lie_is_integrity_error(sample: bytes, declared_delta: int) -> None:
    blob, _, _ = make_blob(sample)
    with pytest.raises(IntegrityError, match="declared size lie") as e:
        parse(blob, len(sample) + declared_delta)
    assert e.value.exit_code == 4
    assert e.value.expected == str(len(sample) + declared_delta)
    assert e.value.found == str(len(sample))


# -- decompress_frame rejects ------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_frame() -> tuple[bytes, bytes]:
    data = bytes(range(256)) * 1000
    return data, zstdseek.new_compressor().compress(data)


def test_decompress_frame_ok(one_frame: tuple[bytes, bytes]) -> None:
    data, frame = one_frame
    out = zstdseek.decompress_frame(
        zstdseek.new_decompressor(), frame, len(data), zstdseek.frame_checksum(frame), where="t"
    )
    assert out == data


@pytest.mark.parametrize("delta", [-1, 1])
def test_decompress_frame_rejects_header_size_other_than_table(
    one_frame: tuple[bytes, bytes], delta: int
) -> None:
    data, frame = one_frame
    with pytest.raises(FormatError, match="frame header declares"):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(),
            frame,
            len(data) + delta,
            zstdseek.frame_checksum(frame),
            where="t",
        )


def test_decompress_frame_rejects_lying_content_size_field() -> None:
    """Header content size patched to agree with a lying table: decoding must still fail."""
    data = b"x" * 1000 + bytes(range(200))
    frame = bytearray(zstdseek.new_compressor().compress(data))
    params = zstandard.get_frame_parameters(bytes(frame))
    assert params.content_size == len(data)
    # Frame header: magic (4), descriptor (1), [window (1)], content size field.
    fhd = frame[4]
    single_segment = bool(fhd & 0x20)
    fcs_flag = fhd >> 6
    fcs_size = {0: 1 if single_segment else 0, 1: 2, 2: 4, 3: 8}[fcs_flag]
    pos = 5 + (0 if single_segment else 1)
    if fcs_size == 2:
        value = struct.unpack_from("<H", frame, pos)[0] + 256 + 10
        struct.pack_into("<H", frame, pos, value - 256)
    else:
        fmt = {1: "<B", 4: "<I", 8: "<Q"}[fcs_size]
        value = struct.unpack_from(fmt, frame, pos)[0] + 10
        struct.pack_into(fmt, frame, pos, value)
    lie = len(data) + 10
    assert zstandard.get_frame_parameters(bytes(frame)).content_size == lie
    with pytest.raises(IntegrityError):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(),
            bytes(frame),
            lie,
            zstdseek.frame_checksum(bytes(frame)),
            where="t",
        )


def test_decompress_frame_rejects_checksum_other_than_table(one_frame: tuple[bytes, bytes]) -> None:
    data, frame = one_frame
    with pytest.raises(IntegrityError, match="checksum"):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(),
            frame,
            len(data),
            zstdseek.frame_checksum(frame) ^ 1,
            where="t",
        )


def test_decompress_frame_rejects_content_checksum_mismatch(one_frame: tuple[bytes, bytes]) -> None:
    """Table and frame trailer agree, but the content does not hash to them."""
    data, frame = one_frame
    damaged = bytearray(frame)
    damaged[-1] ^= 0x01
    with pytest.raises(IntegrityError, match="corrupt zstd frame"):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(),
            bytes(damaged),
            len(data),
            zstdseek.frame_checksum(bytes(damaged)),
            where="t",
        )


def test_decompress_frame_rejects_trailing_data(one_frame: tuple[bytes, bytes]) -> None:
    data, frame = one_frame
    with pytest.raises(IntegrityError):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(),
            frame + frame,
            len(data),
            zstdseek.frame_checksum(frame),
            where="t",
        )


def test_decompress_frame_rejects_garbage() -> None:
    with pytest.raises((FormatError, IntegrityError)):
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(), b"\x28\xb5\x2f\xfd" + b"\xff" * 40, 100, 0, where="t"
        )


def test_decompress_frame_error_names_where(one_frame: tuple[bytes, bytes]) -> None:
    data, frame = one_frame
    with pytest.raises(IntegrityError) as e:
        zstdseek.decompress_frame(
            zstdseek.new_decompressor(), frame, len(data), 0, where="blob X frame 3"
        )
    assert e.value.where == "blob X frame 3"
    assert "blob X frame 3" in e.value.diagnostics()
