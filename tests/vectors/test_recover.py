"""spec/recover.sh recovers every file of a bundle without capsa (spec/format.md §11).

Needs `sh`, `unzip`, `zstd`, `jq` and `sha256sum` (Debian: apt-get install unzip zstd jq).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import capsa

if TYPE_CHECKING:
    from conftest import Corpus

ROOT = Path(__file__).resolve().parents[2]
RECOVER = ROOT / "spec" / "recover.sh"
BUNDLES = ROOT / "fixtures" / "bundles"
TOOLS = ("sh", "unzip", "zstd", "jq", "sha256sum")
MISSING = [t for t in TOOLS if shutil.which(t) is None]

pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"spec/recover.sh needs {', '.join(MISSING)} (Debian: apt-get install unzip zstd jq)",
)

MiB = 1 << 20


def _det(label: str, n: int) -> bytes:
    """n incompressible but reproducible bytes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def _recover(bundle: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(RECOVER), str(bundle), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _make_tree(src: Path) -> dict[str, bytes]:
    """A realistic analysis directory; returns {path relative to src: content}."""
    lines = b"".join(
        b"event %08d energy %6d GeV hits %4d\n" % (i, (i * 7919) % 100000, i % 977)
        for i in range(90_000)
    )  # ~3.8 MiB of compressible text: 4 frames
    files = {
        "raw/run0001.txt": lines,
        "raw/noise.bin": _det("noise", 3 * MiB // 2),  # incompressible: stored as identity
        "analysis/deep/nested/dir/params.json": b'{"cut": 42, "bins": 100}\n',
        "analysis/select.py": b"#!/usr/bin/env python3\nprint('select')\n",
        "results/copy-of-params.json": b'{"cut": 42, "bins": 100}\n',  # same content, one blob
        "results/empty.dat": b"",
        "results/with space & ünïcode.txt": "naïve café\n".encode(),
        "results/small.txt": b"x" * 10,
    }
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o755 if rel.endswith(".py") else 0o644)
    return files


def test_recover_reproduces_every_file(tmp_path: Path) -> None:
    src = tmp_path / "analysis-2024"
    originals = _make_tree(src)
    bundle = tmp_path / "a.capsa"
    capsa.pack(bundle, [src], title="recover test", authors=["A. Tester"])
    with capsa.open(bundle) as b:
        m = b.manifest
        encodings = {b2.encoding for b2 in m.blobs.values()}
        frames = max(
            b.seek_index(bl, b.blob_entry(d)[1], d).frames
            for d, bl in m.blobs.items()
            if bl.encoding == "zstd-seekable"
        )
    # The test is only as good as its inputs: both encodings, a multi-frame blob, a shared blob.
    assert encodings == {"identity", "zstd-seekable"}
    assert frames >= 3
    assert len(m.blobs) == len(m.files) - 1

    out = tmp_path / "recovered"
    r = _recover(bundle, out)
    assert r.returncode == 0, r.stderr
    assert f"recovered {len(originals)} files" in r.stdout
    recovered = {
        p.relative_to(out / src.name).as_posix(): p.read_bytes()
        for p in (out / src.name).rglob("*")
        if p.is_file()
    }
    assert sorted(recovered) == sorted(originals)
    for rel, data in originals.items():
        assert recovered[rel] == data, rel
    script = out / src.name / "analysis/select.py"
    assert os.access(script, os.X_OK)
    assert not os.access(out / src.name / "raw/noise.bin", os.X_OK)


def test_recover_fails_on_digest_mismatch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _recover(BUNDLES / "invalid_digest_mismatch.capsa", out)
    assert r.returncode != 0
    assert "FAILED data/measurements.bin" in r.stderr
    # The damaged bytes are kept aside, never under the real name; the intact files are there.
    assert not (out / "data/measurements.bin").exists()
    assert (out / "data/measurements.bin.corrupt").is_file()
    assert (out / "README.txt").is_file()


@pytest.mark.parametrize(
    "name",
    [
        "invalid_manifest_path_traversal.capsa",
        "invalid_absolute_path.capsa",
        "invalid_missing_blob.capsa",
        "invalid_declared_size_lie.capsa",
        "invalid_duplicate_entry.capsa",
        "invalid_crc_mismatch_manifest.capsa",
        "invalid_bad_magic.capsa",
        "invalid_truncated_file.capsa",
        "invalid_not_zip.capsa",
        "invalid_empty_file.capsa",
    ],
)
def test_recover_fails_and_stays_inside(name: str, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    evil = Path("/tmp/capsa-evil")
    evil_existed = evil.exists()
    r = _recover(BUNDLES / name, parent / "out")
    assert r.returncode != 0, r.stdout
    assert "recover.sh: " in r.stderr
    outside = sorted(
        p.relative_to(parent).as_posix()
        for p in parent.rglob("*")
        if not p.is_relative_to(parent / "out")
    )
    assert outside == ["out"] or outside == []
    assert evil.exists() == evil_existed


def test_recover_refuses_a_non_empty_outdir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    r = _recover(BUNDLES / "valid_small.capsa", tmp_path / "out")
    assert r.returncode == 2
    assert "must be empty" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep"]


def test_recover_valid_vectors(tmp_path: Path) -> None:
    for name in ("valid_small", "valid_multiframe", "valid_empty_file", "valid_duplicate_blob"):
        r = _recover(BUNDLES / f"{name}.capsa", tmp_path / name)
        assert r.returncode == 0, r.stderr


def test_recover_shared_corpus(corpus: Corpus, bundle_path: Path, tmp_path: Path) -> None:
    """The suite's shared corpus (HDF5 made by h5py, 4-frame blob, random bytes, ...) too."""
    out = tmp_path / "out"
    r = _recover(bundle_path, out)
    assert r.returncode == 0, r.stderr
    recovered = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert recovered == sorted(corpus.files)
    for logical, original in corpus.files.items():
        assert (out / logical).read_bytes() == original.read_bytes(), logical


def test_recover_lists_external_files_with_urls_and_digests(tmp_path: Path) -> None:
    """Format 1.3: a file sealed by reference is not in the bundle; recover.sh names where it
    lives and what it must hash to, recovers everything else, and still exits 0."""
    bundle = BUNDLES / "valid_external_blob.capsa"
    with capsa.open(bundle) as b:
        m = b.manifest
    digest = m.files["data/raw.bin"].digest
    blob = m.blobs[digest]
    assert blob.encoding == "external" and blob.urls
    r = _recover(bundle, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert f"external data/raw.bin {blob.size} {digest} {' '.join(blob.urls)}\n" in r.stdout
    assert f"recovered {len(m.files) - 1} files" in r.stdout
    assert not (tmp_path / "out" / "data" / "raw.bin").exists()
    assert (tmp_path / "out" / "data" / "measurements.bin").is_file()
