"""The bundle writer: stream files into blobs, store identical content once (spec/format.md §5).

Hashing, compression and CRC run in parallel threads (all three release the GIL), in fixed-size
batches read into a few reused buffers, so memory stays bounded whatever the input size and the
output bytes are deterministic. The written bytes are synced to disk in the background while
packing goes on, so the final fsync has little left to wait for.
:func:`capsa.pack` (``capsa.bundle.pack``) drives its ``_Packer``.
"""

from __future__ import annotations

import hashlib
import itertools
import mimetypes
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from .._internal.crc import crc32
from .._internal.fs import ConfinedPath, open_input
from ..errors import IntegrityError
from ..format import zstdseek
from ..format.digest import format_digest
from ..format.layout import blob_entry
from ..format.manifest import Blob, Encoding
from ..format.zip64 import ZipWriter

__all__ = ["FAST_SLACK", "IDENTITY_RATIO", "SAMPLE_BYTES", "SAMPLE_FRAMES"]

SAMPLE_FRAMES = 8
"""Frames probed up front to decide a blob's encoding (spec §5.3)."""
SAMPLE_BYTES = 256 << 10
"""Bytes compressed from the start of each probed frame (spec §5.3)."""
IDENTITY_RATIO = 0.9
"""Store as identity unless the probes shrink below this fraction (spec §5.3)."""
FAST_SLACK = 1.05
"""Compress with zstdseek.FAST while its probes are at most this much larger than at the level
asked for (spec §5.3): the bundle then stays within 5 % of the level's size, faster."""
BATCH_FRAMES = 8
IDENTITY_CHUNK = 8 << 20
SYNC_EVERY = 64 << 20
"""Bytes written between background fdatasync calls (never more than one in flight)."""
_NAME_LEN = {
    "identity": len(blob_entry("0" * 64, "identity")),
    "zstd-seekable": len(blob_entry("0" * 64, "zstd-seekable")),
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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
        self.sync_pool = ThreadPoolExecutor(1, thread_name_prefix="capsa-sync")
        self._sync: Future[None] | None = None
        self._written = self._synced = 0
        # Two read buffers suffice (the hash of one chunk may still run while the next is read);
        # a third keeps that true should the pipelines below ever keep one more chunk in flight.
        self._identity_bufs = [bytearray(0)] * 3
        self._batch_bufs = [bytearray(0)] * 3

    def close(self) -> None:
        self.compress_pool.shutdown()
        self.hash_pool.shutdown()
        self.stored_pool.shutdown()
        self.sync_pool.shutdown()

    def wait_synced(self) -> None:
        """Wait for the background sync; raise what it raised (a later fsync would not)."""
        if self._sync is not None:
            self._sync.result()

    def _wrote(self, n: int) -> None:
        """Count ``n`` bytes written; start a background fdatasync every SYNC_EVERY bytes."""
        self._written += n
        if self._written - self._synced < SYNC_EVERY:
            return
        if self._sync is not None:
            if not self._sync.done():
                return
            self._sync.result()
        self._synced = self._written
        self._sync = self.sync_pool.submit(os.fdatasync, self.zip.f.fileno())

    @staticmethod
    def _buffer(ring: list[bytearray], i: int, size: int) -> bytearray:
        if len(ring[i % len(ring)]) != size:
            ring[i % len(ring)] = bytearray(size)
        return ring[i % len(ring)]

    def _compress(self, data: bytes | memoryview, level: int) -> bytes:
        cctxs = getattr(self.local, "cctxs", None)
        if cctxs is None:
            cctxs = self.local.cctxs = {}
        cctx = cctxs.get(level)
        if cctx is None:
            cctx = cctxs[level] = zstdseek.new_compressor(level)
        return cctx.compress(data)

    def _probe(self, raw: list[bytes], level: int) -> int:
        return sum(len(c) for c in self.compress_pool.map(self._compress, raw, [level] * len(raw)))

    def _sample(self, f: BinaryIO, size: int) -> tuple[Encoding, int]:
        """Compress the start of up to SAMPLE_FRAMES evenly spread frames; choose the encoding
        and the compression setting (spec/format.md §5.3). Probes are small so that
        incompressible data costs little: the level asked for is only probed when the fast
        setting found the data compressible."""
        if size == 0:
            return "identity", self.level
        n = -(-size // zstdseek.FRAME_SIZE)
        k = min(n, SAMPLE_FRAMES)
        picks = sorted({(i * (n - 1)) // max(k - 1, 1) for i in range(k)})
        raw = []
        for i in picks:
            f.seek(i * zstdseek.FRAME_SIZE)
            raw.append(f.read(SAMPLE_BYTES))
        f.seek(0)
        fast = self._probe(raw, zstdseek.FAST)
        if fast > IDENTITY_RATIO * sum(map(len, raw)):
            return "identity", self.level
        if self.level <= 1 or fast <= FAST_SLACK * self._probe(raw, self.level):
            return "zstd-seekable", zstdseek.FAST if self.level > 1 else self.level
        return "zstd-seekable", self.level

    def add_file(self, path: Path | ConfinedPath, logical: str) -> tuple[str, str, int]:
        """Store one file's content (once) and return (digest, media type, st_mode)."""
        with os.fdopen(open_input(path), "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            head = f.read(64)
            f.seek(0)
            encoding, level = self._sample(f, size)
            start = self.zip.begin_streamed(_NAME_LEN[encoding])
            sha = hashlib.sha256()
            stored_sha = None
            if encoding == "identity":
                crc, n = self._stream_identity(f, sha)
            else:
                stored_sha = hashlib.sha256()
                crc, n = self._stream_zstd(f, sha, stored_sha, level)
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
        for i in itertools.count():
            buf = self._buffer(self._identity_bufs, i, IDENTITY_CHUNK)
            if not (n := f.readinto(buf)):  # type: ignore[attr-defined]
                break
            chunk = memoryview(buf)[:n]
            pending.append(self.hash_pool.submit(sha.update, chunk))
            crc = crc32(chunk, crc)
            self.zip.f.write(chunk)
            total += n
            self._wrote(n)
            self.progress.update(n)  # type: ignore[attr-defined]
            while len(pending) > 1:
                pending.popleft().result()
        for p in pending:
            p.result()
        return crc, total

    def _stream_zstd(
        self, f: BinaryIO, sha: hashlib._Hash, stored_sha: hashlib._Hash, level: int
    ) -> tuple[int, int]:
        """Compress frames on two threads while the content hash, the stored-bytes hash (in
        order, on their own threads) and CRC + write (here) proceed; a few batches in flight."""
        crc = total = 0
        table: list[tuple[int, int, int]] = []
        inflight: deque[tuple[Future[None], list[tuple[int, Future[bytes]]]]] = deque()
        stored_done: deque[Future[None]] = deque()
        size = zstdseek.FRAME_SIZE * BATCH_FRAMES

        def drain_one() -> None:
            nonlocal crc
            hashed, frames = inflight.popleft()
            for raw_len, fut in frames:
                frame = fut.result()
                stored_done.append(self.stored_pool.submit(stored_sha.update, frame))
                crc = crc32(frame, crc)
                self.zip.f.write(frame)
                self._wrote(len(frame))
                table.append((len(frame), raw_len, zstdseek.frame_checksum(frame)))
                self.progress.update(raw_len)  # type: ignore[attr-defined]
            hashed.result()
            while len(stored_done) > 2 * BATCH_FRAMES:
                stored_done.popleft().result()

        for i in itertools.count():
            buf = self._buffer(self._batch_bufs, i, size)
            if not (n := f.readinto(buf)):  # type: ignore[attr-defined]
                break
            view = memoryview(buf)[:n]
            frames = [
                (
                    len(view[off : off + zstdseek.FRAME_SIZE]),
                    self.compress_pool.submit(
                        self._compress, view[off : off + zstdseek.FRAME_SIZE], level
                    ),
                )
                for off in range(0, n, zstdseek.FRAME_SIZE)
            ]
            inflight.append((self.hash_pool.submit(sha.update, view), frames))
            total += n
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
