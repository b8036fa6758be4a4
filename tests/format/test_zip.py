"""capsa._zip: the ZIP64 writer, the strict reader (spec §3), and standard tools reading bundles."""

from __future__ import annotations

import itertools
import os
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import zstandard

import capsa
from capsa.errors import FormatError
from capsa.format import zip64 as _zip
from capsa.format.source import LocalFile
from capsa.format.zip64 import ZipWriter, read_directory

if TYPE_CHECKING:
    from conftest import Corpus

SMALL = b"application/vnd.capsa.bundle+zip"
STREAMED = bytes(range(256)) * 300


NAMES = ("mimetype", "blobs/x", "manifest.json")


def write_zip(
    path: Path, prefix: bytes = b"", *, between: bytes = b"", names: tuple[str, str, str] = NAMES
) -> list[_zip.ZipEntry]:
    """Three entries: small, streamed (ZIP64 local header), small; optional junk before/between."""
    with path.open("w+b") as f:
        f.write(prefix)
        w = ZipWriter(f)
        w.add_bytes(names[0], SMALL)
        f.write(between)
        start = w.begin_streamed(len(names[1].encode()))
        f.write(STREAMED)
        w.end_streamed(names[1], f.tell() - start, zlib.crc32(STREAMED))
        w.add_bytes(names[2], b"{}")
        w.close()
        return w.entries


def read(path: Path) -> list[_zip.ZipEntry]:
    source = LocalFile(path)
    try:
        return read_directory(source)
    finally:
        source.close()


def test_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    written = write_zip(p)
    entries = read(p)
    assert entries == written
    assert [e.name for e in entries] == ["mimetype", "blobs/x", "manifest.json"]
    assert [e.local_zip64 for e in entries] == [False, True, False]
    raw = p.read_bytes()
    assert entries[0].header_offset == 0
    assert raw[entries[0].data_offset : entries[0].data_offset + len(SMALL)] == SMALL
    assert raw[30:38] == b"mimetype" and raw[38:70] == SMALL  # magic-number position, spec §3.3
    e = entries[1]
    assert raw[e.data_offset : e.data_offset + e.size] == STREAMED
    assert e.crc == zlib.crc32(STREAMED)
    # back to back: each entry starts where the previous one's data ends
    for a, b in itertools.pairwise(entries):
        assert b.header_offset == a.data_offset + a.size


def test_python_zipfile_reads_writer_output(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p)
    with zipfile.ZipFile(p) as z:
        assert z.testzip() is None
        assert z.read("mimetype") == SMALL
        assert z.read("blobs/x") == STREAMED
        assert z.read("manifest.json") == b"{}"
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3


def test_abandon_streamed_leaves_no_trace(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    with p.open("w+b") as f:
        w = ZipWriter(f)
        w.add_bytes("mimetype", SMALL)
        end_of_first = f.tell()
        w.begin_streamed(7)
        f.write(b"duplicate content")
        w.abandon_streamed()
        assert f.tell() == end_of_first
        w.add_bytes("manifest.json", b"{}")
        w.close()
    assert [e.name for e in read(p)] == ["mimetype", "manifest.json"]


def test_empty_archive(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    with p.open("w+b") as f:
        ZipWriter(f).close()
    assert read(p) == []
    with zipfile.ZipFile(p) as z:
        assert z.namelist() == []


def test_zip64_beyond_4_gib(tmp_path: Path) -> None:
    """A >4 GiB entry and an entry header beyond 4 GiB (sparse file: costs no disk)."""
    p = tmp_path / "big.zip"
    size = (1 << 32) + 17
    with p.open("w+b") as f:
        w = ZipWriter(f)
        w.add_bytes("mimetype", SMALL)
        start = w.begin_streamed(7)
        f.seek(size - 1, os.SEEK_CUR)
        f.write(b"\x01")
        w.end_streamed("blobs/x", f.tell() - start, 0)  # CRC not checked by the reader
        w.add_bytes("manifest.json", b'{"last":1}')
        w.close()
    if p.stat().st_blocks * 512 > 1 << 30:
        pytest.skip("file system does not support sparse files")
    entries = read(p)
    assert entries[1].size == size
    assert entries[2].header_offset > 0xFFFFFFFF
    with zipfile.ZipFile(p) as z:
        infos = z.infolist()
        assert infos[1].file_size == size
        assert infos[2].header_offset == entries[2].header_offset
        assert z.read("manifest.json") == b'{"last":1}'


# -- the reader rejects ------------------------------------------------------------------------


def test_rejects_data_prefixed_before_first_entry(tmp_path: Path) -> None:
    """Prefixed bytes, both naively (offsets now wrong) and with offsets adjusted (`zip -A`)."""
    good = tmp_path / "good.zip"
    write_zip(good)
    naive = tmp_path / "naive.zip"
    naive.write_bytes(b"#!/bin/sh\nexit 0\n" + good.read_bytes())
    with pytest.raises(FormatError):
        read(naive)
    adjusted = tmp_path / "adjusted.zip"
    write_zip(adjusted, prefix=b"MZ" + b"\x00" * 62)  # header offsets include the prefix
    with zipfile.ZipFile(adjusted) as z:  # a lenient reader accepts it...
        assert z.read("blobs/x") == STREAMED
    with pytest.raises(FormatError, match="expected 0"):  # ...capsa does not
        read(adjusted)


def test_rejects_comment_after_end_record(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p)
    raw = bytearray(p.read_bytes())
    comment = b"hello"
    struct.pack_into("<H", raw, len(raw) - 2, len(comment))  # EOCD comment length
    p.write_bytes(bytes(raw) + comment)
    with zipfile.ZipFile(p) as z:
        assert z.comment == comment  # a valid ZIP for lenient readers
    with pytest.raises(FormatError, match="end record"):
        read(p)


def test_rejects_trailing_garbage(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p)
    p.write_bytes(p.read_bytes() + b"\x00")
    with pytest.raises(FormatError):
        read(p)


def test_rejects_gap_between_entries(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p, between=b"hidden")
    with pytest.raises(FormatError, match="gap, overlap or reorder"):
        read(p)


def test_rejects_overlapping_entries(tmp_path: Path) -> None:
    """Two central directory records pointing into the same bytes (the classic ZIP bomb)."""
    p = tmp_path / "t.zip"
    with p.open("w+b") as f:
        w = ZipWriter(f)
        first = w.add_bytes("mimetype", SMALL)
        w.add_bytes("blobs/y", b"x" * 100)
        w.entries.append(
            _zip.ZipEntry(
                "blobs/z", first.header_offset, first.data_offset, first.size, first.crc, False
            )
        )
        w.close()
    with pytest.raises(FormatError, match="gap, overlap or reorder"):
        read(p)


def test_rejects_reordered_directory(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    with p.open("w+b") as f:
        w = ZipWriter(f)
        w.add_bytes("a", b"1")
        w.add_bytes("b", b"2")
        w.entries.reverse()
        w.close()
    with pytest.raises(FormatError, match="gap, overlap or reorder"):
        read(p)


def test_rejects_duplicate_names(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p, names=("mimetype", "same", "same"))
    with pytest.raises(FormatError, match="duplicate entry"):
        read(p)


def test_rejects_local_header_disagreeing_with_directory(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    entries = write_zip(p)
    raw = bytearray(p.read_bytes())
    raw[entries[2].header_offset + 14] ^= 0xFF  # local CRC of manifest.json
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="local header disagrees"):
        read(p)


def test_rejects_local_name_mismatch(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    entries = write_zip(p)
    raw = bytearray(p.read_bytes())
    raw[entries[1].header_offset + 30] ^= 0x20  # 'b' -> 'B' in the local copy of the name
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="names another entry"):
        read(p)


def test_rejects_size_mismatch_between_copies(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    entries = write_zip(p)
    raw = bytearray(p.read_bytes())
    e = entries[1]
    off = e.header_offset + 30 + len(e.name) + 4  # ZIP64 extra: uncompressed size
    struct.pack_into("<Q", raw, off, e.size - 1)
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="ZIP64 sizes disagree"):
        read(p)


def test_rejects_deflated_and_foreign_zips(tmp_path: Path) -> None:
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        p = tmp_path / f"py{method}.zip"
        with zipfile.ZipFile(p, "w", compression=method) as z:
            z.writestr("mimetype", SMALL)
            z.writestr("manifest.json", b"{}")
        with pytest.raises(FormatError):
            read(p)


@pytest.mark.parametrize("size", [0, 1, 21, 97])
def test_rejects_short_files(tmp_path: Path, size: int) -> None:
    p = tmp_path / "t.zip"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * size)
    with pytest.raises(FormatError):
        read(p)


def test_rejects_truncated_file(tmp_path: Path) -> None:
    p = tmp_path / "t.zip"
    write_zip(p)
    raw = p.read_bytes()
    for cut in (1, 22, len(raw) // 2):
        p.write_bytes(raw[:-cut])
        with pytest.raises(FormatError):
            read(p)


def test_rejects_oversized_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "t.zip"
    write_zip(p)
    monkeypatch.setattr(_zip, "MAX_DIRECTORY", 50)
    with pytest.raises(FormatError, match="too large"):
        read(p)


# -- standard tools read real bundles (spec §11) ----------------------------------------------


def test_unzip_t_accepts_bundle(bundle_path: Path, tool: Callable[[str], str]) -> None:
    unzip = tool("unzip")
    r = subprocess.run([unzip, "-t", str(bundle_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors detected" in r.stdout


def test_unzip_lists_each_content_once(
    bundle_path: Path, tool: Callable[[str], str], corpus: Corpus
) -> None:
    unzip = tool("unzip")
    r = subprocess.run([unzip, "-Z1", str(bundle_path)], capture_output=True, text=True, check=True)
    names = r.stdout.split()
    blobs = [n for n in names if n.startswith("blobs/sha256/")]
    assert names[0] == "mimetype" and names[-1] == "manifest.json"
    assert len(blobs) == corpus.distinct_contents
    assert len(names) == len(blobs) + 2


def test_python_zipfile_reads_every_entry(bundle_path: Path, corpus: Corpus) -> None:
    with capsa.open(bundle_path) as b, zipfile.ZipFile(bundle_path) as z:
        assert z.testzip() is None
        assert [i.filename for i in z.infolist()] == [e.name for e in b.entries]
        assert z.read("manifest.json") == b.manifest_bytes
        assert z.read("mimetype") == SMALL
        by_digest = {f.digest: p for p, f in b.manifest.files.items()}
        for digest, blob in b.manifest.blobs.items():
            suffix = ".zst" if blob.encoding == "zstd-seekable" else ""
            name = f"blobs/sha256/{digest[7:]}{suffix}"
            raw = z.read(name)
            assert len(raw) == blob.stored_size
            original = corpus.data(by_digest[digest])
            if blob.encoding == "identity":
                assert raw == original
            else:
                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
                assert reader.read() == original


def test_zstd_cli_decompresses_blob_extracted_with_unzip(
    bundle: capsa.Bundle, corpus: Corpus, tool: Callable[[str], str]
) -> None:
    unzip, zstd = tool("unzip"), tool("zstd")
    member = next(m for m in bundle.members() if m.path == "analysis/signal.bin")
    assert member.encoding == "zstd-seekable"
    name = f"blobs/sha256/{member.digest[7:]}.zst"
    unz = subprocess.Popen([unzip, "-p", str(bundle.path), name], stdout=subprocess.PIPE)
    out = subprocess.run([zstd, "-d", "-c", "-q"], stdin=unz.stdout, capture_output=True)
    assert unz.stdout is not None
    unz.stdout.close()
    assert unz.wait() == 0
    assert out.returncode == 0, out.stderr
    assert out.stdout == corpus.data("analysis/signal.bin")
