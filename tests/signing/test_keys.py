"""Keys: generation, the formats we accept, key ids as Apptainer computes them, bad key files."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from capsa.errors import ExistsError, NotFoundError, SignatureError
from capsa.signing import dsse
from capsa.signing.keys import keygen, load_private_key, load_public_key

SIF_KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "sif" / "keys"


def test_keygen_writes_private_key_0600_and_public_pem(tmp_path: Path) -> None:
    priv, pub, keyid = keygen(tmp_path / "alice")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) & 0o077 in (0o044, 0o004, 0o040, 0o000)
    assert load_private_key(priv).keyid == keyid == load_public_key(pub).keyid
    assert keyid.startswith("SHA256:") and "=" not in keyid


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    keygen(tmp_path / "k")
    before = (tmp_path / "k.key").read_bytes()
    with pytest.raises(ExistsError):
        keygen(tmp_path / "k")
    assert (tmp_path / "k.key").read_bytes() == before
    keygen(tmp_path / "k", force=True)
    assert (tmp_path / "k.key").read_bytes() != before


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    priv, _, keyid = keygen(tmp_path / "enc", passphrase=b"correct horse")
    assert b"ENCRYPTED" in priv.read_bytes()
    with pytest.raises(SignatureError, match="encrypted"):
        load_private_key(priv)
    with pytest.raises(SignatureError, match="wrong passphrase"):
        load_private_key(priv, b"wrong")
    assert load_private_key(priv, b"correct horse").keyid == keyid


def test_key_ids_match_apptainer_and_ssh_keygen(tmp_path: Path) -> None:
    # These are the key ids in the DSSE signature of fixtures/sif/one-group-signed-dsse.sif.
    assert load_public_key(SIF_KEYS / "ed25519-public.pem").keyid == (
        "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs"
    )
    assert load_public_key(SIF_KEYS / "rsa-public.pem").keyid == (
        "SHA256:BhCwr7qZulYcOMSl2Jt2DuYHxHNnN6th4NdMqR/PGa4"
    )
    pub = load_public_key(SIF_KEYS / "ecdsa-public.pem")
    ssh_pub = tmp_path / "k.pub"
    ssh_pub.write_bytes(
        pub.key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        + b" test\n"
    )
    assert load_public_key(ssh_pub).keyid == pub.keyid
    try:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(ssh_pub)], capture_output=True, text=True, check=True
        ).stdout
    except FileNotFoundError:
        pytest.skip("ssh-keygen not installed (Debian: openssh-client)")
    assert out.split()[1] == pub.keyid


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_every_supported_algorithm_signs_and_verifies(tmp_path: Path, kind: str) -> None:
    key: object
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # OpenSSH private key files for every algorithm, PEM for the public half.
    priv_path = tmp_path / "id"
    priv_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,  # type: ignore[attr-defined]
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    priv = load_private_key(priv_path)
    env = dsse.sign("application/x-test", b"payload", [priv])
    assert env.verify(priv.public) == [True]
    other = dsse.Envelope(env.payload_type, b"other payload", env.signatures)
    assert other.verify(priv.public) == [False]


def test_weak_and_unsupported_keys_are_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p = tmp_path / "weak.pem"
    p.write_bytes(
        weak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(SignatureError, match="too weak"):
        load_public_key(p)
    p384 = ec.generate_private_key(ec.SECP384R1())
    p.write_bytes(
        p384.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(SignatureError, match="unsupported key type"):
        load_public_key(p)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello\n",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        os.urandom(300),
    ],
)
def test_a_file_that_is_not_a_key(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "notakey"
    p.write_bytes(content)
    with pytest.raises(SignatureError, match="not a public key"):
        load_public_key(p)
    with pytest.raises(SignatureError, match="not a private key"):
        load_private_key(p)


def test_private_key_given_as_public_key(tmp_path: Path) -> None:
    priv, _, _ = keygen(tmp_path / "k")
    with pytest.raises(SignatureError, match="private key"):
        load_public_key(priv)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_public_key(tmp_path / "nope.pub")
    with pytest.raises(SignatureError, match="directory"):
        load_private_key(tmp_path)
