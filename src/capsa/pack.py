"""Writing bundles: stream files into blobs, store identical content once, seal with a manifest.

Hashing, compression and CRC run in parallel threads (all three release the GIL), in fixed-size
batches, so memory stays bounded whatever the input size and the output bytes are deterministic.
"""

from __future__ import annotations

import fnmatch
import hashlib
import mimetypes
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, get_args

from pydantic import TypeAdapter, ValidationError

from . import zstdseek
from ._atomic import atomic_output
from ._crc import crc32
from ._internal.fs import ConfinedPath, open_input
from ._layout import MANIFEST_ENTRY, MIMETYPE, MIMETYPE_ENTRY, blob_entry
from ._progress import make_progress
from ._zip import ZipWriter
from .digest import format_digest
from .errors import IntegrityError, NotFoundError, UsageError
from .keys import PrivateKey
from .manifest import (
    FORMAT_VERSION,
    Author,
    Blob,
    BundleMeta,
    Encoding,
    FileEntry,
    Identifier,
    LogicalPath,
    Manifest,
    Role,
    Step,
    canonical_json,
    explain,
    file_dir_conflict,
)
from .signing import envelope_for, signature_entry

ROLES: tuple[str, ...] = get_args(Role)

__all__ = ["IDENTITY_RATIO", "SAMPLE_BYTES", "SAMPLE_FRAMES", "PackResult", "collect_paths", "pack"]

SAMPLE_FRAMES = 8
"""Frames probed up front to decide a blob's encoding (spec §5.3)."""
SAMPLE_BYTES = 256 << 10
"""Bytes compressed from the start of each probed frame (spec §5.3)."""
IDENTITY_RATIO = 0.9
"""Store as identity unless the probes shrink below this fraction (spec §5.3)."""
BATCH_FRAMES = 8
IDENTITY_CHUNK = 8 << 20
_NAME_LEN = {
    "identity": len(blob_entry("0" * 64, "identity")),
    "zstd-seekable": len(blob_entry("0" * 64, "zstd-seekable")),
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: Manifest
    bundle_id: str
    size: int


def _role_for(logical: str, roles: Sequence[tuple[str, str]], default: str) -> str:
    for pattern, role in roles:
        if fnmatch.fnmatchcase(logical, pattern):
            return role
    return default


def collect_paths(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """Map logical bundle paths to files: a file by its name, a directory's files under its name."""
    out: dict[str, Path] = {}

    def add(logical: str, p: Path) -> None:
        if logical in out:
            raise UsageError(
                f"two inputs map to the same bundle path {logical!r}",
                where=str(p),
                hint="rename one or pack from a common parent directory",
            )
        out[logical] = p

    for item in paths:
        p = Path(item)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise NotFoundError("no such file or directory", where=str(p)) from None
        if stat.S_ISREG(st.st_mode):
            add(p.resolve().name if p.name in ("", ".", "..") else p.name, p)
        elif stat.S_ISDIR(st.st_mode):
            base = p.resolve().name
            for root, dirs, files in os.walk(p):
                rootp = Path(root)
                for d in dirs:
                    if (rootp / d).is_symlink():
                        raise UsageError(
                            "symbolic link to a directory is not followed",
                            where=str(rootp / d),
                            hint="name its target explicitly",
                        )
                dirs.sort()
                for name in sorted(files):
                    fp = rootp / name
                    if fp.is_symlink():
                        raise UsageError(
                            "symbolic link is not followed",
                            where=str(fp),
                            hint="name its target explicitly",
                        )
                    if not fp.is_file():
                        raise UsageError("not a regular file", where=str(fp))
                    rel = fp.relative_to(p).as_posix()
                    add(f"{base}/{rel}" if base else rel, fp)
        else:
            raise UsageError("not a regular file or directory", where=str(p))
    return out


_LOGICAL_PATH: TypeAdapter[str] = TypeAdapter(LogicalPath)


def _check_logical_paths(logicals: Sequence[str]) -> None:
    """Refuse, before anything is written, paths the manifest would reject (spec §2, §7.4)."""
    for logical in logicals:
        try:
            _LOGICAL_PATH.validate_python(logical)
        except ValidationError as e:
            raise UsageError(
                f"not a valid bundle path: {explain(e.errors()[0])}",
                where=repr(logical),
                hint="bundle paths are UTF-8 (spec/format.md §2); rename the file",
            ) from None
    conflict = file_dir_conflict(logicals)
    if conflict is not None:
        raise UsageError(f"bundle path {conflict!r} is both a file and a directory")


def _same_file(p: Path, st: os.stat_result) -> bool:
    try:
        other = p.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _media_type(head: bytes, logical: str) -> str:
    if head.startswith(_HDF5_MAGIC):
        return "application/x-hdf5"
    if head[32:41] == b"SIF_MAGIC":
        return "application/vnd.sylabs.sif"
    guess, _ = mimetypes.guess_type(logical, strict=False)
    return guess or "application/octet-stream"


class _Packer:
    def __init__(self, out: BinaryIO, level: int, progress: object) -> None:
        self.zip = ZipWriter(out)
        self.level = level
        self.progress = progress
        self.blobs: dict[str, Blob] = {}
        self.local = threading.local()
        self.compress_pool = ThreadPoolExecutor(2, thread_name_prefix="capsa-zstd")
        self.hash_pool = ThreadPoolExecutor(1, thread_name_prefix="capsa-sha")
        self.stored_pool = ThreadPoolExecutor(1, thread_name_prefix="capsa-sha-stored")

    def close(self) -> None:
        self.compress_pool.shutdown()
        self.hash_pool.shutdown()
        self.stored_pool.shutdown()

    def _compress(self, data: bytes | memoryview) -> bytes:
        cctx = getattr(self.local, "cctx", None)
        if cctx is None:
            cctx = self.local.cctx = zstdseek.new_compressor(self.level)
        return cctx.compress(data)

    def _sample(self, f: BinaryIO, size: int) -> Encoding:
        """Compress the start of up to SAMPLE_FRAMES evenly spread frames; choose the encoding
        (spec/format.md §5.3). Probes are small so that incompressible data costs little."""
        if size == 0:
            return "identity"
        n = -(-size // zstdseek.FRAME_SIZE)
        k = min(n, SAMPLE_FRAMES)
        picks = sorted({(i * (n - 1)) // max(k - 1, 1) for i in range(k)})
        raw = []
        for i in picks:
            f.seek(i * zstdseek.FRAME_SIZE)
            raw.append(f.read(SAMPLE_BYTES))
        comp_total = sum(len(c) for c in self.compress_pool.map(self._compress, raw))
        f.seek(0)
        return "identity" if comp_total > IDENTITY_RATIO * sum(map(len, raw)) else "zstd-seekable"

    def add_file(self, path: Path | ConfinedPath, logical: str) -> tuple[str, str, int]:
        """Store one file's content (once) and return (digest, media type, st_mode)."""
        with os.fdopen(open_input(path), "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            head = f.read(64)
            f.seek(0)
            encoding = self._sample(f, size)
            start = self.zip.begin_streamed(_NAME_LEN[encoding])
            sha = hashlib.sha256()
            stored_sha = None
            if encoding == "identity":
                crc, n = self._stream_identity(f, sha)
            else:
                stored_sha = hashlib.sha256()
                crc, n = self._stream_zstd(f, sha, stored_sha)
            if n != size:
                raise IntegrityError(
                    "file changed size while being packed",
                    where=str(path),
                    hint="pack it again once nothing writes to it",
                )
        hexd = sha.hexdigest()
        digest = format_digest(hexd)
        if digest in self.blobs:
            self.zip.abandon_streamed()
        else:
            stored = self.zip.offset - start
            self.zip.end_streamed(blob_entry(hexd, encoding), stored, crc)
            self.blobs[digest] = Blob(
                size=size,
                stored_size=stored,
                encoding=encoding,
                media_type=_media_type(head, logical),
                stored_digest=format_digest(stored_sha.hexdigest()) if stored_sha else None,
            )
        return digest, self.blobs[digest].media_type, st.st_mode

    def _stream_identity(self, f: BinaryIO, sha: hashlib._Hash) -> tuple[int, int]:
        crc = total = 0
        pending: deque[Future[None]] = deque()
        while chunk := f.read(IDENTITY_CHUNK):
            pending.append(self.hash_pool.submit(sha.update, chunk))
            crc = crc32(chunk, crc)
            self.zip.f.write(chunk)
            total += len(chunk)
            self.progress.update(len(chunk))  # type: ignore[attr-defined]
            while len(pending) > 1:
                pending.popleft().result()
        for p in pending:
            p.result()
        return crc, total

    def _stream_zstd(
        self, f: BinaryIO, sha: hashlib._Hash, stored_sha: hashlib._Hash
    ) -> tuple[int, int]:
        """Compress frames on two threads while the content hash, the stored-bytes hash (in
        order, on their own threads) and CRC + write (here) proceed; a few batches in flight."""
        crc = total = 0
        table: list[tuple[int, int, int]] = []
        inflight: deque[tuple[Future[None], list[tuple[int, Future[bytes]]]]] = deque()
        stored_done: deque[Future[None]] = deque()

        def drain_one() -> None:
            nonlocal crc
            hashed, frames = inflight.popleft()
            for raw_len, fut in frames:
                frame = fut.result()
                stored_done.append(self.stored_pool.submit(stored_sha.update, frame))
                crc = crc32(frame, crc)
                self.zip.f.write(frame)
                table.append((len(frame), raw_len, zstdseek.frame_checksum(frame)))
                self.progress.update(raw_len)  # type: ignore[attr-defined]
            hashed.result()
            while len(stored_done) > 2 * BATCH_FRAMES:
                stored_done.popleft().result()

        while batch := f.read(zstdseek.FRAME_SIZE * BATCH_FRAMES):
            view = memoryview(batch)
            frames = [
                (
                    len(view[off : off + zstdseek.FRAME_SIZE]),
                    self.compress_pool.submit(
                        self._compress, view[off : off + zstdseek.FRAME_SIZE]
                    ),
                )
                for off in range(0, len(batch), zstdseek.FRAME_SIZE)
            ]
            inflight.append((self.hash_pool.submit(sha.update, batch), frames))
            total += len(batch)
            while len(inflight) > 1:
                drain_one()
        while inflight:
            drain_one()
        seek = zstdseek.encode_seek_table(table)
        for fut in stored_done:
            fut.result()
        stored_sha.update(seek)
        crc = crc32(seek, crc)
        self.zip.f.write(seek)
        return crc, total


def created_timestamp(created: str | None) -> str | None:
    """``created`` if given, else SOURCE_DATE_EPOCH as UTC, else None: never the clock."""
    if created is not None:
        return created
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sde)))
        except (ValueError, OverflowError) as e:
            raise UsageError(f"SOURCE_DATE_EPOCH is not an integer: {sde!r}") from e
    return None


def _meta(
    title: str,
    description: str,
    authors: Sequence[str | Author],
    license: str | None,
    identifiers: Sequence[tuple[str, str]],
    created: str | None,
) -> BundleMeta:
    return BundleMeta(
        title=title,
        description=description,
        authors=tuple(a if isinstance(a, Author) else Author(name=a) for a in authors),
        license=license,
        identifiers=tuple(Identifier(scheme=s, value=v) for s, v in identifiers),
        created=created,
    )


def pack(
    output: str | os.PathLike[str],
    paths: Iterable[str | os.PathLike[str]] | None = None,
    *,
    files: dict[str, str | os.PathLike[str] | ConfinedPath] | None = None,
    title: str = "",
    description: str = "",
    authors: Sequence[str | Author] = (),
    license: str | None = None,
    identifiers: Sequence[tuple[str, str]] = (),
    created: str | None = None,
    roles: Sequence[tuple[str, str]] = (),
    default_role: str = "other",
    steps: Sequence[Step] = (),
    sign: Sequence[PrivateKey] = (),
    expected: dict[str, str] | None = None,
    level: int = zstdseek.LEVEL,
    force: bool = False,
    progress: bool | None = None,
) -> PackResult:
    """Pack files and directories into a bundle at ``output`` (spec/format.md).

    ``paths`` are mapped to bundle paths by :func:`collect_paths`; ``files`` maps bundle paths to
    files explicitly. ``roles`` is a list of (glob over bundle paths, role), first match wins.
    Each key in ``sign`` adds a signature over the manifest (spec/signing.md). ``expected`` maps
    bundle paths to the digests they must have (recorded steps): a file that changed since is
    refused with IntegrityError while it is packed, so nothing is hashed twice.
    The bundle is written to a temporary file beside ``output`` and renamed into place; an
    existing ``output`` is only replaced with ``force``.
    """
    mapping: dict[str, Path | ConfinedPath] = dict(collect_paths(paths or []))
    if os.path.exists(output):
        # Packing the directory that holds the old bundle must not pack the old bundle.
        out_stat = os.stat(output)
        mapping = {
            k: p
            for k, p in mapping.items()
            if isinstance(p, ConfinedPath) or not _same_file(p, out_stat)
        }
    for logical, p in (files or {}).items():
        if logical in mapping:
            raise UsageError(f"bundle path {logical!r} given twice")
        mapping[logical] = p if isinstance(p, ConfinedPath) else Path(p)
    if not mapping:
        raise UsageError("nothing to pack", hint="name at least one file or directory")
    for _, role in roles:
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if default_role not in ROLES:
        raise UsageError(f"unknown role {default_role!r}", hint=f"use one of {', '.join(ROLES)}")
    try:
        meta = _meta(title, description, authors, license, identifiers, created_timestamp(created))
    except ValidationError as e:
        raise UsageError(f"invalid bundle metadata: {e.errors()[0]['msg']}") from e
    ordered = sorted(mapping.items(), key=lambda kv: kv[0].encode())
    _check_logical_paths(list(mapping))
    total = 0
    for _, p in ordered:
        try:
            total += os.stat(p.root / p.rel if isinstance(p, ConfinedPath) else p).st_size
        except FileNotFoundError as e:
            raise NotFoundError(f"cannot read: {e.strerror}", where=str(p)) from e
    bar = make_progress("pack", total, progress)
    entries: dict[str, FileEntry] = {}
    with atomic_output(output, force=force) as out:
        packer = _Packer(out, level, bar)
        try:
            packer.zip.add_bytes(MIMETYPE_ENTRY, MIMETYPE)
            for logical, p in ordered:
                try:
                    digest, _, st_mode = packer.add_file(p, logical)
                    mode = "0755" if st_mode & 0o111 else "0644"
                except FileNotFoundError as e:
                    # Only a vanished input is "not found"; any other OSError (permission denied,
                    # disk full while writing the bundle) stays an I/O error (exit 10).
                    raise NotFoundError(f"cannot read: {e.strerror}", where=str(p)) from e
                want = (expected or {}).get(logical)
                if want is not None and want != digest:
                    raise IntegrityError(
                        f"{logical} changed since it was recorded",
                        where=str(p),
                        expected=want,
                        found=digest,
                        hint="re-run the step that made it",
                    )
                entries[logical] = FileEntry(
                    digest=digest,
                    role=_role_for(logical, roles, default_role),  # type: ignore[arg-type]
                    mode=mode,  # type: ignore[arg-type]
                )
            manifest = Manifest(
                capsa=FORMAT_VERSION,
                bundle=meta,
                blobs=dict(sorted(packer.blobs.items())),
                files=entries,
                steps=tuple(steps),
            )
            data = canonical_json(manifest)
            packer.zip.add_bytes(MANIFEST_ENTRY, data)
            signers = {signature_entry(k.keyid): k for k in sign}  # one slot per key
            for name, key in sorted(signers.items()):
                packer.zip.add_bytes(name, envelope_for(data, key))
            packer.zip.close()
        finally:
            packer.close()
            bar.close()
        size = out.tell()
    return PackResult(Path(output), manifest, format_digest(hashlib.sha256(data).hexdigest()), size)
