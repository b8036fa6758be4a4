"""SIF (Singularity Image Format) reading and Apptainer-compatible DSSE signature checks.

Layout as in github.com/apptainer/sif (pkg/sif): a 128-byte global header, a table of 585-byte
descriptors, then data objects. Signature checks follow sif's pkg/integrity (spec/signing.md §5).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .dsse import pae, parse_envelope
from .errors import FormatError, NotFoundError
from .keys import PublicKey

__all__ = [
    "DATA_TYPES",
    "Descriptor",
    "SifImage",
    "SifSignatureResult",
    "open_sif",
    "sif_from_file",
]

HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")  # 128 bytes
DESCRIPTOR = struct.Struct("<iBIIIqqqqqqq128s384s")  # 585 bytes
MAGIC = b"SIF_MAGIC\0"
GROUP_MASK = 0xF0000000
SQUASHFS_MAGIC = b"hsqs"
MAX_DESCRIPTORS = 1 << 16
MAX_METADATA_OBJECT = 16 << 20

DATA_TYPES = {
    0x4001: "Deffile",
    0x4002: "EnvVar",
    0x4003: "Labels",
    0x4004: "Partition",
    0x4005: "Signature",
    0x4006: "GenericJSON",
    0x4007: "Generic",
    0x4008: "CryptoMessage",
    0x4009: "SBOM",
    0x400A: "OCIRootIndex",
    0x400B: "OCIBlob",
}
FS_TYPES = {
    1: "Squashfs",
    2: "Ext3",
    3: "ImmuObj",
    4: "Raw",
    5: "EncryptedSquashfs",
    6: "GocryptfsSquashfs",
}
PART_TYPES = {1: "System", 2: "PrimSys", 3: "Data", 4: "Overlay"}
HASH_TYPES = {1: "SHA256", 2: "SHA384", 3: "SHA512", 4: "BLAKE2S", 5: "BLAKE2B"}
SBOM_FORMATS = {
    1: "cyclonedx-json",
    2: "cyclonedx-xml",
    3: "github-json",
    4: "spdx-json",
    5: "spdx-rdf",
    6: "spdx-tag-value",
    7: "spdx-yaml",
    8: "syft-json",
}
ARCHES = {
    "00": "unknown",
    "01": "386",
    "02": "amd64",
    "03": "arm",
    "04": "arm64",
    "05": "ppc64",
    "06": "ppc64le",
    "07": "mips",
    "08": "mipsle",
    "09": "mips64",
    "10": "mips64le",
    "11": "s390x",
    "12": "riscv64",
}
DSSE_PAYLOAD_TYPE = "application/vnd.sylabs.sif-metadata+json"


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class Descriptor:
    """One used data object descriptor; ``raw`` keeps its exact 585 bytes."""

    index: int
    data_type: int
    id: int
    group_id: int
    linked_id: int
    offset: int
    size: int
    size_with_padding: int
    created_at: int
    modified_at: int
    uid: int
    gid: int
    name: str
    extra: bytes
    raw: bytes = field(repr=False)

    @property
    def type_name(self) -> str:
        return DATA_TYPES.get(self.data_type, f"Unknown({self.data_type:#x})")

    @property
    def group(self) -> int:
        """Group number (0: none), without the 0xf0000000 marker."""
        return self.group_id & ~GROUP_MASK

    def partition(self) -> dict[str, str]:
        fs, part = struct.unpack_from("<ii", self.extra)
        return {
            "fs_type": FS_TYPES.get(fs, f"unknown({fs})"),
            "part_type": PART_TYPES.get(part, f"unknown({part})"),
            "arch": ARCHES.get(_cstr(self.extra[8:11]), _cstr(self.extra[8:11])),
        }

    def signature(self) -> dict[str, str]:
        (ht,) = struct.unpack_from("<i", self.extra)
        entity = self.extra[4:24]
        return {
            "hash_type": HASH_TYPES.get(ht, f"unknown({ht})"),
            "entity": entity.hex().upper() if any(entity) else "",
        }

    def integrity_bytes(self, relative_id: int) -> bytes:
        """What a DSSE signature's descriptor digest covers (sif Descriptor.GetIntegrityReader):
        DataType, Used, relative ID, LinkedID, Size, CreatedAt, UID, GID, Name, Extra — Offset,
        SizeWithPadding and ModifiedAt excluded, so the object may move."""
        r = self.raw
        return (
            r[0:5]
            + struct.pack("<I", relative_id)
            + r[13:17]
            + r[25:33]
            + r[41:49]
            + r[57:73]
            + r[73:585]
        )


@dataclass
class SifSignatureResult:
    descriptor_id: int
    kind: str  # "dsse" | "pgp" | "legacy"
    group: int
    keyids: list[str]
    status: str  # "valid" | "invalid" | "unknown-key" | "not checked (PGP)"
    reason: str = ""
    verified_objects: list[int] = field(default_factory=list)


class SifImage:
    """A SIF file opened for reading. Every offset and size is checked against the file."""

    def __init__(self, read_at: Callable[[int, int], bytes], size: int, *, where: str) -> None:
        self._read_at = read_at
        self.where = where
        self.file_size = size
        if self.file_size < HEADER.size:
            raise FormatError("not a SIF image: too short", where=where)
        h = HEADER.unpack(self._read(0, HEADER.size))
        (
            self.launch,
            magic,
            version,
            arch,
            uid,
            self.created_at,
            self.modified_at,
            free,
            total,
            d_off,
            _d_size,
            self.data_offset,
            self.data_size,
        ) = h
        if magic != MAGIC:
            raise FormatError("not a SIF image: bad magic", where=where)
        if version != b"01\0":
            raise FormatError(f"unsupported SIF version {_cstr(version)!r}", where=where)
        self.header_raw = self._read(0, 64)
        self.arch = ARCHES.get(_cstr(arch), _cstr(arch))
        self.id = str(uuid.UUID(bytes=uid))
        if not 0 <= total <= MAX_DESCRIPTORS or not 0 <= free <= total:
            raise FormatError(
                f"descriptor counts out of range ({free} free of {total})", where=where
            )
        if d_off < HEADER.size or d_off + total * DESCRIPTOR.size > self.file_size:
            raise FormatError("descriptor table outside the file", where=where)
        table = self._read(d_off, total * DESCRIPTOR.size)
        self.descriptors: list[Descriptor] = []
        ids: set[int] = set()
        for i in range(total):
            raw = table[i * DESCRIPTOR.size : (i + 1) * DESCRIPTOR.size]
            v = DESCRIPTOR.unpack(raw)
            if not v[1]:
                continue
            d = Descriptor(
                i,
                v[0],
                v[2],
                v[3],
                v[4],
                v[5],
                v[6],
                v[7],
                v[8],
                v[9],
                v[10],
                v[11],
                _cstr(v[12]),
                v[13],
                raw,
            )
            if d.offset < 0 or d.size < 0 or d.offset + d.size > self.file_size:
                raise FormatError(f"object {d.id} lies outside the file", where=where)
            if d.id == 0 or d.id in ids:
                raise FormatError(f"object id {d.id} is zero or repeated", where=where)
            ids.add(d.id)
            self.descriptors.append(d)
        if len(self.descriptors) != total - free:
            raise FormatError("header free-descriptor count disagrees with the table", where=where)

    def _read(self, offset: int, n: int) -> bytes:
        data = self._read_at(offset, n)
        if len(data) != n:
            raise FormatError("SIF image truncated", where=self.where)
        return data

    def read_object(self, d: Descriptor, limit: int = MAX_METADATA_OBJECT) -> bytes:
        if d.size > limit:
            raise FormatError(f"object {d.id} larger than {limit} bytes", where=self.where)
        return self._read(d.offset, d.size)

    def object_digest(self, d: Descriptor, algorithm: str = "sha256") -> str:
        h = hashlib.new(algorithm)
        done = 0
        while done < d.size:
            chunk = self._read(d.offset + done, min(4 << 20, d.size - done))
            h.update(chunk)
            done += len(chunk)
        return f"{algorithm}:{h.hexdigest()}"

    def of_type(self, type_name: str) -> list[Descriptor]:
        return [d for d in self.descriptors if d.type_name == type_name]

    def primary_partition(self) -> Descriptor:
        """The PrimSys partition Apptainer would run; it must hold a squashfs file system."""
        for d in self.of_type("Partition"):
            p = d.partition()
            if p["part_type"] == "PrimSys":
                if p["fs_type"] != "Squashfs":
                    raise FormatError(
                        f"primary partition is {p['fs_type']}, not squashfs",
                        where=self.where,
                        hint="only squashfs images can run",
                    )
                if d.size < 4 or self._read(d.offset, 4) != SQUASHFS_MAGIC:
                    raise FormatError(
                        "primary partition does not hold a squashfs file system",
                        where=self.where,
                        hint="the image is damaged or not runnable",
                    )
                return d
        raise FormatError(
            "SIF image has no primary system partition",
            where=self.where,
            hint="build it with apptainer build or capsa's SIF writer",
        )

    def inspect(self) -> dict[str, Any]:
        """Everything `capsa sif inspect` shows, as plain data."""
        objects = []
        for d in self.descriptors:
            o: dict[str, Any] = {
                "id": d.id,
                "type": d.type_name,
                "group": d.group,
                "linked_id": d.linked_id,
                "offset": d.offset,
                "size": d.size,
                "name": d.name,
            }
            if d.type_name == "Partition":
                o.update(d.partition())
            elif d.type_name == "Signature":
                o.update(d.signature())
            elif d.type_name == "SBOM":
                (fmt,) = struct.unpack_from("<i", d.extra)
                o["format"] = SBOM_FORMATS.get(fmt, f"unknown({fmt})")
            if d.type_name in ("Deffile", "Labels", "EnvVar", "GenericJSON") and d.size <= 1 << 20:
                o["content"] = self.read_object(d).decode("utf-8", "replace")
            objects.append(o)
        return {
            "id": self.id,
            "arch": self.arch,
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "launch": _cstr(self.launch),
            "data_offset": self.data_offset,
            "data_size": self.data_size,
            "objects": objects,
        }

    # -- signatures -------------------------------------------------------------------------
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


def open_sif(
    path: str | os.PathLike[str], *, offset: int = 0, size: int | None = None
) -> tuple[SifImage, Callable[[], None]]:
    """Open a SIF file — or one stored at ``offset`` inside another file, e.g. an identity blob
    in a bundle; returns the image and a function that closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFoundError("no such image", where=str(path)) from None
    except IsADirectoryError:
        raise FormatError("is a directory, not a SIF image", where=str(path)) from None
    try:
        if size is None:
            size = os.fstat(fd).st_size - offset
        image = SifImage(
            lambda off, n: os.pread(fd, min(n, max(size - off, 0)), offset + off),
            size,
            where=str(path),
        )
        return image, lambda: os.close(fd)
    except BaseException:
        os.close(fd)
        raise


def sif_from_file(f: BinaryIO | io.RawIOBase, size: int, *, where: str) -> SifImage:
    """A SIF image read through a seekable file object, e.g. a bundle member."""

    def read_at(offset: int, n: int) -> bytes:
        f.seek(offset)
        return f.read(n)

    return SifImage(read_at, size, where=where)


# -- writing --------------------------------------------------------------------------------

LAUNCH_SCRIPT = b"#!/usr/bin/env run-singularity\n"
GO_ZERO_TIME = -62135596800
"""Go's zero time.Time in Unix seconds: what deterministic SIF files carry (sif's generator)."""
DEFAULT_DESCRIPTORS = 48
PARTITION_ALIGNMENT = 4096
_TYPE_CODES = {v: k for k, v in DATA_TYPES.items()}
_FS_CODES = {v: k for k, v in FS_TYPES.items()}
_PART_CODES = {v: k for k, v in PART_TYPES.items()}
_ARCH_CODES = {v: k for k, v in ARCHES.items()}


@dataclass(frozen=True)
class SifObject:
    """One data object to write. ``data`` is bytes or a path streamed from disk."""

    data_type: str
    data: bytes | os.PathLike[str] | str
    name: str = ""
    group: int = 1
    linked_id: int = 0
    extra: bytes = b""
    alignment: int = 1

    @classmethod
    def partition(
        cls,
        data: bytes | os.PathLike[str] | str,
        *,
        fs_type: str = "Squashfs",
        part_type: str = "PrimSys",
        arch: str = "amd64",
        name: str = "",
        group: int = 1,
    ) -> SifObject:
        extra = struct.pack(
            "<ii3s", _FS_CODES[fs_type], _PART_CODES[part_type], _ARCH_CODES[arch].encode() + b"\0"
        )
        return cls("Partition", data, name, group, 0, extra, PARTITION_ALIGNMENT)

    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else os.stat(self.data).st_size


def arch_of_machine(machine: str) -> str:
    """SIF arch name for ``platform.machine()`` (x86_64 → amd64)."""
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "i686": "386",
        "i386": "386",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, "unknown")


def write_sif(
    out: BinaryIO,
    objects: list[SifObject],
    *,
    launch: bytes = LAUNCH_SCRIPT,
    image_id: uuid.UUID | None = None,
    created_at: int = GO_ZERO_TIME,
    descriptors: int = DEFAULT_DESCRIPTORS,
) -> None:
    """Write a SIF image laid out as sylabs/apptainer sif v2 does (ids from 1, data after the
    descriptor table, partitions 4096-aligned, padding counted in SizeWithPadding).

    The defaults (nil UUID, Go zero time) make the output a pure function of the objects.
    """
    if len(objects) > descriptors:
        raise ValueError(f"{len(objects)} objects do not fit {descriptors} descriptors")
    if len(launch) > 32:
        raise ValueError("launch script longer than 32 bytes")
    d_off, d_size = 4096, descriptors * DESCRIPTOR.size
    data_offset = d_off + d_size
    arch = "00"
    table = bytearray()
    placements = []
    pos = data_offset
    for i, obj in enumerate(objects, start=1):
        size = obj.size()
        start = -(-pos // obj.alignment) * obj.alignment
        if obj.data_type == "Partition":
            _, part = struct.unpack_from("<ii", obj.extra)
            if PART_TYPES.get(part) == "PrimSys":
                arch = _cstr(obj.extra[8:11]) or "00"
        group_id = (obj.group | GROUP_MASK) if obj.group else GROUP_MASK
        table += DESCRIPTOR.pack(
            _TYPE_CODES[obj.data_type],
            1,
            i,
            group_id,
            obj.linked_id,
            start,
            size,
            start + size - pos,
            created_at,
            created_at,
            0,
            0,
            obj.name.encode()[:128],
            obj.extra.ljust(384, b"\0"),
        )
        placements.append((start, obj))
        pos = start + size
    table += b"\0" * (d_size - len(table))
    header = HEADER.pack(
        launch.ljust(32, b"\0"),
        MAGIC,
        b"01\0",
        arch.encode() + b"\0",
        (image_id or uuid.UUID(int=0)).bytes,
        created_at,
        created_at,
        descriptors - len(objects),
        descriptors,
        d_off,
        d_size,
        data_offset,
        pos - data_offset,
    )
    out.write(header.ljust(d_off, b"\0"))
    out.write(table)
    written = data_offset
    for start, obj in placements:
        out.write(b"\0" * (start - written))
        if isinstance(obj.data, bytes):
            out.write(obj.data)
        else:
            with open(obj.data, "rb") as f:  # noqa: PTH123
                while chunk := f.read(8 << 20):
                    out.write(chunk)
        written = start + obj.size()
