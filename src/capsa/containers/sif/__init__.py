"""SIF images: reading (header, objects, partitions), Apptainer-compatible signature checks,
and a deterministic writer."""

from __future__ import annotations

from .descriptor import DATA_TYPES, Descriptor
from .integrity import SifSignatureResult
from .reader import SifImage, open_sif, sif_from_file, sif_from_source
from .writer import GO_ZERO_TIME, LAUNCH_SCRIPT, SifObject, arch_of_machine, write_sif

__all__ = [
    "DATA_TYPES",
    "GO_ZERO_TIME",
    "LAUNCH_SCRIPT",
    "Descriptor",
    "SifImage",
    "SifObject",
    "SifSignatureResult",
    "arch_of_machine",
    "open_sif",
    "sif_from_file",
    "sif_from_source",
    "write_sif",
]
