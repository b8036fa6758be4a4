"""External blobs (format 1.3, spec/format.md §5.4): data sealed by reference.

The signed manifest records an external blob's digest, size, media type and URLs; its bytes
stay where they live (a web server, S3, XRootD). Packing hashes the file without storing it
(:class:`Externals`); reading fetches it into a local store keyed by digest
(``$CAPSA_CACHE/blobs/sha256/<hex>``), checking size and SHA-256 before the file gets its
name there, so whatever reads from the store reads verified bytes (:func:`materialise`);
verification checks that every reference is reachable with the right size, and with ``deep``
its digest (:func:`check_external`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._internal.atomic import atomic_output
from .._internal.fs import ConfinedPath
from ..errors import Error, IntegrityError, NotFoundError, UsageError
from ..format.digest import format_digest, parse_digest
from ..format.manifest import EXTERNAL_SCHEMES, Blob, Manifest
from ..format.source import LocalFile
from ..format.zip64 import ZipEntry
from ..storage import is_url, open_source
from .reader import MemberFile

__all__ = [
    "ExternalFile",
    "ExternalProblem",
    "Externals",
    "check_external",
    "external_paths",
    "materialise",
    "parse_rule",
    "store_path",
]

_CHUNK = 8 << 20


def parse_rule(text: str) -> tuple[str, str]:
    """``GLOB=URL_PREFIX`` (``capsa pack --external``) as (glob, prefix)."""
    glob, sep, prefix = text.partition("=")
    scheme = prefix.split("://")[0].lower() if is_url(prefix) else ""
    authority = prefix.split("://", 1)[-1].split("/", 1)[0]
    if not sep or not glob or scheme not in EXTERNAL_SCHEMES or "@" in authority:
        raise UsageError(
            f"--external wants GLOB=URL_PREFIX with an {'/'.join(EXTERNAL_SCHEMES)} URL "
            f"and no credentials in it, got {text!r}",
            hint="e.g. --external 'raw/*.h5=https://data.example.org/run42/'",
        )
    return glob, prefix


def _fixed_dir(glob: str) -> str:
    """The part of ``glob`` before its first wildcard, up to the last '/': what the URL
    prefix stands for."""
    cut = min((i for i, c in enumerate(glob) if c in "*?["), default=len(glob))
    return glob[: glob.rfind("/", 0, cut) + 1]


class Externals:
    """Which bundle paths are external (first the rules' order, every matching rule adds a
    URL: mirrors), and their blobs once hashed."""

    def __init__(self, rules: Sequence[tuple[str, str]]) -> None:
        self.rules = list(rules)
        self.blobs: dict[str, Blob] = {}

    def urls_for(self, logical: str) -> tuple[str, ...]:
        out = []
        for glob, prefix in self.rules:
            if fnmatch.fnmatchcase(logical, glob):
                fixed = _fixed_dir(glob)
                out.append(prefix + logical[len(fixed) :])
        return tuple(out)

    def add(self, p: Path | ConfinedPath, logical: str, urls: tuple[str, ...]) -> tuple[str, int]:
        """Hash the file at ``p`` (its bytes are not stored); return (digest, st_mode)."""
        from .writer import _media_type

        path = p.root / p.rel if isinstance(p, ConfinedPath) else p
        sha = hashlib.sha256()
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(64)
            sha.update(head)
            size = len(head)
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
        digest = format_digest(sha.hexdigest())
        old = self.blobs.get(digest)
        merged = tuple(dict.fromkeys((*(old.urls or ()), *urls))) if old else urls
        self.blobs[digest] = Blob(
            size=size,
            stored_size=0,
            encoding="external",
            media_type=_media_type(head, logical),
            urls=merged,
        )
        return digest, st.st_mode


def store_root() -> Path:
    """Where fetched blobs are kept: ``$CAPSA_CACHE/blobs`` (else the XDG cache), beside the
    runtimes' unpacked images (containers/runtime/cache.py picks the same directory)."""
    env = os.environ.get("CAPSA_CACHE")
    base = (
        Path(env)
        if env
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "capsa"
    )
    return base / "blobs"


def store_path(digest: str) -> Path:
    return store_root() / "sha256" / parse_digest(digest)


def external_paths(manifest: Manifest) -> list[str]:
    return [p for p, f in manifest.files.items() if manifest.blobs[f.digest].encoding == "external"]


def _download(url: str, blob: Blob, digest: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest``, named only once size and digest match."""
    source = open_source(url, what="external blob")
    try:
        if source.size != blob.size:
            raise IntegrityError(f"size {source.size}, the manifest says {blob.size}", where=url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with atomic_output(dest, force=True) as out:
            for off in range(0, blob.size, _CHUNK):
                chunk = source.read_at(off, min(_CHUNK, blob.size - off))
                sha.update(chunk)
                out.write(chunk)
            found = format_digest(sha.hexdigest())
            if found != digest:
                raise IntegrityError(
                    "digest mismatch: the file at this URL is not the one sealed",
                    where=url,
                    expected=digest,
                    found=found,
                )
    finally:
        source.close()


def materialise(digest: str, blob: Blob, where: str) -> Path:
    """The verified local copy of external blob ``digest``: from the store, else fetched from
    its URLs in order. Every URL failing is one error naming each failure."""
    dest = store_path(digest)
    if dest.is_file() and dest.stat().st_size == blob.size:
        return dest
    failures = []
    for url in blob.urls or ():
        try:
            _download(url, blob, digest, dest)
            return dest
        except Error as e:
            failures.append(e)
    kind = (
        IntegrityError if any(isinstance(e, IntegrityError) for e in failures) else (NotFoundError)
    )
    raise kind(
        "external file could not be fetched: "
        + "; ".join(f"{e.where}: {e.what}" if e.where else e.what for e in failures),
        where=where,
        hint="`capsa verify --external` checks every reference",
    )


class ExternalFile(MemberFile):
    """A member whose blob is external, read from its verified copy in the store."""

    def __init__(self, path: Path, size: int, *, where: str) -> None:
        io.RawIOBase.__init__(self)
        self._local = LocalFile(path, what="stored external blob")
        self._bundle: Any = self._local
        self._entry = ZipEntry(str(path), 0, 0, size, 0, False)
        self._size, self._where, self._pos = size, where, 0
        self._crc, self._crc_at = 0, 0
        self._index = None

    def crc_matches(self) -> bool | None:
        """No ZIP entry, so no CRC: the digest was checked on the way into the store."""
        return None

    def close(self) -> None:
        if not self.closed:
            self._local.close()
        super().close()


@dataclass(frozen=True)
class ExternalProblem:
    path: str
    url: str
    what: str
    integrity: bool


def check_external(
    manifest: Manifest, *, deep: bool = False, jobs: int = 4
) -> tuple[int, list[ExternalProblem]]:
    """Check every URL of every external file: reachable with the manifest's size (and with
    ``deep`` the digest, by reading it all). Returns (references checked, problems)."""
    work = [
        (path, f.digest, manifest.blobs[f.digest], url)
        for path, f in sorted(manifest.files.items())
        if manifest.blobs[f.digest].encoding == "external"
        for url in manifest.blobs[f.digest].urls or ()
    ]

    def one(item: tuple[str, str, Blob, str]) -> ExternalProblem | None:
        path, digest, blob, url = item
        try:
            source = open_source(url, what="external blob")
        except Error as e:
            return ExternalProblem(path, url, e.what, isinstance(e, IntegrityError))
        try:
            if source.size != blob.size:
                return ExternalProblem(
                    path, url, f"size {source.size}, the manifest says {blob.size}", True
                )
            if deep:
                sha = hashlib.sha256()
                for off in range(0, blob.size, _CHUNK):
                    sha.update(source.read_at(off, min(_CHUNK, blob.size - off)))
                if format_digest(sha.hexdigest()) != digest:
                    return ExternalProblem(path, url, "digest mismatch", True)
        except Error as e:
            return ExternalProblem(path, url, e.what, isinstance(e, IntegrityError))
        finally:
            source.close()
        return None

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        problems = [p for p in pool.map(one, work) if p is not None]
    return len(work), problems
