"""capsa.extract: files land in DIR and only there (spec §10.3), checked, never overwritten."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import capsa
from capsa._internal.fs import segments as _segments
from capsa.errors import ExistsError, FormatError, IntegrityError, NotFoundError, UsageError
from capsa.format.manifest import FORMAT_VERSION, Blob, FileEntry, Manifest
from capsa.format.zip64 import ZipWriter

if TYPE_CHECKING:
    from conftest import CliResult, Corpus


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (not following symlinks) → its bytes; symlinks → b'->target'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            out[rel] = b"->" + str(p.readlink()).encode() if p.is_symlink() else p.read_bytes()
    return out


def no_temp_files(root: Path) -> bool:
    return not any(".capsa-tmp" in name for _, _, files in os.walk(root) for name in files)


def test_extract_all(bundle: capsa.Bundle, corpus: Corpus, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    written = bundle.extract(dest)
    assert sorted(written) == sorted(dest / p for p in corpus.files)
    assert tree(dest) == {p: corpus.data(p) for p in corpus.files}
    assert no_temp_files(dest)


def test_file_modes_restored(bundle: capsa.Bundle, tmp_path: Path) -> None:
    old = os.umask(0o077)  # extraction sets the modes explicitly, whatever the umask
    try:
        bundle.extract(tmp_path)
    finally:
        os.umask(old)
    script = tmp_path / "analysis/bin/run.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert os.access(script, os.X_OK)
    for p in ("analysis/noise.bin", "analysis/empty.dat", "analysis/run.h5"):
        assert stat.S_IMODE((tmp_path / p).stat().st_mode) == 0o644, p


def test_extract_subset(
    bundle: capsa.Bundle, corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    r = cli("extract", bundle.path, "analysis/nested", "analysis/noise.bin", "-C", tmp_path, "-q")
    assert r.rc == 0, r.err
    wanted = [
        "analysis/nested/copy-of-notes.txt",
        "analysis/nested/deeper/notes.txt",
        "analysis/noise.bin",
    ]
    assert tree(tmp_path) == {p: corpus.data(p) for p in wanted}


def test_extract_subset_trailing_slash_and_single_file(
    bundle: capsa.Bundle, corpus: Corpus, tmp_path: Path
) -> None:
    bundle.extract(tmp_path / "a", ["analysis/nested/"])
    assert sorted(tree(tmp_path / "a")) == [
        "analysis/nested/copy-of-notes.txt",
        "analysis/nested/deeper/notes.txt",
    ]
    bundle.extract(tmp_path / "b", ["analysis/run.h5"])
    assert tree(tmp_path / "b") == {"analysis/run.h5": corpus.data("analysis/run.h5")}


def test_extract_unknown_path(
    bundle: capsa.Bundle, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    with pytest.raises(NotFoundError):
        bundle.extract(tmp_path / "x", ["analysis/nest"])  # a prefix, but not a path segment
    r = cli("extract", bundle.path, "analysis/run.h5", "missing/file", "-C", tmp_path / "y")
    assert r.rc == 9
    assert len(r.err_lines) == 1 and "missing/file" in r.err
    assert tree(tmp_path) == {}


def test_refuses_to_overwrite_without_force(
    bundle: capsa.Bundle, corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    bundle.extract(tmp_path)
    changed = tmp_path / "analysis/signal.bin"
    changed.write_bytes(b"edited by hand")
    removed = tmp_path / "analysis/noise.bin"
    removed.unlink()
    before = tree(tmp_path)
    r = cli("extract", bundle.path, "-C", tmp_path)
    assert r.rc == 8
    assert r.err_lines == [
        f"capsa: error: {tmp_path}/analysis/bin/run.sh: file exists (use --force to replace it)"
    ]
    assert tree(tmp_path) == before  # nothing written: not even the missing file came back
    with pytest.raises(ExistsError):
        bundle.extract(tmp_path, ["analysis/signal.bin"])
    assert changed.read_bytes() == b"edited by hand"

    r = cli("extract", bundle.path, "-C", tmp_path, "--force", "-q")
    assert r.rc == 0, r.err
    assert tree(tmp_path) == {p: corpus.data(p) for p in corpus.files}
    assert no_temp_files(tmp_path)


def test_force_does_not_replace_a_directory(bundle: capsa.Bundle, tmp_path: Path) -> None:
    (tmp_path / "analysis/noise.bin").mkdir(parents=True)
    with pytest.raises(UsageError, match="non-file"):
        bundle.extract(tmp_path, force=True)
    assert (tmp_path / "analysis/noise.bin").is_dir()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "victim.txt").write_bytes(b"do not touch")
    return d


@pytest.mark.parametrize("link_at", ["analysis", "analysis/nested", "analysis/nested/deeper"])
@pytest.mark.parametrize("force", [False, True])
def test_planted_directory_symlink_is_never_followed(
    bundle: capsa.Bundle,
    tmp_path: Path,
    elsewhere: Path,
    link_at: str,
    force: bool,
    cli: Callable[..., CliResult],
) -> None:
    target = tmp_path / "target"
    (target / link_at).parent.mkdir(parents=True, exist_ok=True)
    (target / link_at).symlink_to(elsewhere, target_is_directory=True)
    before = tree(elsewhere)
    args = ["extract", bundle.path, "-C", target] + (["--force"] if force else [])
    r = cli(*args)
    assert r.rc == 2, r.err
    assert len(r.err_lines) == 1 and "symbolic link" in r.err
    assert tree(elsewhere) == before
    assert (target / link_at).is_symlink()
    # and the API refuses the same way, also for a subset below the link
    with pytest.raises(UsageError):
        bundle.extract(target, ["analysis/nested/deeper/notes.txt"], force=force)
    assert tree(elsewhere) == before


def test_planted_file_symlink_is_replaced_not_followed(
    bundle: capsa.Bundle, tmp_path: Path, elsewhere: Path
) -> None:
    target = tmp_path / "target"
    (target / "analysis").mkdir(parents=True)
    link = target / "analysis/noise.bin"
    link.symlink_to(elsewhere / "victim.txt")
    with pytest.raises(ExistsError):
        bundle.extract(target)
    assert (elsewhere / "victim.txt").read_bytes() == b"do not touch"
    bundle.extract(target, force=True)
    assert (elsewhere / "victim.txt").read_bytes() == b"do not touch"
    assert not link.is_symlink()
    assert (
        hashlib.sha256(link.read_bytes()).hexdigest()
        == bundle.manifest.files["analysis/noise.bin"].digest[7:]
    )


def test_dangling_symlink_at_file_name(bundle: capsa.Bundle, tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "analysis").mkdir(parents=True)
    (target / "analysis/empty.dat").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(ExistsError):
        bundle.extract(target)
    bundle.extract(target, force=True)
    assert not (tmp_path / "would-be-created").exists()


def test_file_in_the_way_of_a_directory(bundle: capsa.Bundle, tmp_path: Path) -> None:
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis/nested").write_bytes(b"a file, not a directory")
    with pytest.raises(UsageError):
        bundle.extract(tmp_path, force=True)
    assert (tmp_path / "analysis/nested").read_bytes() == b"a file, not a directory"


def test_corrupt_blob_is_not_extracted(
    bundle_copy: Path, tmp_path: Path, flip: Callable[[Path, int], None]
) -> None:
    with capsa.open(bundle_copy) as b:
        for member in ("analysis/noise.bin", "analysis/signal.bin"):
            _, entry = b.blob_entry(b.manifest.files[member].digest)
            flip(bundle_copy, entry.data_offset + 200)
    with capsa.open(bundle_copy) as b:
        with pytest.raises(IntegrityError):
            b.extract(tmp_path / "a", ["analysis/noise.bin"])  # identity: digest mismatch
        with pytest.raises(IntegrityError):
            b.extract(tmp_path / "b", ["analysis/signal.bin"])  # zstd: frame checksum
    for d in ("a", "b"):
        assert not any(p.is_file() for p in (tmp_path / d).rglob("*"))
        assert no_temp_files(tmp_path / d)


def test_unsafe_path_is_rechecked_at_extraction(tmp_path: Path) -> None:
    """The last line of defence: even a manifest that slipped through is not obeyed."""
    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\\b", ""):
        with pytest.raises(FormatError):
            _segments(bad)
    assert _segments("a/b.c/..d") == ["a", "b.c", "..d"]


def test_unicode_paths_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "Ünïcode dir").mkdir(parents=True)
    (src / "Ünïcode dir" / "résumé ✓.txt").write_text("naïve\n")
    capsa.pack(tmp_path / "u.capsa", [src], progress=False)
    with capsa.open(tmp_path / "u.capsa") as b:
        b.extract(tmp_path / "out")
    assert (tmp_path / "out/src/Ünïcode dir/résumé ✓.txt").read_text() == "naïve\n"


def test_extract_into_new_nested_directory(bundle: capsa.Bundle, tmp_path: Path) -> None:
    dest = tmp_path / "does" / "not" / "exist"
    bundle.extract(dest, ["analysis/empty.dat"])
    assert (dest / "analysis/empty.dat").read_bytes() == b""


def test_crafted_dotdot_manifest_never_escapes(tmp_path: Path) -> None:
    """A bundle whose manifest names '../escape' is refused on open; nothing is written."""
    data = b"payload"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    man = Manifest(
        capsa=FORMAT_VERSION,
        blobs={
            digest: Blob(
                size=len(data), stored_size=len(data), encoding="identity", media_type="x/y"
            )
        },
        files={"ok": FileEntry(digest=digest, role="other")},
    )
    doc = man.model_dump(mode="json", exclude_none=True)
    doc["files"] = {"../escape": doc["files"]["ok"]}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    p = tmp_path / "evil.capsa"
    with p.open("w+b") as f:
        w = ZipWriter(f)
        w.add_bytes("mimetype", b"application/vnd.capsa.bundle+zip")
        w.add_bytes(f"blobs/sha256/{digest[7:]}", data)
        w.add_bytes("manifest.json", raw)
        w.close()
    (tmp_path / "dest").mkdir()
    with pytest.raises(FormatError):
        capsa.open(p).extract(tmp_path / "dest")
    assert not (tmp_path / "escape").exists()
    assert list((tmp_path / "dest").iterdir()) == []


def test_extracted_tree_repacks_to_same_bundle(bundle: capsa.Bundle, tmp_path: Path) -> None:
    bundle.extract(tmp_path / "x")
    r = capsa.pack(
        tmp_path / "again.capsa",
        [tmp_path / "x" / "analysis"],
        title="test corpus",
        authors=["A. Tester"],
        progress=False,
    )
    assert r.path.read_bytes() == bundle.path.read_bytes()
    shutil.rmtree(tmp_path / "x")
