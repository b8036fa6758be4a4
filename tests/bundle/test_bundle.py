"""capsa.bundle: opening (structure checks), members, random access, h5py reading in place."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pytest

import capsa
from capsa.errors import FormatError, IntegrityError, NotFoundError
from capsa.format import zstdseek
from capsa.format.canonical import canonical_json
from capsa.format.manifest import FORMAT_VERSION, Blob, FileEntry, Manifest
from capsa.format.zip64 import ZipWriter

if TYPE_CHECKING:
    from conftest import Corpus

FRAME = zstdseek.FRAME_SIZE
MIMETYPE = b"application/vnd.capsa.bundle+zip"


# -- reading every member back -----------------------------------------------------------------


def test_every_member_reads_back_identical(bundle: capsa.Bundle, corpus: Corpus) -> None:
    for path in corpus.files:
        with bundle.open_member(path) as f:
            assert f.size == len(corpus.data(path))
            assert f.read() == corpus.data(path), path


def test_members_listing(bundle: capsa.Bundle, corpus: Corpus) -> None:
    members = bundle.members()
    assert [m.path for m in members] == sorted(corpus.files)
    for m in members:
        data = corpus.data(m.path)
        assert m.size == len(data)
        assert m.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert m.role == "other"


def test_bundle_id_is_manifest_digest(bundle: capsa.Bundle) -> None:
    assert bundle.id == "sha256:" + hashlib.sha256(bundle.read_entry("manifest.json")).hexdigest()
    assert bundle.manifest.bundle.title == "test corpus"


def test_read_entry_unknown(bundle: capsa.Bundle) -> None:
    with pytest.raises(NotFoundError):
        bundle.read_entry("signatures/none.dsse.json")


def test_open_member_unknown(bundle: capsa.Bundle) -> None:
    with pytest.raises(NotFoundError, match="no such member") as e:
        bundle.open_member("analysis/nope.txt")
    assert e.value.exit_code == 9
    with pytest.raises(NotFoundError):
        bundle.open_member("analysis")  # a directory is not a member


def test_close_releases_descriptor(bundle_path: Path) -> None:
    b = capsa.open(bundle_path)
    fd = b.source._fd  # type: ignore[attr-defined]
    os.fstat(fd)
    b.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    b.close()  # idempotent


# -- random access -----------------------------------------------------------------------------


def offsets_to_probe(size: int) -> list[int]:
    points = {0, 1, size - 1, size, size + 1, size + 1000}
    for k in range(1, size // FRAME + 1):
        points |= {k * FRAME - 1, k * FRAME, k * FRAME + 1}
    points |= {size // 3, size // 2 + 7}
    return sorted(p for p in points if p >= 0)


@pytest.mark.parametrize("path", ["analysis/signal.bin", "analysis/noise.bin", "analysis/run.h5"])
def test_random_access_matches_slices(bundle: capsa.Bundle, corpus: Corpus, path: str) -> None:
    data = corpus.data(path)
    with bundle.open_member(path) as f:
        for pos in offsets_to_probe(len(data)):
            for n in (1, 2, 3, 4096, FRAME + 5):
                assert f.seek(pos) == pos
                assert f.read(n) == data[pos : pos + n], (pos, n)
                assert f.tell() == min(pos + n, max(len(data), pos))


def test_read_beyond_end_is_empty(bundle: capsa.Bundle, corpus: Corpus) -> None:
    with bundle.open_member("analysis/signal.bin") as f:
        f.seek(f.size + 10)
        assert f.read(5) == b""
        assert f.read() == b""
        f.seek(f.size - 1)
        assert f.read(100) == corpus.data("analysis/signal.bin")[-1:]
        assert f.read(1) == b""


def test_seek_whence(bundle: capsa.Bundle, corpus: Corpus) -> None:
    data = corpus.data("analysis/signal.bin")
    with bundle.open_member("analysis/signal.bin") as f:
        assert f.seek(-10, io.SEEK_END) == len(data) - 10
        assert f.read() == data[-10:]
        f.seek(FRAME - 3)
        assert f.seek(5, io.SEEK_CUR) == FRAME + 2
        assert f.read(4) == data[FRAME + 2 : FRAME + 6]
        with pytest.raises(ValueError):
            f.seek(-1)
        with pytest.raises(ValueError):
            f.seek(0, 7)
        assert f.seekable() and f.readable() and not f.writable()


def test_readinto_and_buffered_reader(bundle: capsa.Bundle, corpus: Corpus) -> None:
    data = corpus.data("analysis/signal.bin")
    with bundle.open_member("analysis/signal.bin") as raw:
        buf = bytearray(FRAME + 100)
        raw.seek(2 * FRAME - 50)
        assert raw.readinto(buf) == FRAME + 100
        assert bytes(buf) == data[2 * FRAME - 50 : 3 * FRAME + 50]
        reader = io.BufferedReader(raw, buffer_size=8192)
        reader.seek(123_456)
        assert reader.read(10) == data[123_456:123_466]
        assert reader.readline() == data[123_466:].split(b"\n", 1)[0] + b"\n"


def test_closed_member_refuses_reads(bundle: capsa.Bundle) -> None:
    f = bundle.open_member("analysis/signal.bin")
    f.close()
    with pytest.raises(ValueError):
        f.read(1)


def test_frame_cache_is_bounded(bundle: capsa.Bundle) -> None:
    with bundle.open_member("analysis/signal.bin") as f:
        assert f.read()
        assert 0 < len(f._cache) <= 4


def test_sequential_reads_decompress_each_frame_once(
    bundle: capsa.Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = zstdseek.decompress_frame

    def counting(*args: object, **kw: object) -> bytes:
        calls.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(zstdseek, "decompress_frame", counting)
    with bundle.open_member("analysis/signal.bin") as f:
        while f.read(4096):
            pass
    assert len(calls) == 4


# -- h5py reads members in place ---------------------------------------------------------------


def test_h5py_reads_member_in_place(bundle: capsa.Bundle, corpus: Corpus) -> None:
    with h5py.File(bundle.open_member("analysis/run.h5"), "r") as f:
        assert f.attrs["experiment"] == "capsa test"
        assert f.attrs["run"] == 4711
        for name, expected in corpus.arrays.items():
            assert np.array_equal(f[name][()], expected), name
        assert f["raw/energy"].compression == "gzip"
        assert np.array_equal(f["raw/energy"][1000:1010], corpus.arrays["raw/energy"][1000:1010])
        assert f["calib/matrix"].attrs["unit"] == "keV/ch"
        assert list(f["labels"][()]) == [b"alpha", b"beta", b"gamma"]


BIG_N = 5 << 20  # 40 MiB of float64


@pytest.fixture(scope="module")
def big_h5_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("bigh5")
    with h5py.File(d / "big.h5", "w") as f:
        f.create_dataset("ramp", data=np.arange(BIG_N, dtype=np.float64))  # contiguous
        f.create_dataset("tiny", data=np.arange(7, dtype=np.int16))
    capsa.pack(d / "big.capsa", [d / "big.h5"], progress=False)
    (d / "big.h5").unlink()
    yield d / "big.capsa"


def test_h5py_slice_of_large_dataset_touches_few_frames(
    big_h5_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decompressed: list[int] = []
    real = zstdseek.decompress_frame

    def counting(dctx: object, frame: bytes, size: int, checksum: int, *, where: str) -> bytes:
        decompressed.append(size)
        return real(dctx, frame, size, checksum, where=where)  # type: ignore[arg-type]

    monkeypatch.setattr(zstdseek, "decompress_frame", counting)
    with capsa.open(big_h5_bundle) as b:
        (member,) = b.members()
        assert member.encoding == "zstd-seekable" and member.size > 40 * FRAME
        blob, entry = b.blob_entry(member.digest)
        total_frames = b.seek_index(blob, entry, "t").frames
        assert total_frames >= 40
        with h5py.File(b.open_member("big.h5"), "r") as f:
            start = 3_000_017
            assert np.array_equal(
                f["ramp"][start : start + 100], np.arange(start, start + 100, dtype=np.float64)
            )
            assert list(f["tiny"][()]) == list(range(7))
            assert f["ramp"][BIG_N - 1] == BIG_N - 1
    assert 1 <= len(decompressed) <= 5, decompressed
    assert len(decompressed) < total_frames // 8
    assert sum(decompressed) <= 5 * FRAME


# -- opening refuses what is not a well-formed bundle -----------------------------------------


@pytest.mark.parametrize(
    "make,exc",
    [
        (lambda p: p.write_text("just some notes\n"), FormatError),
        (lambda p: p.write_bytes(b""), FormatError),
        (lambda p: p.mkdir(), FormatError),
        (lambda p: None, NotFoundError),
        (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 200), FormatError),
    ],
    ids=["text", "empty", "directory", "missing", "zip-magic-only"],
)
def test_open_rejects_non_bundles(
    tmp_path: Path, make: Callable[[Path], object], exc: type[Exception]
) -> None:
    p = tmp_path / "x.capsa"
    make(p)
    with pytest.raises(exc) as e:
        capsa.open(p)
    assert str(p) in str(e.value)


def test_open_rejects_fifo(tmp_path: Path) -> None:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    fd = os.open(p, os.O_RDWR | os.O_NONBLOCK)  # a writer, so opening for read does not block
    try:
        with pytest.raises(FormatError, match="not a regular file"):
            capsa.open(p)
    finally:
        os.close(fd)


def test_open_rejects_plain_zip_of_same_files(tmp_path: Path, bundle_path: Path) -> None:
    p = tmp_path / "rezipped.capsa"
    with zipfile.ZipFile(bundle_path) as src, zipfile.ZipFile(p, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(FormatError):
        capsa.open(p)


def test_open_rejects_truncated(bundle_path: Path, tmp_path: Path) -> None:
    data = bundle_path.read_bytes()
    for cut in (1, 100, len(data) // 2):
        p = tmp_path / f"cut{cut}.capsa"
        p.write_bytes(data[:-cut])
        with pytest.raises(FormatError):
            capsa.open(p)


# Hand-made bundles: the container is fine, the content breaks one rule of spec §3.3/§7.3/§10.1.

DATA = b"hello, capsa\n"
HEX = hashlib.sha256(DATA).hexdigest()


def manifest_for(blobs: dict[str, Blob], files: dict[str, FileEntry] | None = None) -> bytes:
    if files is None:
        files = {f"f{i}": FileEntry(digest=d, role="other") for i, d in enumerate(blobs)}
    return canonical_json(Manifest(capsa=FORMAT_VERSION, blobs=blobs, files=files))


def craft(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with path.open("w+b") as f:
        w = ZipWriter(f)
        for name, data in entries:
            w.add_bytes(name, data)
        w.close()
    return path


def identity_blob(size: int = len(DATA), stored: int = len(DATA)) -> dict[str, Blob]:
    return {
        f"sha256:{HEX}": Blob(
            size=size, stored_size=stored, encoding="identity", media_type="text/plain"
        )
    }


def test_crafted_minimal_bundle_is_valid(tmp_path: Path) -> None:
    p = craft(
        tmp_path / "ok.capsa",
        [
            ("mimetype", MIMETYPE),
            (f"blobs/sha256/{HEX}", DATA),
            ("manifest.json", manifest_for(identity_blob())),
        ],
    )
    with capsa.open(p) as b:
        assert b.open_member("f0").read() == DATA
        assert b.verify().ok


@pytest.mark.parametrize(
    "entries,match",
    [
        (
            [("mimetype", b"application/zip" + b" " * 17), (f"blobs/sha256/{HEX}", DATA)],
            "bad magic",
        ),
        (
            [("mimetype", MIMETYPE), (f"blobs/sha256/{HEX}", DATA), ("extra.txt", b"x")],
            "unknown entry name",
        ),
        ([("mimetype", MIMETYPE), ("blobs/sha256/../../etc/passwd", DATA)], "unknown entry name"),
        (
            [
                ("mimetype", MIMETYPE),
                (f"blobs/sha256/{HEX}", DATA),
                (f"blobs/sha256/{'0' * 64}", b""),
            ],
            "not listed",
        ),
        ([("mimetype", MIMETYPE)], "has no entry"),
        ([("mimetype", MIMETYPE), (f"blobs/sha256/{HEX}.zst", DATA)], "not listed"),
    ],
    ids=[
        "wrong-mimetype",
        "foreign-entry",
        "traversal-name",
        "unlisted-blob",
        "missing-blob",
        "wrong-encoding-suffix",
    ],
)
def test_open_rejects_crafted(tmp_path: Path, entries: list[tuple[str, bytes]], match: str) -> None:
    man = ("manifest.json", manifest_for(identity_blob()))
    extra = [e for e in entries if e[0] == "extra.txt"]
    body = [e for e in entries if e[0] != "extra.txt"]
    p = craft(tmp_path / "bad.capsa", [*body, man, *extra])
    with pytest.raises(FormatError, match=match):
        capsa.open(p)


def test_open_rejects_manifest_before_blob(tmp_path: Path) -> None:
    p = craft(
        tmp_path / "bad.capsa",
        [
            ("mimetype", MIMETYPE),
            ("manifest.json", manifest_for(identity_blob())),
            (f"blobs/sha256/{HEX}", DATA),
        ],
    )
    with pytest.raises(FormatError, match="out of order"):
        capsa.open(p)


def test_open_rejects_missing_manifest(tmp_path: Path) -> None:
    p = craft(tmp_path / "bad.capsa", [("mimetype", MIMETYPE), (f"blobs/sha256/{HEX}", DATA)])
    with pytest.raises(FormatError, match="no manifest"):
        capsa.open(p)


def test_open_rejects_stored_size_lie(tmp_path: Path) -> None:
    p = craft(
        tmp_path / "bad.capsa",
        [
            ("mimetype", MIMETYPE),
            (f"blobs/sha256/{HEX}", DATA),
            ("manifest.json", manifest_for(identity_blob(99, 99))),
        ],
    )
    with pytest.raises(IntegrityError, match="declared size lie") as e:
        capsa.open(p)
    assert e.value.exit_code == 4


def test_open_rejects_identity_size_lie(tmp_path: Path) -> None:
    p = craft(
        tmp_path / "bad.capsa",
        [
            ("mimetype", MIMETYPE),
            (f"blobs/sha256/{HEX}", DATA),
            ("manifest.json", manifest_for(identity_blob(99))),
        ],
    )
    with pytest.raises(IntegrityError, match="declared size lie"):
        capsa.open(p)


def test_open_rejects_manifest_crc_mismatch(
    bundle_copy: Path, flip: Callable[[Path, int], None]
) -> None:
    with capsa.open(bundle_copy) as b:
        man = next(e for e in b.entries if e.name == "manifest.json")
    flip(bundle_copy, man.data_offset + 2)  # the CRC catches it before the JSON is parsed
    with pytest.raises(IntegrityError, match="CRC-32"):
        capsa.open(bundle_copy)


def test_signature_entries_are_accepted_and_listed(tmp_path: Path) -> None:
    p = craft(
        tmp_path / "signed.capsa",
        [
            ("mimetype", MIMETYPE),
            (f"blobs/sha256/{HEX}", DATA),
            ("manifest.json", manifest_for(identity_blob())),
            ("signatures/alice.dsse.json", b"{}"),
        ],
    )
    with capsa.open(p) as b:
        assert b.signature_entries == ["signatures/alice.dsse.json"]
        assert b.open_member("f0").read() == DATA


def test_seek_table_size_lie_detected_on_open_member(tmp_path: Path) -> None:
    """A zstd blob whose seek table adds up to another size than the manifest declares."""
    data = b"abc" * 100_000
    hexd = hashlib.sha256(data).hexdigest()
    frame = zstdseek.new_compressor().compress(data)
    table = zstdseek.encode_seek_table([(len(frame), len(data), zstdseek.frame_checksum(frame))])
    stored = frame + table
    blobs = {
        f"sha256:{hexd}": Blob(
            size=len(data) + 1, stored_size=len(stored), encoding="zstd-seekable", media_type="x/y"
        )
    }
    p = craft(
        tmp_path / "lie.capsa",
        [
            ("mimetype", MIMETYPE),
            (f"blobs/sha256/{hexd}.zst", stored),
            ("manifest.json", manifest_for(blobs)),
        ],
    )
    with capsa.open(p) as b:  # the seek table is read lazily...
        with pytest.raises(IntegrityError, match="declared size lie"):
            b.open_member("f0")  # ...and checked before anything is decompressed
        report = b.verify(level="structure")
        assert not report.ok and "declared size lie" in report.problems[0].what
