"""Writing SIF images deterministically (sif v2 layout: ids from 1, 4096-aligned partitions,
padding in SizeWithPadding), as Apptainer's own generator writes its test images."""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO

from .descriptor import (
    ARCHES,
    DATA_TYPES,
    DESCRIPTOR,
    FS_TYPES,
    GROUP_MASK,
    HEADER,
    MAGIC,
    PART_TYPES,
    cstr,
)

__all__ = ["GO_ZERO_TIME", "LAUNCH_SCRIPT", "SifObject", "arch_of_machine", "write_sif"]

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
                arch = cstr(obj.extra[8:11]) or "00"
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
