"""capsa.pack: content addressing, encoding choice, determinism, metadata, and safe failure."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pytest

import capsa
from capsa.bundle import writer as pack_mod
from capsa.errors import ExistsError, IntegrityError, NotFoundError, UsageError
from capsa.format import zstdseek
from capsa.format.manifest import Author

if TYPE_CHECKING:
    from conftest import CliResult, Corpus

FRAME = zstdseek.FRAME_SIZE


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# -- what gets stored --------------------------------------------------------------------------


def test_every_file_is_listed_with_its_digest(bundle: capsa.Bundle, corpus: Corpus) -> None:
    assert sorted(bundle.manifest.files) == sorted(corpus.files)
    for path, entry in bundle.manifest.files.items():
        assert entry.digest == "sha256:" + hashlib.sha256(corpus.data(path)).hexdigest()
        assert bundle.manifest.blobs[entry.digest].size == len(corpus.data(path))


def test_identical_content_is_stored_once(bundle: capsa.Bundle, corpus: Corpus) -> None:
    files = bundle.manifest.files
    a, b = files["analysis/nested/deeper/notes.txt"], files["analysis/nested/copy-of-notes.txt"]
    assert a.digest == b.digest
    blob_entries = [e for e in bundle.entries if e.name.startswith("blobs/")]
    assert len(blob_entries) == len(bundle.manifest.blobs) == corpus.distinct_contents
    assert len(blob_entries) == len(files) - 1
    assert sum(a.digest[7:] in e.name for e in blob_entries) == 1


def test_entry_order_and_names(bundle: capsa.Bundle) -> None:
    names = [e.name for e in bundle.entries]
    assert names[0] == "mimetype" and names[-1] == "manifest.json"
    assert all(n.startswith("blobs/sha256/") for n in names[1:-1])
    # blobs appear in the order their content was first met: files in byte order of their paths
    first_seen: list[str] = []
    for path in sorted(bundle.manifest.files, key=str.encode):
        d = bundle.manifest.files[path].digest
        if d not in first_seen:
            first_seen.append(d)
    in_file = [n.split("/")[2].removesuffix(".zst") for n in names[1:-1]]
    assert in_file == [d[7:] for d in first_seen]


def test_empty_file(bundle: capsa.Bundle) -> None:
    entry = bundle.manifest.files["analysis/empty.dat"]
    blob = bundle.manifest.blobs[entry.digest]
    assert entry.digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert (blob.size, blob.stored_size, blob.encoding) == (0, 0, "identity")
    with bundle.open_member("analysis/empty.dat") as f:
        assert f.read() == b""


def test_result_describes_the_bundle(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "r.capsa"
    result = capsa.pack(out, [corpus.root], progress=False)
    assert result.path == out
    assert result.size == out.stat().st_size
    with capsa.open(out) as b:
        assert result.bundle_id == b.id == "sha256:" + hashlib.sha256(b.manifest_bytes).hexdigest()
        assert result.manifest == b.manifest


def test_bundle_file_mode_is_0644_less_umask(corpus: Corpus, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        capsa.pack(tmp_path / "u.capsa", [corpus.files["analysis/bin/run.sh"]], progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "u.capsa").stat().st_mode & 0o777 == 0o640


def test_file_modes_recorded(bundle: capsa.Bundle) -> None:
    modes = {p: f.mode for p, f in bundle.manifest.files.items()}
    assert modes.pop("analysis/bin/run.sh") == "0755"
    assert set(modes.values()) == {"0644"}


def test_media_types(bundle: capsa.Bundle) -> None:
    by_path = {m.path: m.media_type for m in bundle.members()}
    assert by_path["analysis/run.h5"] == "application/x-hdf5"  # by signature, not by name
    assert by_path["analysis/nested/deeper/notes.txt"] == "text/plain"
    assert by_path["analysis/noise.bin"] == "application/octet-stream"


def test_hdf5_detected_by_signature_not_name(corpus: Corpus, tmp_path: Path) -> None:
    renamed = tmp_path / "results.dat"
    shutil.copyfile(corpus.files["analysis/run.h5"], renamed)
    r = capsa.pack(tmp_path / "x.capsa", [renamed], progress=False)
    assert next(iter(r.manifest.blobs.values())).media_type == "application/x-hdf5"


def test_explicit_files_mapping_and_roles(corpus: Corpus, tmp_path: Path) -> None:
    r = capsa.pack(
        tmp_path / "m.capsa",
        files={
            "in/raw.h5": corpus.files["analysis/run.h5"],
            "out/signal.bin": corpus.files["analysis/signal.bin"],
            "README": corpus.files["analysis/nested/deeper/notes.txt"],
        },
        roles=[("in/*", "input"), ("out/*", "output"), ("*.h5", "image")],
        default_role="intermediate",
        progress=False,
    )
    roles = {p: f.role for p, f in r.manifest.files.items()}
    assert roles == {"in/raw.h5": "input", "out/signal.bin": "output", "README": "intermediate"}


def test_metadata(corpus: Corpus, tmp_path: Path) -> None:
    r = capsa.pack(
        tmp_path / "m.capsa",
        [corpus.files["analysis/empty.dat"]],
        title="Muon run",
        description="d",
        authors=["A. Physicist", Author(name="B", orcid="0000-0002-1825-0097")],
        license="CC-BY-4.0",
        identifiers=[("doi", "10.5281/zenodo.1")],
        created="2024-05-06T07:08:09Z",
        progress=False,
    )
    meta = r.manifest.bundle
    assert meta.title == "Muon run" and meta.license == "CC-BY-4.0"
    assert [a.name for a in meta.authors] == ["A. Physicist", "B"]
    assert meta.identifiers[0].value == "10.5281/zenodo.1"
    assert meta.created == "2024-05-06T07:08:09Z"


# -- encoding choice (spec §5.3) ---------------------------------------------------------------


def test_random_data_is_identity(bundle: capsa.Bundle) -> None:
    m = next(m for m in bundle.members() if m.path == "analysis/noise.bin")
    assert m.encoding == "identity"
    assert m.stored_size == m.size
    assert bundle.blob_entry(m.digest)[1].name == f"blobs/sha256/{m.digest[7:]}"


def test_compressible_data_is_zstd_seekable(bundle: capsa.Bundle) -> None:
    m = next(m for m in bundle.members() if m.path == "analysis/signal.bin")
    assert m.encoding == "zstd-seekable"
    assert m.stored_size < 0.5 * m.size
    blob, entry = bundle.blob_entry(m.digest)
    assert entry.name.endswith(".zst")
    index = bundle.seek_index(blob, entry, "t")
    assert index.frames == 4  # 3.5 MiB in 1 MiB frames
    assert [index.decomp[i + 1] - index.decomp[i] for i in range(4)] == [FRAME] * 3 + [FRAME // 2]


@pytest.fixture(scope="module")
def gzip_hdf5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 MiB of random doubles, gzip-filtered: the compressed chunks dominate the file."""
    path = tmp_path_factory.mktemp("gz") / "filtered.h5"
    rng = np.random.default_rng(5)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=rng.random(1 << 20), chunks=(1 << 15,), compression="gzip")
    assert path.stat().st_size > 6 * FRAME
    return path


def test_gzip_filtered_hdf5_is_identity(gzip_hdf5: Path, tmp_path: Path) -> None:
    r = capsa.pack(tmp_path / "g.capsa", [gzip_hdf5], progress=False)
    (blob,) = r.manifest.blobs.values()
    assert blob.encoding == "identity"
    assert blob.media_type == "application/x-hdf5"
    with capsa.open(tmp_path / "g.capsa") as b, h5py.File(b.open_member("filtered.h5"), "r") as f:
        expected = np.random.default_rng(5).random(1 << 20)[12345:12350]
        assert np.array_equal(f["x"][12345:12350], expected)


def test_encoding_follows_sampled_frames(tmp_path: Path) -> None:
    """20 frames, compressible only where the 8 evenly spread samples do not look: identity."""
    n = 20
    picks = {(i * (n - 1)) // 7 for i in range(8)}
    assert picks == {0, 2, 5, 8, 10, 13, 16, 19}
    rng = np.random.default_rng(1)
    mostly_text = tmp_path / "mixed.bin"
    with mostly_text.open("wb") as f:
        for i in range(n):
            f.write(rng.bytes(FRAME) if i in picks else b"z" * FRAME)
    r = capsa.pack(tmp_path / "s.capsa", [mostly_text], progress=False)
    assert next(iter(r.manifest.blobs.values())).encoding == "identity"


def test_tiny_file_is_identity(tmp_path: Path) -> None:
    p = tmp_path / "tiny.txt"
    p.write_bytes(b"ab")  # zstd frame overhead exceeds the data
    r = capsa.pack(tmp_path / "t.capsa", [p], progress=False)
    assert next(iter(r.manifest.blobs.values())).encoding == "identity"


def _first_frame(path: Path) -> bytes:
    with capsa.open(path) as b:
        (m,) = b.members()
        blob, entry = b.blob_entry(m.digest)
        index = b.seek_index(blob, entry, "t")
        start = entry.data_offset
    return path.read_bytes()[start + index.comp[0] : start + index.comp[1]]


def _counts() -> bytes:
    """Two frames of increasing int32 counts, as in an HDF5 index column."""
    rng = np.random.default_rng(7)
    return np.cumsum(rng.integers(0, 50, size=FRAME // 2)).astype("<i4").tobytes()


def test_fast_setting_when_it_is_as_small(tmp_path: Path) -> None:
    """The fast setting's probes are within 5 % of level 3's (here: smaller), so it is used."""
    data = _counts()
    fast = zstdseek.new_compressor(zstdseek.FAST)
    level3 = zstdseek.new_compressor(3)
    probe = data[: pack_mod.SAMPLE_BYTES], data[FRAME : FRAME + pack_mod.SAMPLE_BYTES]
    assert sum(len(fast.compress(x)) for x in probe) <= sum(len(level3.compress(x)) for x in probe)
    (tmp_path / "d.txt").write_bytes(data)
    capsa.pack(tmp_path / "d.capsa", [tmp_path / "d.txt"], progress=False)
    frame = _first_frame(tmp_path / "d.capsa")
    assert frame == fast.compress(data[:FRAME])
    assert frame != level3.compress(data[:FRAME])


def test_level_kept_when_fast_setting_costs_more_than_5_percent(tmp_path: Path) -> None:
    data = _counts()
    (tmp_path / "d.txt").write_bytes(data)
    fast = zstdseek.new_compressor(zstdseek.FAST)
    level19 = zstdseek.new_compressor(19)
    probe = data[: pack_mod.SAMPLE_BYTES], data[FRAME : FRAME + pack_mod.SAMPLE_BYTES]
    assert sum(len(fast.compress(x)) for x in probe) > pack_mod.FAST_SLACK * sum(
        len(level19.compress(x)) for x in probe
    )
    capsa.pack(tmp_path / "d.capsa", [tmp_path / "d.txt"], level=19, progress=False)
    assert _first_frame(tmp_path / "d.capsa") == level19.compress(data[:FRAME])


def test_failed_background_sync_is_reported(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of the background fdatasync is raised (a later fsync would not report it)."""
    monkeypatch.setattr(pack_mod, "SYNC_EVERY", 1)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(pack_mod.os, "fdatasync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        capsa.pack(tmp_path / "b.capsa", [corpus.root], progress=False)
    assert listing(tmp_path) == []


# -- determinism -------------------------------------------------------------------------------


def test_same_inputs_same_bytes_despite_mtimes(
    corpus_copy: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a, b = tmp_path / "a.capsa", tmp_path / "b.capsa"
    capsa.pack(a, [corpus_copy.root], progress=False)
    for i, p in enumerate([*corpus_copy.files.values(), corpus_copy.root]):
        os.utime(p, (1_000_000_000 + i, 1_500_000_000 + 7 * i))
    time.sleep(0.01)
    capsa.pack(b, [corpus_copy.root], progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_same_bytes_whatever_the_input_order_and_cwd(
    corpus: Corpus,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    parent = corpus.root.parent
    script = corpus.files["analysis/bin/run.sh"]
    outs = [tmp_path / f"{i}.capsa" for i in range(5)]
    monkeypatch.chdir(parent)
    assert cli("pack", "analysis/bin", "analysis/noise.bin", "-o", outs[0], "-q").rc == 0
    assert cli("pack", "analysis/noise.bin", "analysis/bin", "-o", outs[1], "-q").rc == 0
    monkeypatch.chdir(corpus.root / "bin")
    assert cli("pack", ".", parent / "analysis/noise.bin", "-o", outs[2], "-q").rc == 0
    monkeypatch.chdir(tmp_path)
    assert cli("pack", corpus.root / "noise.bin", f"{script.parent}/", "-o", outs[3], "-q").rc == 0
    monkeypatch.chdir("/")
    assert (
        cli(
            "pack",
            str(corpus.root / "bin" / ".." / "noise.bin"),
            script.parent,
            "-o",
            outs[4],
            "-q",
        ).rc
        == 0
    )
    first = outs[0].read_bytes()
    for o in outs[1:]:
        assert o.read_bytes() == first, o
    with capsa.open(outs[0]) as b:
        assert sorted(b.manifest.files) == ["bin/run.sh", "noise.bin"]


def test_same_bytes_in_another_process_and_cwd(
    corpus: Corpus,
    tmp_path: Path,
    run_capsa: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    here = capsa.pack(tmp_path / "here.capsa", [corpus.root], progress=False)
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    r = run_capsa(
        "pack", "analysis", "-o", tmp_path / "there.capsa", cwd=corpus.root.parent, env=env
    )
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    assert (tmp_path / "there.capsa").read_bytes() == here.path.read_bytes()


def test_no_clock_without_source_date_epoch(bundle: capsa.Bundle) -> None:
    assert bundle.manifest.bundle.created is None
    assert b"created" not in bundle.manifest_bytes
    assert str(time.gmtime().tm_year).encode() not in bundle.manifest_bytes
    with zipfile.ZipFile(bundle.path) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_source_date_epoch_sets_created(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = capsa.pack(tmp_path / "a.capsa", [corpus.root], progress=False)
    assert a.manifest.bundle.created == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    b = capsa.pack(tmp_path / "b.capsa", [corpus.root], progress=False)
    assert b.manifest.bundle.created == "1970-01-01T00:00:00Z"
    # an explicit time wins over the environment
    c = capsa.pack(
        tmp_path / "c.capsa", [corpus.root], created="2020-02-02T02:02:02Z", progress=False
    )
    assert c.manifest.bundle.created == "2020-02-02T02:02:02Z"
    # only the manifest differs: blobs are the same bytes
    assert a.manifest.blobs == b.manifest.blobs and a.bundle_id != b.bundle_id


@pytest.mark.parametrize("value", ["yesterday", "1.5", "9" * 30])
def test_bad_source_date_epoch_is_usage_error(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(UsageError):
        capsa.pack(tmp_path / "a.capsa", [corpus.root], progress=False)
    assert not (tmp_path / "a.capsa").exists()


def test_level_changes_bytes_not_content(corpus: Corpus, tmp_path: Path) -> None:
    a = capsa.pack(
        tmp_path / "a.capsa", [corpus.files["analysis/signal.bin"]], level=1, progress=False
    )
    b = capsa.pack(
        tmp_path / "b.capsa", [corpus.files["analysis/signal.bin"]], level=19, progress=False
    )
    assert a.manifest.files == b.manifest.files
    assert a.path.read_bytes() != b.path.read_bytes()


# -- argument errors ---------------------------------------------------------------------------


def test_nothing_to_pack(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to pack"):
        capsa.pack(tmp_path / "x.capsa", [])


def test_unknown_role(corpus: Corpus, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown role"):
        capsa.pack(tmp_path / "x.capsa", [corpus.root], roles=[("*", "sources")])
    with pytest.raises(UsageError, match="unknown role"):
        capsa.pack(tmp_path / "x.capsa", [corpus.root], default_role="data")


def test_two_inputs_same_bundle_path(corpus: Corpus, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "noise.bin").write_bytes(b"other")
    with pytest.raises(UsageError, match="same bundle path"):
        capsa.pack(tmp_path / "x.capsa", [corpus.files["analysis/noise.bin"], other / "noise.bin"])
    with pytest.raises(UsageError, match="given twice"):
        capsa.pack(
            tmp_path / "x.capsa",
            [corpus.files["analysis/noise.bin"]],
            files={"noise.bin": other / "noise.bin"},
        )


@pytest.mark.parametrize("logical", ["../up", "a/./b", "a\\b", "new\nline", "/abs", "a//b", ""])
def test_invalid_bundle_path_refused_before_writing(
    corpus: Corpus, tmp_path: Path, logical: str
) -> None:
    with pytest.raises(UsageError, match="not a valid bundle path"):
        capsa.pack(tmp_path / "x.capsa", files={logical: corpus.files["analysis/noise.bin"]})
    assert listing(tmp_path) == []


def test_file_name_with_control_character_is_usage_error(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "bad\x01name").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a valid bundle path"):
        capsa.pack(tmp_path / "x.capsa", [d])
    assert listing(tmp_path) == ["in"]


@pytest.mark.parametrize("names", [("a", "a/b"), ("a", "a.txt", "a/b")])
def test_file_and_directory_conflict_refused(
    corpus: Corpus, tmp_path: Path, names: tuple[str, ...]
) -> None:
    with pytest.raises(UsageError, match="both a file and a directory"):
        capsa.pack(
            tmp_path / "x.capsa", files={n: corpus.files["analysis/empty.dat"] for n in names}
        )
    assert listing(tmp_path) == []


def test_symlinked_directory_refused(corpus: Corpus, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "link").symlink_to(corpus.root, target_is_directory=True)
    with pytest.raises(UsageError, match="symbolic link"):
        capsa.pack(tmp_path / "x.capsa", [d])


def test_special_file_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        capsa.pack(tmp_path / "x.capsa", [fifo])


# -- pack safety: destination untouched, nothing left behind ----------------------------------


def test_existing_output_is_not_replaced(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "out.capsa"
    out.write_bytes(b"precious")
    os.utime(out, (1, 1))
    with pytest.raises(ExistsError):
        capsa.pack(out, [corpus.root])
    r = cli("pack", corpus.root, "-o", out)
    assert r.rc == 8
    assert r.err_lines == [f"capsa: error: {out}: destination exists (use --force to replace it)"]
    assert out.read_bytes() == b"precious"
    assert out.stat().st_mtime == 1
    assert listing(tmp_path) == ["out.capsa"]


def test_existing_symlink_output_is_not_followed(corpus: Corpus, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    (tmp_path / "out.capsa").symlink_to(target)
    with pytest.raises(ExistsError):
        capsa.pack(tmp_path / "out.capsa", [corpus.root])
    capsa.pack(tmp_path / "out.capsa", [corpus.root], force=True, progress=False)
    assert target.read_bytes() == b"precious"  # the link was replaced, not written through
    assert not (tmp_path / "out.capsa").is_symlink()


def test_force_replaces(corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    out = tmp_path / "out.capsa"
    out.write_bytes(b"old")
    r = cli("pack", corpus.root, "-o", out, "--force", "-q")
    assert r.rc == 0, r.err
    with capsa.open(out) as b:
        assert b.verify().ok
    assert listing(tmp_path) == ["out.capsa"]


def test_missing_input_after_valid_ones(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    missing = tmp_path / "no-such-file.h5"
    r = cli(
        "pack", corpus.root, corpus.files["analysis/noise.bin"], missing, "-o", out_dir / "b.capsa"
    )
    assert r.rc == 9
    assert r.err_lines == [f"capsa: error: {missing}: no such file or directory"]
    assert r.out == b""
    assert listing(out_dir) == []


class _FailOn:
    """Wrap _Packer.add_file: run it normally, but call ``action`` before the named file."""

    def __init__(self, logical: str, action: Callable[[Path], None], out_dir: Path) -> None:
        self.logical, self.action, self.out_dir = logical, action, out_dir
        self.partial_seen = 0
        self.real = pack_mod._Packer.add_file

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def add_file(packer: object, path: Path, logical: str) -> tuple[str, str]:
            if logical == self.logical:
                # Prove the failure really happens midway: a partial temporary bundle exists now.
                temps = [p for p in self.out_dir.iterdir() if p.name.endswith(".tmp")]
                assert len(temps) == 1 and temps[0].stat().st_size > FRAME
                self.partial_seen += 1
                self.action(path)
            return self.real(packer, path, logical)

        monkeypatch.setattr(pack_mod._Packer, "add_file", add_file)


def test_file_vanishing_midway_leaves_nothing(
    corpus_copy: Corpus,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    hook = _FailOn("analysis/signal.bin", lambda p: p.unlink(), out_dir)
    hook.install(monkeypatch)
    r = cli("pack", corpus_copy.root, "-o", out_dir / "b.capsa")
    assert hook.partial_seen == 1
    assert r.rc == 9
    assert len(r.err_lines) == 1 and "signal.bin" in r.err and "Traceback" not in r.err
    assert listing(out_dir) == []


def test_unreadable_file_midway_leaves_nothing(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied while packing (simulated: root reads anything) is an I/O error."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def deny(path: Path) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    hook = _FailOn("analysis/signal.bin", deny, out_dir)
    hook.install(monkeypatch)
    r = cli("pack", corpus.root, "-o", out_dir / "b.capsa")
    assert hook.partial_seen == 1
    assert r.rc == 10
    victim = corpus.files["analysis/signal.bin"]
    assert r.err_lines == [f"capsa: error: {victim}: Permission denied"]
    assert listing(out_dir) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_real(
    corpus_copy: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    victim = corpus_copy.files["analysis/signal.bin"]
    victim.chmod(0)
    try:
        r = cli("pack", corpus_copy.root, "-o", out_dir / "b.capsa")
    finally:
        victim.chmod(0o644)
    assert r.rc == 10
    assert len(r.err_lines) == 1 and "Permission denied" in r.err
    assert listing(out_dir) == []


def test_disk_full_is_not_blamed_on_an_input(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = 0
    real = pack_mod._Packer._stream_identity

    def full(self: pack_mod._Packer, f: object, sha: object) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, f, sha)  # type: ignore[arg-type]

    monkeypatch.setattr(pack_mod._Packer, "_stream_identity", full)
    r = cli("pack", corpus.root, "-o", out_dir / "b.capsa")
    assert r.rc == 10
    (line,) = r.err_lines  # names the bundle and its file system, not an input
    assert line.startswith(f"capsa: error: {out_dir / 'b.capsa'}: No space left on device (")
    assert line.endswith(" is full)")
    assert listing(out_dir) == []


def test_keyboard_interrupt_midway_leaves_nothing(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = 0
    real = zstdseek.frame_checksum

    def interrupt(frame: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:  # inside signal.bin, after two frames were written
            assert any(p.name.endswith(".tmp") for p in out_dir.iterdir())
            raise KeyboardInterrupt
        return real(frame)

    monkeypatch.setattr(zstdseek, "frame_checksum", interrupt)
    with pytest.raises(KeyboardInterrupt):
        capsa.pack(out_dir / "b.capsa", [corpus.root], progress=False)
    assert calls == 3
    assert listing(out_dir) == []


def test_keyboard_interrupt_cli_exit_130(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(frame: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(zstdseek, "frame_checksum", interrupt)
    r = cli("pack", corpus.root, "-o", tmp_path / "b.capsa")
    assert r.rc == 130
    assert r.err_lines == ["capsa: interrupted"]
    assert listing(tmp_path) == []


def test_file_growing_while_packed(
    corpus_copy: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = corpus_copy.files["analysis/noise.bin"]
    real = pack_mod._Packer._sample

    def grow(self: pack_mod._Packer, f: object, size: int) -> object:
        with victim.open("ab") as g:
            g.write(b"more")
        return real(self, f, size)  # type: ignore[arg-type]

    monkeypatch.setattr(pack_mod._Packer, "_sample", grow)
    with pytest.raises(IntegrityError, match="changed size"):
        capsa.pack(tmp_path / "b.capsa", [victim], progress=False)
    assert listing(tmp_path) == ["copy"]


def test_missing_output_directory(corpus: Corpus, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="directory does not exist"):
        capsa.pack(tmp_path / "nowhere" / "b.capsa", [corpus.root])
