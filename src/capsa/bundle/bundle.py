"""``capsa.Bundle``: an open bundle with everything a reader does to it — members, verification
and extraction — on top of :class:`~capsa.bundle.reader.BundleReader`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..format.source import ByteSource
from ..signing.keys import PublicKey
from .extract import extract_bundle
from .reader import BundleReader
from .verify import VerifyReport, verify_bundle

__all__ = ["Bundle", "open_bundle"]


class Bundle(BundleReader):
    """An open bundle. Use :func:`capsa.open`; close it (or use ``with``) when done."""

    def verify(
        self,
        level: Literal["structure", "fixity", "full"] = "full",
        *,
        keys: Sequence[PublicKey] = (),
        require_signature: bool | None = None,
        jobs: int = 2,
        progress: bool | None = None,
        deep: bool = False,
        threshold: int | None = None,
        require_all: bool = False,
    ) -> VerifyReport:
        """Check the bundle at ``level`` (spec/format.md §10.2, spec/signing.md §5).

        ``require_signature`` defaults to True when ``keys`` are given; ``deep`` decompresses
        every zstd-seekable blob and checks its content digest too. ``threshold``: valid
        signatures by at least that many distinct trusted keys; ``require_all``: by every one.
        """
        return verify_bundle(
            self,
            level=level,
            keys=keys,
            require_signature=require_signature,
            jobs=jobs,
            progress=progress,
            deep=deep,
            threshold=threshold,
            require_all=require_all,
        )

    def extract(
        self,
        dest: str | os.PathLike[str],
        paths: list[str] | None = None,
        *,
        force: bool = False,
        progress: bool | None = None,
    ) -> list[Path]:
        """Extract all members, or those at or below ``paths``, into ``dest`` (spec §10.3)."""
        return extract_bundle(self, dest, paths, force=force, progress=progress)


def open_bundle(target: str | os.PathLike[str] | ByteSource) -> Bundle:
    """Open and check a bundle's structure (spec/format.md §10.1). Exported as ``capsa.open``.

    ``target`` is a path, a URL of a registered storage scheme, or a byte source."""
    return Bundle(target)
