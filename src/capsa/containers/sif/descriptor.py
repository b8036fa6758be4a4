"""SIF layout: the global header and 585-byte data object descriptors, with the numbers
Apptainer's ``sif`` package gives their fields (github.com/apptainer/sif, pkg/sif)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "ARCHES",
    "DATA_TYPES",
    "DESCRIPTOR",
    "FS_TYPES",
    "GROUP_MASK",
    "HEADER",
    "MAGIC",
    "PART_TYPES",
    "Descriptor",
    "cstr",
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


def cstr(raw: bytes) -> str:
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
            "arch": ARCHES.get(cstr(self.extra[8:11]), cstr(self.extra[8:11])),
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
