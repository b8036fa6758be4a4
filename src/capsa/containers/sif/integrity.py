"""Apptainer-compatible checks of a SIF image's DSSE signatures (sif's pkg/integrity;
spec/signing.md §6). Mixed into :class:`~capsa.containers.sif.reader.SifImage`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import FormatError
from ...signing.dsse import pae, parse_envelope
from ...signing.keys import PublicKey
from .descriptor import DSSE_PAYLOAD_TYPE, GROUP_MASK, Descriptor

__all__ = ["SifIntegrity", "SifSignatureResult"]


@dataclass
class SifSignatureResult:
    descriptor_id: int
    kind: str  # "dsse" | "pgp" | "legacy"
    group: int
    keyids: list[str]
    status: str  # "valid" | "invalid" | "unknown-key" | "not checked (PGP)"
    reason: str = ""
    verified_objects: list[int] = field(default_factory=list)


class SifIntegrity:
    """Signature checks over the reading interface of ``SifImage`` (``descriptors``,
    ``of_type``, ``read_object``, ``object_digest``, ``header_raw``, ``where``)."""

    if TYPE_CHECKING:
        descriptors: list[Descriptor]
        header_raw: bytes
        where: str

        def of_type(self, type_name: str) -> list[Descriptor]: ...
        def read_object(self, d: Descriptor, limit: int = ...) -> bytes: ...
        def object_digest(self, d: Descriptor, algorithm: str = ...) -> str: ...

    def verify_signatures(self, keys: list[PublicKey]) -> list[SifSignatureResult]:
        """Check every signature object as Apptainer's ``sif/pkg/integrity`` verifier does."""
        return [self._check_signature(s, keys) for s in self.of_type("Signature")]

    def _group_objects(self, group: int) -> list[Descriptor]:
        return [
            d
            for d in self.descriptors
            if d.group_id == (group | GROUP_MASK) and d.type_name != "Signature"
        ]

    def _check_signature(self, sig: Descriptor, keys: list[PublicKey]) -> SifSignatureResult:
        data = self.read_object(sig)
        linked_group = sig.linked_id & ~GROUP_MASK if sig.linked_id & GROUP_MASK else 0
        if data.lstrip().startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"):
            kind = "legacy" if b"SIFHASH" in data[:200] else "pgp"
            return SifSignatureResult(
                sig.id, kind, linked_group, [sig.signature()["entity"]], "not checked (PGP)"
            )
        res = SifSignatureResult(sig.id, "dsse", linked_group, [], "invalid")
        try:
            env = parse_envelope(data.rstrip(b"\0\n"), where=f"{self.where}: signature {sig.id}")
        except FormatError as e:
            res.reason = e.what
            return res
        res.keyids = [s.keyid for s in env.signatures]
        if env.payload_type != DSSE_PAYLOAD_TYPE:
            res.reason = f"payload type {env.payload_type!r} is not SIF metadata"
            return res
        message = pae(env.payload_type, env.payload)
        trusted = [
            k
            for k in keys
            for s in env.signatures
            if s.keyid == k.keyid and k.verify(s.sig, message)
        ]
        if not trusted:
            known = {k.keyid for k in keys} & set(res.keyids)
            res.status = "invalid" if known else "unknown-key"
            res.reason = "signature does not verify" if known else "no trusted key signed it"
            return res
        if not linked_group:
            res.reason = "signature is not linked to an object group"
            return res
        problem = self._check_metadata(env.payload, linked_group, res)
        res.status, res.reason = ("invalid", problem) if problem else ("valid", "")
        return res

    def _check_metadata(self, payload: bytes, group: int, res: SifSignatureResult) -> str:
        try:
            md = json.loads(payload)
            if md["version"] != 1:
                return f"unsupported metadata version {md['version']}"
            header_digest = md["header"]["digest"]
            signed = {int(o["relativeId"]): o for o in md["objects"]}
        except (ValueError, KeyError, TypeError) as e:
            return f"malformed signed metadata: {e}"
        # The header digest covers launch script, magic, version and ID (arch excluded).
        hd = "sha256:" + hashlib.sha256(self.header_raw[:45] + self.header_raw[48:64]).hexdigest()
        if header_digest != hd:
            return "SIF global header changed since signing"
        objects = self._group_objects(group)
        if not objects:
            return f"object group {group} is empty"
        min_id = min(d.id for d in objects)
        by_rel = {d.id - min_id: d for d in objects}
        if set(by_rel) != set(signed):
            return (
                f"signed objects {sorted(r + min_id for r in signed)} differ from group "
                f"{group} objects {sorted(d.id for d in objects)}"
            )
        for rel, d in sorted(by_rel.items()):
            o = signed[rel]
            algo = _algo_of(o.get("descriptorDigest"))
            if algo is None or _algo_of(o.get("objectDigest")) != algo:
                return f"object {d.id}: unsupported digest"
            if o["descriptorDigest"] != _digest(algo, d.integrity_bytes(rel)):
                return f"object {d.id}: descriptor changed since signing"
            if o["objectDigest"] != self.object_digest(d, algo):
                return f"object {d.id}: data changed since signing"
            res.verified_objects.append(d.id)
        return ""


def _algo_of(digest: object) -> str | None:
    if not isinstance(digest, str):
        return None
    algo = digest.partition(":")[0]
    return algo if algo in ("sha256", "sha384", "sha512") else None


def _digest(algo: str, data: bytes) -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"
