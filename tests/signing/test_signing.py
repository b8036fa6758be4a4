"""Signing bundles: pack --sign, countersigning, trust policy, and every bad-input path."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import capsa
from capsa.format.zip64 import ZipWriter
from capsa.signing import dsse
from capsa.signing.envelopes import PAYLOAD_TYPE, signature_entry
from capsa.signing.keys import keygen, load_private_key
from conftest import CliResult


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "keys").mkdir()
    out = {}
    for name in ("alice", "bob", "mallory"):
        priv, pub, _ = keygen(tmp_path / "keys" / name)
        out[name], out[name + ".pub"] = priv, pub
    return out


@pytest.fixture
def signed(bundle_copy: Path, keys: dict[str, Path], cli: Callable[..., CliResult]) -> Path:
    assert cli("sign", bundle_copy, "--key", keys["alice"]).rc == 0
    return bundle_copy


def test_pack_sign_then_verify_with_key(corpus, tmp_path: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "s.capsa"
    assert cli("pack", "-q", "-o", out, corpus.root, "--sign", keys["alice"]).rc == 0
    r = cli("verify", out, "--key", keys["alice.pub"], "--json")
    assert r.rc == 0, r.err
    report = json.loads(r.out)
    assert report["ok"] and report["level"] == "full"
    (sig,) = report["signatures"]
    assert (sig["status"], sig["trusted"]) == ("valid", True)
    assert sig["keyid"] == load_private_key(keys["alice"]).keyid


def test_signature_is_over_the_exact_manifest_bytes(signed: Path, keys) -> None:  # type: ignore[no-untyped-def]
    with capsa.open(signed) as b:
        alice = load_private_key(keys["alice"])
        env = dsse.parse_envelope(b.read_entry(signature_entry(alice.keyid)), where="t")
        assert env.payload_type == PAYLOAD_TYPE == "application/vnd.capsa.manifest+json"
        assert env.payload == b.manifest_bytes
        assert env.verify(alice.public) == [True]


def test_countersigning_keeps_the_bundle_id_and_every_other_byte(
    bundle_copy: Path, keys, cli
) -> None:  # type: ignore[no-untyped-def]
    before = capsa.open(bundle_copy)
    old_id, old_entries = before.id, {e.name: e for e in before.entries}
    data_before = bundle_copy.read_bytes()
    before.close()
    assert cli("sign", bundle_copy, "--key", keys["alice"]).rc == 0
    assert cli("sign", bundle_copy, "--key", keys["bob"]).rc == 0
    with capsa.open(bundle_copy) as b:
        assert b.id == old_id
        assert len(b.signature_entries) == 2
        for name, e in old_entries.items():
            new = {x.name: x for x in b.entries}[name]
            assert (
                data_before[e.header_offset : e.data_offset + e.size]
                == bundle_copy.read_bytes()[new.header_offset : new.data_offset + new.size]
            )
    r = cli("verify", bundle_copy, "--key", keys["alice.pub"], "--key", keys["bob.pub"])
    assert r.rc == 0 and r.out.decode().count("valid, trusted") == 2


def test_signing_twice_with_one_key_needs_force(signed: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    before = signed.read_bytes()
    r = cli("sign", signed, "--key", keys["alice"])
    assert r.rc == 8 and "already signed" in r.err and len(r.err_lines) == 1
    assert signed.read_bytes() == before
    assert cli("sign", signed, "--key", keys["alice"], "--force").rc == 0
    with capsa.open(signed) as b:
        assert len(b.signature_entries) == 1


def test_sign_leaves_no_temporary_file(signed: Path) -> None:
    assert sorted(p.name for p in signed.parent.iterdir() if p.name.startswith(".")) == []


def test_unsigned_bundle_fails_when_a_key_is_given(bundle_copy: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("verify", "-q", bundle_copy, "--key", keys["alice.pub"])
    assert r.rc == 5 and "not signed" in r.err
    assert cli("verify", "-q", bundle_copy).rc == 0  # no key, no requirement
    assert cli("verify", "-q", bundle_copy, "--require-signature").rc == 5
    assert (
        cli("verify", "-q", bundle_copy, "--key", keys["alice.pub"], "--no-require-signature").rc
        == 0
    )


def test_wrong_key_is_unknown_and_fails_the_requirement(signed: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("verify", signed, "--key", keys["mallory.pub"])
    assert r.rc == 5
    assert "unknown-key, not trusted" in r.out.decode()
    assert "no valid signature by a trusted key" in r.err


def test_trusted_keys_directory(signed: Path, keys, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "alice.pub").write_bytes(keys["alice.pub"].read_bytes())
    (trust / "README").write_text("not a key, ignored by name")
    assert cli("verify", "-q", signed, "--trusted-keys", trust).rc == 0
    assert cli("verify", "-q", signed, "--trusted-keys", tmp_path / "nope").rc == 5


def test_level_structure_with_keys_is_a_usage_error(signed: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("verify", signed, "--level", "structure", "--key", keys["alice.pub"])
    assert r.rc == 2 and "only checked at level full" in r.err


def _replace_signature(path: Path, name: str, data: bytes) -> None:
    """Rewrite the bundle with ``name``'s content replaced, everything else consistent."""
    with capsa.open(path) as b:
        entries = [
            (
                e.name,
                b.read_entry(e.name)
                if e.name == "mimetype" or not e.name.startswith("blobs/")
                else None,
                e,
            )
            for e in b.entries
        ]
        raw = path.read_bytes()
    tmp = path.with_suffix(".new")
    with tmp.open("wb") as f:
        w = ZipWriter(f)
        for n, small, e in entries:
            if n == name:
                w.add_bytes(n, data)
            elif small is not None:
                w.add_bytes(n, small)
            else:
                start = w.begin_streamed(len(n.encode()))
                assert start
                f.write(raw[e.data_offset : e.data_offset + e.size])
                w.end_streamed(n, e.size, e.crc)
        w.close()
    os.replace(tmp, path)


def _alice_entry(keys) -> str:  # type: ignore[no-untyped-def]
    return signature_entry(load_private_key(keys["alice"]).keyid)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda env, k, m: env.replace(
                b'"payloadType":"application/vnd.capsa.manifest+json"',
                b'"payloadType":"application/vnd.in-toto+json"',
            ),
            "is not a capsa manifest",
        ),
        (
            lambda env, k, m: dsse.sign(PAYLOAD_TYPE, m + b" ", [k]).to_json(),
            "payload is not this bundle's manifest",
        ),
        (
            lambda env, k, m: dsse.Envelope(
                PAYLOAD_TYPE, m, (dsse.Signature(k.keyid, k.sign(b"other bytes")),)
            ).to_json(),
            "signature does not verify",
        ),
        (lambda env, k, m: b"{not json", "malformed signature"),
        (
            lambda env, k, m: json.dumps(
                {
                    "payload": "!!",
                    "payloadType": PAYLOAD_TYPE,
                    "signatures": [{"keyid": k.keyid, "sig": "AA=="}],
                }
            ).encode(),
            "not valid base64",
        ),
        (
            lambda env, k, m: json.dumps({"payloadType": PAYLOAD_TYPE}).encode(),
            "not a DSSE envelope",
        ),
    ],
    ids=[
        "foreign-payload-type",
        "other-payload",
        "signature-over-other-bytes",
        "not-json",
        "bad-base64",
        "missing-fields",
    ],
)
def test_bad_envelopes_fail_with_one_clear_line(signed: Path, keys, cli, mutate, message) -> None:  # type: ignore[no-untyped-def]
    name = _alice_entry(keys)
    alice = load_private_key(keys["alice"])
    with capsa.open(signed) as b:
        env, manifest = b.read_entry(name), b.manifest_bytes
    _replace_signature(signed, name, mutate(env, alice, manifest))
    r = cli("verify", "-q", signed, "--key", keys["alice.pub"])
    assert r.rc == 5, r.err
    assert message in r.err
    assert all(line.startswith("capsa: ") for line in r.err_lines)
    assert "Traceback" not in r.err


def test_a_valid_signature_does_not_excuse_a_damaged_one(signed: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("sign", signed, "--key", keys["bob"]).rc == 0
    name = _alice_entry(keys)
    with capsa.open(signed) as b:
        env = json.loads(b.read_entry(name))
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[0] ^= 1
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    _replace_signature(signed, name, json.dumps(env).encode())
    r = cli("verify", "-q", signed, "--key", keys["alice.pub"], "--key", keys["bob.pub"])
    assert r.rc == 5 and "invalid signature" in r.err


def test_signature_entry_under_another_keys_name(signed: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    bob_name = signature_entry(load_private_key(keys["bob"]).keyid)
    with capsa.open(signed) as b:
        alice_env = b.read_entry(_alice_entry(keys))
    _replace_signature(signed, _alice_entry(keys), alice_env)
    # Rename by re-adding alice's envelope under bob's slot name.
    with capsa.open(signed) as b:
        raw = signed.read_bytes()
        names = [e.name for e in b.entries]
    assert _alice_entry(keys) in names
    data = raw.replace(_alice_entry(keys).encode(), bob_name.encode())
    signed.write_bytes(data)
    r = cli("verify", "-q", signed, "--key", keys["alice.pub"])
    assert r.rc == 5 and "entry name does not match the key id" in r.err


def test_encrypted_key_via_passphrase_file_and_env(
    corpus, tmp_path: Path, cli, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert cli("keygen", "-q", "-o", tmp_path / "enc", "--passphrase-file", pw).rc == 0
    assert stat.S_IMODE((tmp_path / "enc.key").stat().st_mode) == 0o600
    out = tmp_path / "b.capsa"
    r = cli("pack", "-q", "-o", out, corpus.root, "--sign", tmp_path / "enc.key")
    assert r.rc == 5 and "encrypted" in r.err  # stdin is not a terminal: no prompt
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    r = cli(
        "pack",
        "-q",
        "-o",
        out,
        corpus.root,
        "--sign",
        tmp_path / "enc.key",
        "--passphrase-file",
        wrong,
    )
    assert r.rc == 5 and "wrong passphrase" in r.err and not out.exists()
    monkeypatch.setenv("CAPSA_PASSPHRASE", "s3cret")
    assert cli("pack", "-q", "-o", out, corpus.root, "--sign", tmp_path / "enc.key").rc == 0
    assert cli("verify", "-q", out, "--key", tmp_path / "enc.pub").rc == 0


@pytest.mark.parametrize(
    "content", [b"", b"garbage\n", b"-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"]
)
def test_key_file_that_is_not_a_key(bundle_copy: Path, tmp_path: Path, cli, content: bytes) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.key"
    bad.write_bytes(content)
    before = bundle_copy.read_bytes()
    r = cli("sign", bundle_copy, "--key", bad)
    assert r.rc == 5 and len(r.err_lines) == 1 and "not a private key" in r.err
    assert bundle_copy.read_bytes() == before
    r = cli("verify", bundle_copy, "--key", bad)
    expected = "this is a private key" if b"PRIVATE" in content else "not a public key"
    assert r.rc == 5 and len(r.err_lines) == 1 and expected in r.err


def test_sign_a_file_that_is_not_a_bundle(tmp_path: Path, keys, cli) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "x.capsa"
    p.write_bytes(b"hello")
    r = cli("sign", p, "--key", keys["alice"])
    assert r.rc == 3 and len(r.err_lines) == 1
    assert p.read_bytes() == b"hello"


def test_keygen_cli_refuses_to_overwrite(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("keygen", "-o", tmp_path / "k").rc == 0
    r = cli("keygen", "-o", tmp_path / "k")
    assert r.rc == 8 and len(r.err_lines) == 1
    r = cli("keygen", "-o", tmp_path / "k", "--force", "--json")
    assert r.rc == 0 and json.loads(r.out)["keyid"].startswith("SHA256:")


def test_python_api(corpus, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    alice = load_private_key(keys["alice"])
    result = capsa.pack(
        tmp_path / "p.capsa", [corpus.root], sign=[alice, alice]
    )  # one slot per key
    with capsa.open(result.path) as b:
        assert len(b.signature_entries) == 1
        report = b.verify(keys=[alice.public])
        assert report.ok and report.signatures[0].status == "valid"
