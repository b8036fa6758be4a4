"""The size limits of spec/format.md §3.5, at the limits (issue 10 item 5): a writer refuses
what a reader would refuse, and everything within them — the largest manifest, signed — is
accepted by `capsa verify --key`. Real `capsa` processes; the manifest is made large by its
description, which costs one file instead of 500 000."""

from __future__ import annotations

from pathlib import Path

import pytest

import capsa
from capsa.format.layout import MAX_ENVELOPE
from capsa.format.manifest import MAX_MANIFEST
from capsa.signing.keys import keygen
from conftest import capsa_text
from hostile import write_bundle

pytestmark = pytest.mark.slow  # a 64 MiB manifest, read by several processes


def _manifest_size(bundle: Path) -> int:
    with capsa.open(bundle) as b:
        return len(b.manifest_bytes)


@pytest.fixture(scope="module")
def largest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle whose manifest is exactly MAX_MANIFEST bytes, and a key pair."""
    d = tmp_path_factory.mktemp("limits")
    (d / "data.txt").write_bytes(b"one small file\n")
    probe = capsa.pack(d / "probe.capsa", [d / "data.txt"], progress=False)
    room = MAX_MANIFEST - _manifest_size(probe.path)
    out = capsa.pack(d / "largest.capsa", [d / "data.txt"], description="x" * room)
    assert _manifest_size(out.path) == MAX_MANIFEST
    priv, pub, _ = keygen(d / "k")
    return out.path, priv, pub


def test_the_largest_manifest_signed_is_accepted(largest: tuple[Path, Path, Path]) -> None:
    """Was: `capsa sign` exited 0 and `verify` called the signature malformed (its envelope
    exceeded the reader's 64 MiB entry limit)."""
    bundle, priv, pub = largest
    r = capsa_text("sign", bundle, "--key", priv)
    assert r.returncode == 0, r.stderr
    with capsa.open(bundle) as b:
        (name,) = b.signature_entries
        envelope = b.entries[-1]
        assert envelope.name == name and MAX_MANIFEST < envelope.size <= MAX_ENVELOPE
    r = capsa_text("verify", bundle, "--key", pub)
    assert r.returncode == 0, r.stderr
    assert ": valid, trusted" in r.stdout


def test_one_byte_more_is_refused_by_pack_before_the_bundle_exists(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_bytes(b"one small file\n")
    probe = capsa.pack(tmp_path / "probe.capsa", [tmp_path / "data.txt"])
    room = MAX_MANIFEST - _manifest_size(probe.path) + 1
    # (In-process: a 64 MiB --description is longer than a command line may be.)
    with pytest.raises(capsa.UsageError) as e:
        capsa.pack(tmp_path / "b.capsa", [tmp_path / "data.txt"], description="x" * room)
    assert e.value.exit_code == 2
    assert "a manifest of 64.0 MiB, more than the 64.0 MiB a reader accepts" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "probe.capsa"]


def test_too_many_files_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    one = tmp_path / "data.txt"
    one.write_bytes(b"x")
    long = "d" * 200 + "/" + "f" * 3800  # 4 KiB per path: 17 000 of them pass 64 MiB
    files = {f"{long}{i:05d}": one for i in range(17_000)}
    with pytest.raises(capsa.UsageError, match="the file list alone makes a manifest of"):
        capsa.pack(tmp_path / "b.capsa", files=files)
    assert not (tmp_path / "b.capsa").exists()


def test_a_reader_refuses_a_manifest_one_byte_over(tmp_path: Path) -> None:
    files = {"data.txt": b"x"}
    size = _manifest_size(write_bundle(tmp_path / "probe.capsa", files))
    over = write_bundle(tmp_path / "over.capsa", files, description="x" * (MAX_MANIFEST - size + 1))
    r = capsa_text("verify", over)
    assert r.returncode == 3, r.stderr
    assert f"entry larger than {MAX_MANIFEST} bytes (spec §3.5)" in r.stderr
    assert r.stderr.count("\n") == 1
