"""The bytes the specification defines (spec/format.md): digests, byte sources, the ZIP64
profile, the Zstandard seekable profile, entry names, and the manifest's models and canonical
encoding. Imports nothing from the rest of capsa but its errors."""

from __future__ import annotations

from .manifest import FORMAT_VERSION, MEDIA_TYPE, Manifest

__all__ = ["FORMAT_VERSION", "MEDIA_TYPE", "Manifest"]
