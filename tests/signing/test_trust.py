"""Trust defaults (spec/signing.md §5; issue 10 item 12), decided and tested with real `capsa`
processes on bundles written and signed by tests/hostile.py:

* a signature whose bytes cannot be a signature of any accepted algorithm is `malformed` and
  fails, even when its key is not trusted; one of the right shape by an unknown key cannot be
  checked and is `unknown-key` (it does not fail: countersignatures by others are normal);
* `--threshold N` / `--require-all` demand valid signatures by N / all distinct trusted keys;
* default verification does not decompress: it passes a signer's lying zstd frames (the signed
  stored digest holds), says so, and `--deep`, `cat` and `extract` refuse them.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest

import capsa
from capsa.format.zip64 import ZipWriter
from capsa.signing.keys import PrivateKey, keygen, load_private_key
from conftest import capsa_text
from hostile import write_bundle

FILES = {"data/a.txt": b"alpha\n", "data/b.txt": b"beta\n"}


@pytest.fixture
def people(tmp_path: Path) -> dict[str, tuple[PrivateKey, Path]]:
    (tmp_path / "keys").mkdir()
    out = {}
    for name in ("alice", "bob", "carol"):
        priv, pub, _ = keygen(tmp_path / "keys" / name)
        out[name] = (load_private_key(priv), pub)
    return out


def _rewrite_signature(bundle: Path, out: Path, keyid: str, sig: bytes) -> Path:
    """``bundle`` with ``keyid``'s signature bytes replaced (valid JSON and base64 still)."""
    with capsa.open(bundle) as b:
        entries = [(e.name, b.read_at(e.data_offset, e.size)) for e in b.entries]
    buf = out.open("wb")
    z = ZipWriter(buf)
    for name, data in entries:
        if name.startswith("blobs/"):
            z.begin_streamed(len(name))
            buf.write(data)
            z.end_streamed(name, len(data), zlib.crc32(data))
            continue
        if name.startswith("signatures/"):
            env = json.loads(data)
            if env["signatures"][0]["keyid"] == keyid:
                env["signatures"][0]["sig"] = base64.b64encode(sig).decode()
                data = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
        z.add_bytes(name, data)
    z.close()
    buf.close()
    return out


@pytest.mark.parametrize("length", [0, 1, 63, 65, 100, 255])
def test_a_misshapen_signature_by_an_untrusted_key_fails(
    tmp_path: Path, people, length: int
) -> None:  # type: ignore[no-untyped-def]
    (alice, alice_pub), (bob, _) = people["alice"], people["bob"]
    good = write_bundle(tmp_path / "b.capsa", FILES, keys=[alice, bob])
    bad = _rewrite_signature(good, tmp_path / "bad.capsa", bob.keyid, b"\x5a" * length)
    r = capsa_text("verify", bad, "--key", alice_pub)
    assert r.returncode == 5, r.stderr
    assert f"malformed signature ({bob.keyid})" in r.stderr
    assert "is not Ed25519, ECDSA P-256 (DER) or RSA" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_well_shaped_signature_by_an_unknown_key_is_not_checked_and_does_not_fail(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    """Decided: without the key, a flipped bit in a 64-byte signature is indistinguishable from
    a countersignature by someone the verifier does not know. It is listed as not checked; the
    bundle's content is still proven by the trusted signature."""
    (alice, alice_pub), (bob, _) = people["alice"], people["bob"]
    good = write_bundle(tmp_path / "b.capsa", FILES, keys=[alice, bob])
    forged = _rewrite_signature(good, tmp_path / "f.capsa", bob.keyid, b"\x01" * 64)
    r = capsa_text("verify", forged, "--key", alice_pub, "--json")
    assert r.returncode == 0, r.stderr
    statuses = {s["keyid"]: s for s in json.loads(r.stdout)["signatures"]}
    assert statuses[bob.keyid]["status"] == "unknown-key"
    assert statuses[bob.keyid]["reason"].startswith("not checked")
    # With bob's key too, the same signature is invalid.
    r = capsa_text("verify", forged, "--key", alice_pub, "--key", people["bob"][1])
    assert r.returncode == 5 and f"invalid signature ({bob.keyid})" in r.stderr


def test_threshold_and_require_all(tmp_path: Path, people) -> None:  # type: ignore[no-untyped-def]
    (alice, a_pub), (bob, b_pub), (_, c_pub) = people["alice"], people["bob"], people["carol"]
    only_alice = write_bundle(tmp_path / "a.capsa", FILES, keys=[alice])
    both = write_bundle(tmp_path / "ab.capsa", FILES, keys=[alice, bob])
    two = ["--key", a_pub, "--key", b_pub]
    # The default: one trusted valid signature is enough.
    assert capsa_text("verify", only_alice, *two).returncode == 0
    for policy in (["--require-all"], ["--threshold", "2"]):
        r = capsa_text("verify", only_alice, *two, *policy)
        assert r.returncode == 5, r.stderr
        assert "valid signatures by 1 of the trusted keys, 2 required" in r.stderr
        assert f"not signed by {bob.keyid}" in r.stderr
        assert r.stderr.count("\n") == 1
        r = capsa_text("verify", both, *two, *policy, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["threshold"] == 2
    # Two of three trusted keys.
    r = capsa_text("verify", both, *two, "--key", c_pub, "--threshold", "2")
    assert r.returncode == 0, r.stderr
    r = capsa_text("verify", both, *two, "--key", c_pub, "--require-all")
    assert r.returncode == 5 and "2 of the trusted keys, 3 required" in r.stderr
    # The same key given twice counts once.
    r = capsa_text("verify", only_alice, "--key", a_pub, "--key", a_pub, "--threshold", "2")
    assert r.returncode == 2 and "between 1 and 1 trusted keys" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "3"],
        ["--threshold", "0"],
        ["--require-all", "--threshold", "1"],
        ["--threshold", "1", "--no-require-signature"],
    ],
)
def test_impossible_policies_are_usage_errors(tmp_path: Path, people, args) -> None:  # type: ignore[no-untyped-def]
    alice, a_pub = people["alice"]
    b = write_bundle(tmp_path / "a.capsa", FILES, keys=[alice])
    r = capsa_text("verify", b, "--key", a_pub, "--key", people["bob"][1], *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("capsa: error: ")


def test_lying_frames_pass_default_verify_which_says_so_and_fail_deep_cat_extract(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    """The signer compressed other bytes than it hashed: only a dishonest signer can do this
    (the stored digest is signed). Default verification checks stored bytes and passes — and
    says that --deep also decompresses; everything that decompresses refuses the bundle."""
    alice, a_pub = people["alice"]
    claimed = b"the result the paper reports\n" * 40_000  # 1.1 MiB: two frames
    actual = claimed.replace(b"reports", b"invents")
    b = write_bundle(
        tmp_path / "lie.capsa",
        {"result.txt": claimed},
        keys=[alice],
        compressed={"result.txt": actual},
    )
    r = capsa_text("verify", b, "--key", a_pub)
    assert r.returncode == 0, r.stderr
    assert "note: 1 compressed blobs were checked as stored" in r.stdout
    assert "--deep also decompresses them" in r.stdout
    r = capsa_text("verify", b, "--key", a_pub, "--deep")
    assert r.returncode == 4 and "digest mismatch" in r.stderr, r.stderr
    for args in (["cat", b, "result.txt"], ["extract", b, "-C", tmp_path / "out"]):
        r = capsa_text(*args)
        assert r.returncode == 4 and "digest mismatch" in r.stderr, (args, r.stderr)
    assert list((tmp_path / "out").iterdir()) == []
