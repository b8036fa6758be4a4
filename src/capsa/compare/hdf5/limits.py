"""Memory bounds of the HDF5 comparator, read at call time (tests and callers may tune them)."""

from __future__ import annotations

__all__ = ["BLOCK_BYTES", "OBJECT_BLOCK"]

BLOCK_BYTES = 16 << 20
"""Dataset values are read in blocks of at most this many bytes (a diff holds one per file)."""
OBJECT_BLOCK = 4096
"""Elements per block for variable-length and reference types (their size is not known ahead)."""
