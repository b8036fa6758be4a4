"""``capsa.Bundle``: an open bundle with everything a reader does to it — members, verification
and extraction — on top of :class:`~capsa.bundle.reader.BundleReader`."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from ..format.source import ByteSource
from ..signing.keys import PublicKey
from .external import ExternalFile, materialise
from .extract import extract_bundle
from .reader import BundleReader, MemberFile
from .verify import VerifyReport, verify_bundle

__all__ = ["Bundle", "open_bundle"]


class Bundle(BundleReader):
    """An open bundle. Use :func:`capsa.open`; close it (or use ``with``) when done."""

    def open_member(self, path: str) -> MemberFile:
        """A seekable, read-only binary file over a member's bytes; an external member's
        (format 1.3) are fetched into the local store and checked first."""
        f = self.manifest.files.get(path)
        if f is not None and self.manifest.blobs[f.digest].encoding == "external":
            return self.open_blob(f.digest, where=f"{self.path}: {path}")
        return super().open_member(path)

    def open_blob(self, digest: str, *, where: str | None = None) -> MemberFile:
        blob = self.manifest.blobs.get(digest)
        if blob is not None and blob.encoding == "external":
            where = where or f"{self.path}: {digest}"
            return ExternalFile(materialise(digest, blob, where), blob.size, where=where)
        return super().open_blob(digest)

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
        external: bool = False,
        blobs: Collection[str] | None = None,
    ) -> VerifyReport:
        """Check the bundle at ``level`` (spec/format.md §10.2, spec/signing.md §5).

        ``require_signature`` defaults to True when ``keys`` are given; ``deep`` decompresses
        every zstd-seekable blob and checks its content digest too. ``threshold``: valid
        signatures by at least that many distinct trusted keys; ``require_all``: by every one.
        ``external``: also check that every external blob's URLs answer with its size (with
        ``deep``: its digest). ``blobs``: check the fixity of only these (structure and
        signatures are always checked whole).
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
            external=external,
            blobs=blobs,
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
