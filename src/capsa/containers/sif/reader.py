"""SIF (Singularity Image Format) reading: header, descriptors, objects, partitions.

Layout as in github.com/apptainer/sif (pkg/sif): a 128-byte global header, a table of 585-byte
descriptors, then data objects. Every offset and size is checked against the file; the image is
read through a byte source (a file, or a blob inside a bundle read in place).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

from ...errors import FormatError
from ...format.source import ByteSource, LocalFile
from .descriptor import (
    ARCHES,
    DESCRIPTOR,
    HEADER,
    MAGIC,
    MAX_DESCRIPTORS,
    MAX_METADATA_OBJECT,
    SBOM_FORMATS,
    SQUASHFS_MAGIC,
    Descriptor,
    cstr,
)
from .integrity import SifIntegrity

__all__ = ["SifImage", "open_sif", "sif_from_file", "sif_from_source"]


class SifImage(SifIntegrity):
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
            what, hint = _not_sif(self._read_at, self.file_size)
            raise FormatError(f"not a SIF image: {what}", where=where, hint=hint)
        if version != b"01\0":
            raise FormatError(f"unsupported SIF version {cstr(version)!r}", where=where)
        self.header_raw = self._read(0, 64)
        self.arch = ARCHES.get(cstr(arch), cstr(arch))
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
                cstr(v[12]),
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

    def read_range(self, offset: int, n: int) -> bytes:
        """``n`` bytes of the image at ``offset`` (FormatError if the image is shorter)."""
        return self._read(offset, n)

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
                if p["fs_type"] in ("EncryptedSquashfs", "GocryptfsSquashfs"):
                    raise FormatError(
                        f"the image's root file system is encrypted ({p['fs_type']})",
                        where=self.where,
                        hint="capsa cannot decrypt it: run it with apptainer --pem-path, or "
                        "seal an unencrypted image",
                    )
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
        if self.of_type("OCIRootIndex") or self.of_type("OCIBlob"):
            raise FormatError(
                "this is an OCI-SIF image (apptainer --oci), which holds OCI layers, not a "
                "root file system",
                where=self.where,
                hint="build a native SIF (apptainer build IMG.sif docker-archive:…), or "
                "capsa image import the OCI image",
            )
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
            "launch": cstr(self.launch),
            "data_offset": self.data_offset,
            "data_size": self.data_size,
            "objects": objects,
        }


def _tar_names(read_at: Callable[[int, int], bytes], size: int, limit: int = 512) -> set[str]:
    """Member names of the first ``limit`` headers of a tar file (headers only are read)."""
    names, offset = set(), 0
    for _ in range(limit):
        if offset + 512 > size:
            break
        h = read_at(offset, 512)
        if len(h) < 512 or not h.strip(b"\0"):
            break
        names.add(h[:100].split(b"\0")[0].decode("utf-8", "replace").removeprefix("./"))
        try:
            n = int(h[124:136].split(b"\0")[0].strip() or b"0", 8)
        except ValueError:
            break
        offset += 512 + -(-n // 512) * 512
    return names


def _not_sif(read_at: Callable[[int, int], bytes], size: int) -> tuple[str, str | None]:
    """What a file that is not a SIF looks like, and what to do with it."""
    head = read_at(0, min(size, 512))
    if head[257:262] == b"ustar":
        names = _tar_names(read_at, size)
        if "oci-layout" in names or "index.json" in names:
            kind, transport = "an OCI archive", "oci-archive"
        elif "manifest.json" in names or "repositories" in names:
            kind, transport = "a docker archive (docker save)", "docker-archive"
        else:
            kind, transport = "a tar archive", "tar"
        return f"this is {kind}", f"run: capsa image import {transport}:FILE -o IMAGE.sif"
    if head[:4] == SQUASHFS_MAGIC:
        return (
            "this is a bare squashfs file system",
            "wrap it: apptainer build, or capsa's SIF writer",
        )
    return "bad magic", None


def open_sif(target: str | os.PathLike[str] | ByteSource) -> tuple[SifImage, Callable[[], None]]:
    """Open a SIF file (or the SIF held by a byte source, e.g. an identity blob of a bundle);
    returns the image and a function that closes what was opened here."""
    if isinstance(target, ByteSource):
        return sif_from_source(target), lambda: None
    source = LocalFile(target, what="SIF image")
    try:
        return sif_from_source(source), source.close
    except BaseException:
        source.close()
        raise


def sif_from_source(source: ByteSource) -> SifImage:
    """A SIF image read through ``source``."""

    def read_at(offset: int, n: int) -> bytes:
        return source.read_at(offset, min(n, max(source.size - offset, 0)))

    return SifImage(read_at, source.size, where=source.name)


def sif_from_file(f: BinaryIO | io.RawIOBase, size: int, *, where: str) -> SifImage:
    """A SIF image read through a seekable file object, e.g. a bundle member."""

    def read_at(offset: int, n: int) -> bytes:
        f.seek(offset)
        return f.read(n)

    return SifImage(read_at, size, where=where)
