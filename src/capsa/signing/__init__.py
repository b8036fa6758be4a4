"""Keys, DSSE envelopes, bundle signature statuses and in-toto statements (spec/signing.md).
Works on bytes alone: reading and writing bundles is capsa.bundle's."""

from __future__ import annotations

from .envelopes import PAYLOAD_TYPE, SignatureCheck, load_trusted_keys, signature_entry
from .keys import PrivateKey, PublicKey, keygen, load_private_key, load_public_key

__all__ = [
    "PAYLOAD_TYPE",
    "PrivateKey",
    "PublicKey",
    "SignatureCheck",
    "keygen",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "signature_entry",
]
