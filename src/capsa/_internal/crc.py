"""CRC-32 for ZIP entries. zlib-ng's crc32 (PCLMULQDQ/VPCLMULQDQ) runs about 4-5x faster than
CPython's zlib here (10 GB/s against 2.3 GB/s measured); the values are identical."""

from __future__ import annotations

try:
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - zlib-ng is a dependency; stay correct without it
    from zlib import crc32

__all__ = ["crc32"]
