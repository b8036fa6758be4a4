"""The ZIP CRC-32 of a blob entry is checked wherever its bytes are read anyway (spec §3.1,
§10.2; issue 10 item 10): verify at fixity (and --deep), and cat/extract of a whole member. A
blob whose CRC is changed in both headers — bytes and digests intact, what `unzip -t` calls a bad
CRC — passes none of them. Test vector: fixtures/bundles/invalid_blob_crc_mismatch.capsa."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import capsa
from capsa.format.zip64 import CENTRAL
from conftest import capsa_subprocess

VECTOR = Path(__file__).resolve().parents[2] / "fixtures/bundles/invalid_blob_crc_mismatch.capsa"
MESSAGE = "CRC-32 mismatch"


def _change_crc(bundle: Path, member: str) -> str:
    """Flip one bit of the CRC-32 of ``member``'s blob entry in both ZIP headers; return the
    entry name."""
    with capsa.open(bundle) as b:
        entry = b.blob_entry(b.manifest.files[member].digest)[1]
        cd = b.entries[-1].data_offset + b.entries[-1].size
        raw = b.read_at(cd, bundle.stat().st_size - cd)
    central = cd + raw.index(entry.name.encode()) - CENTRAL.size
    with bundle.open("r+b") as f:
        for at in (entry.header_offset + 14, central + 16):
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ 1]))
    return entry.name


@pytest.mark.parametrize(
    ("member", "encoding"),
    [("analysis/noise.bin", "identity"), ("analysis/signal.bin", "zstd-seekable")],
)
def test_a_blob_whose_crc_changed_in_both_headers_passes_nothing(
    bundle_copy: Path, tmp_path: Path, member: str, encoding: str, tool
) -> None:  # type: ignore[no-untyped-def]
    name = _change_crc(bundle_copy, member)
    assert name.endswith(".zst") == (encoding == "zstd-seekable")
    unzip = subprocess.run([tool("unzip"), "-t", bundle_copy], capture_output=True, text=True)
    assert "bad CRC" in unzip.stdout  # what ZIP tools say about the same file
    for args in (
        ["verify", bundle_copy],
        ["verify", "--level", "fixity", bundle_copy],
        ["verify", "--deep", bundle_copy],
        ["cat", bundle_copy, member],
        ["extract", bundle_copy, member, "-C", tmp_path / "out"],
    ):
        r = capsa_subprocess(*args)
        err = r.stderr.decode()
        assert r.returncode == 4, (args, err)
        assert err.count("\n") == 1 and MESSAGE in err, (args, err)
    assert not (tmp_path / "out" / member).exists()
    # Opening, listing and the structure level read no blob bytes: they cannot see it.
    assert capsa_subprocess("verify", "--level", "structure", bundle_copy).returncode == 0
    # A range read reads part of the bytes only, and is not checked against the whole CRC.
    assert capsa_subprocess("cat", bundle_copy, member, "--length", "10").returncode == 0


def test_the_vector_fails_cat_and_extract_too(tmp_path: Path) -> None:
    r = capsa_subprocess("cat", VECTOR, "data/measurements.bin")
    assert r.returncode == 4 and MESSAGE in r.stderr.decode()
    r = capsa_subprocess("extract", VECTOR, "-C", tmp_path / "out")
    assert r.returncode == 4 and MESSAGE in r.stderr.decode()


def test_an_intact_bundle_passes_every_crc_check(bundle_copy: Path, tmp_path: Path) -> None:
    for args in (
        ["verify", "--deep", bundle_copy],
        ["extract", "-q", bundle_copy, "-C", tmp_path / "out"],
    ):
        assert capsa_subprocess(*args).returncode == 0
    with capsa.open(bundle_copy) as b:
        for m in b.members():
            with b.open_member(m.path) as f:
                f.read()
                assert f.crc_matches() is True, m.path
            if m.encoding == "identity" and m.size > 1:
                with b.open_member(m.path) as f:
                    f.seek(1)
                    f.read()
                    assert f.crc_matches() is None, "a partial read cannot be checked"
