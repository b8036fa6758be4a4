"""Signing keys: Ed25519 (default), ECDSA P-256 and RSA, in PEM or OpenSSH form
(spec/signing.md §2).

A key is named by its key id, the SSH-style fingerprint ``SHA256:<base64>`` of the public key's
OpenSSH wire encoding — what ``ssh-keygen -l`` prints and what Apptainer's DSSE signatures carry.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .._internal.atomic import atomic_output, check_destination
from ..errors import NotFoundError, SignatureError

__all__ = ["PrivateKey", "PublicKey", "key_id", "keygen", "load_private_key", "load_public_key"]

PublicKeyTypes = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKeyTypes = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_MAX_KEY_FILE = 1 << 20
NEEDS_PASSPHRASE = "private key is encrypted"


def key_id(pub: PublicKeyTypes) -> str:
    """``SHA256:<unpadded base64>`` of the OpenSSH public key blob (as ``ssh-keygen -l``)."""
    line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _algorithm(pub: PublicKeyTypes) -> str:
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"ecdsa-{pub.curve.name}"
    return f"rsa-{pub.key_size}"


def _check_supported(pub: object, where: str) -> PublicKeyTypes:
    if isinstance(pub, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < 2048:
            raise SignatureError(
                f"RSA key of {pub.key_size} bits is too weak",
                where=where,
                hint="use Ed25519, ECDSA P-256 or RSA >= 2048 bits",
            )
        return pub
    if isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1):
        return pub
    raise SignatureError(
        f"unsupported key type {type(pub).__name__}",
        where=where,
        hint="use Ed25519, ECDSA P-256 or RSA",
    )


@dataclass(frozen=True)
class PublicKey:
    key: PublicKeyTypes
    source: str = ""

    @property
    def keyid(self) -> str:
        return key_id(self.key)

    @property
    def algorithm(self) -> str:
        return _algorithm(self.key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``data`` (spec/signing.md §3)."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            elif isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class PrivateKey:
    key: PrivateKeyTypes
    source: str = ""

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.source)

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_KEY_FILE:
            raise SignatureError("not a key file (too large)", where=str(p))
        return p.read_bytes()
    except FileNotFoundError:
        raise NotFoundError("no such key file", where=str(p)) from None
    except IsADirectoryError:
        raise SignatureError("is a directory, not a key file", where=str(p)) from None
    except OSError as e:
        raise NotFoundError(f"cannot read key file: {e.strerror}", where=str(p)) from e


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
    """Load a PEM (PKCS#8 or traditional) or OpenSSH private key, decrypting with ``passphrase``."""
    where = str(path)
    data = _read_key_file(path)
    try:
        key: object
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            key = serialization.load_ssh_private_key(data, passphrase)
        else:
            key = serialization.load_pem_private_key(data, passphrase)
    except TypeError as e:
        # cryptography says TypeError for "encrypted but no password" and the reverse.
        if passphrase is None:
            raise SignatureError(
                NEEDS_PASSPHRASE,
                where=where,
                hint="give the passphrase (CAPSA_PASSPHRASE or --passphrase-file)",
            ) from e
        raise SignatureError(
            "private key is not encrypted but a passphrase was given", where=where
        ) from e
    except ValueError as e:
        if passphrase is not None:
            raise SignatureError("wrong passphrase (or corrupt key)", where=where) from e
        raise SignatureError("not a private key (PEM or OpenSSH expected)", where=where) from e
    except UnsupportedAlgorithm as e:
        raise SignatureError(f"unsupported key algorithm: {e}", where=where) from e
    _check_supported(key.public_key(), where)
    return PrivateKey(key, where)  # type: ignore[arg-type]


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Load a public key: PEM SubjectPublicKeyInfo, an OpenSSH ``.pub`` line, or an X.509 PEM."""
    where = str(path)
    data = _read_key_file(path)
    try:
        stripped = data.strip()
        if stripped.startswith((b"ssh-", b"ecdsa-sha2-")):
            key: object = serialization.load_ssh_public_key(stripped.split(b"\n")[0])
        elif b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"PRIVATE KEY-----" in data:
            raise SignatureError(
                "this is a private key; give the public key",
                where=where,
                hint="the .pub file written by `capsa keygen`",
            )
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise SignatureError("not a public key (PEM or OpenSSH expected)", where=where) from e
    return PublicKey(_check_supported(key, where), where)


def keygen(
    name: str | os.PathLike[str], *, passphrase: bytes | None = None, force: bool = False
) -> tuple[Path, Path, str]:
    """Write an Ed25519 pair ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` (PEM)."""
    base = Path(name)
    priv_path = base.with_name(base.name + ".key")
    pub_path = base.with_name(base.name + ".pub")
    for p in (priv_path, pub_path):
        check_destination(p, force=force)
    key = ed25519.Ed25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    with atomic_output(priv_path, force=force, mode=0o600) as f:
        f.write(pem)
    pub = PublicKey(key.public_key())
    with atomic_output(pub_path, force=force) as f:
        f.write(pub.pem())
    return priv_path, pub_path, pub.keyid
