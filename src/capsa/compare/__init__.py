"""Comparing a re-made output with the recorded one: comparators by method, one verdict rule.

The comparison seam (ARCHITECTURE.md). ``compare(a, b, policy)`` is what replay and ``capsa diff``
call; comparators register in :mod:`.registry` with a cheap content sniff and load on first use.
Built in: ``bytes``, ``hdf5``, ``root``, ``image``, ``json``, ``csv`` and ``text``.
"""

from __future__ import annotations

from typing import Any

from .base import Comparator, Comparison, Diff, Difference, Source
from .registry import (
    ComparatorEntry,
    comparator,
    compare,
    detect,
    detect_policy,
    methods,
    register_comparator,
    same_bytes,
)
from .sources import open_source
from .volatile import propose_policy

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
    "detect_policy",
    "methods",
    "open_source",
    "propose_policy",
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


def _root() -> Comparator:
    from .root import RootComparator

    return RootComparator()


def _text() -> Comparator:
    from .text import TextComparator

    return TextComparator()


def _csv() -> Comparator:
    from .csv import CsvComparator

    return CsvComparator()


def _json() -> Comparator:
    from .json import JsonComparator

    return JsonComparator()


def _image() -> Comparator:
    from .image import ImageComparator

    return ImageComparator()


def _is_root(head: bytes) -> bool:
    return head[:4] == b"root"


def _is_image(head: bytes) -> bool:
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))


def _is_json(head: bytes) -> bool:
    from .json import is_json

    return is_json(head)


def _is_csv(head: bytes) -> bool:
    from .csv import is_csv

    return is_csv(head)


def _csv_defaults(head: bytes) -> dict[str, Any]:
    from .csv import csv_defaults

    return csv_defaults(head)


def _is_text(head: bytes) -> bool:
    from .text import is_text

    return is_text(head)


# Sniffs are tried in this order: binary formats by their signature first, then the text
# formats from the most to the least specific.
register_comparator(ComparatorEntry("bytes", "bytes", None, _bytes))
register_comparator(
    ComparatorEntry(
        "hdf5",
        "HDF5 content",
        _is_hdf5,
        _hdf5,
        equivalent_note="object modification times and storage layout are not content",
        media_types=("application/x-hdf5",),
    )
)
register_comparator(
    ComparatorEntry(
        "root",
        "ROOT content",
        _is_root,
        _root,
        equivalent_note="times, UUIDs, file names, cycle numbers and basket/compression layout "
        "are not content",
    )
)
register_comparator(
    ComparatorEntry(
        "image",
        "image content",
        _is_image,
        _image,
        equivalent_note="metadata and encoding are not content",
        media_types=("image/png", "image/jpeg"),
    )
)
register_comparator(
    ComparatorEntry(
        "json",
        "JSON content",
        _is_json,
        _json,
        equivalent_note="member order and number spelling are not content",
        media_types=("application/json",),
    )
)
register_comparator(
    ComparatorEntry(
        "csv",
        "CSV content",
        _is_csv,
        _csv,
        equivalent_note="number spelling is not content",
        defaults=_csv_defaults,
        media_types=("text/csv", "text/tab-separated-values"),
    )
)
register_comparator(ComparatorEntry("text", "text", _is_text, _text, media_types=("text/plain",)))
