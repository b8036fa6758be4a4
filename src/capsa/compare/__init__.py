"""Comparing a re-made output with the recorded one: comparators by method, one verdict rule.

The comparison seam (ARCHITECTURE.md). ``compare(a, b, policy)`` is what replay and ``capsa diff``
call; comparators register in :mod:`.registry` with a cheap content sniff and load on first use.
Built in: ``bytes`` and ``hdf5``.
"""

from __future__ import annotations

from .base import Comparator, Comparison, Diff, Difference, Source
from .registry import (
    ComparatorEntry,
    comparator,
    compare,
    detect,
    methods,
    register_comparator,
    same_bytes,
)
from .sources import open_source

__all__ = [
    "Comparator",
    "ComparatorEntry",
    "Comparison",
    "Diff",
    "Difference",
    "Source",
    "comparator",
    "compare",
    "detect",
    "methods",
    "open_source",
    "register_comparator",
    "same_bytes",
]


def _bytes() -> Comparator:
    from .bytes import BytesComparator

    return BytesComparator()


def _hdf5() -> Comparator:
    from .hdf5 import Hdf5Comparator

    return Hdf5Comparator()


def _is_hdf5(head: bytes) -> bool:
    # The superblock is at 0, or after a user block of 512, 1024, 2048, … bytes.
    return any(head[o : o + 8] == b"\x89HDF\r\n\x1a\n" for o in (0, 512, 1024, 2048))


register_comparator(ComparatorEntry("bytes", "bytes", None, _bytes))
register_comparator(
    ComparatorEntry(
        "hdf5",
        "HDF5 content",
        _is_hdf5,
        _hdf5,
        equivalent_note="object modification times and storage layout are not content",
    )
)
