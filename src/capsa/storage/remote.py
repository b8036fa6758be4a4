"""A remote file as a :class:`~capsa.format.source.ByteSource`: range reads through a transport
(HTTP, S3, XRootD), a small block cache, the tail read ahead, retries with backoff.

The first request of a source reads the size, a validator (ETag, Last-Modified, mtime) and the
last :data:`TAIL` bytes at once, so a bundle's end records and (usually) its central directory
cost no second request; small reads go through blocks of :data:`BLOCK` bytes kept in a bounded
LRU, so h5py's many small metadata reads become a few range requests; large reads (verify's
streaming) bypass the cache. Transports say which failures are worth retrying
(:class:`Transient`); everything else is a capsa error at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import Error, ExitCode, FormatError

__all__ = ["BLOCK", "TAIL", "Head", "RemoteError", "RemoteSource", "Transient", "Transport"]

BLOCK = 256 << 10
CACHE_BLOCKS = 64  # 16 MiB at most per open source
TAIL = 64 << 10
DIRECT = 2 << 20  # reads at least this large are fetched as they are, not cached
RETRIES = 4
BACKOFF = 0.2  # seconds, doubled per retry

_T = TypeVar("_T")


class RemoteError(Error):
    """A remote store refused or failed a request (after retries where that helps)."""

    exit_code = ExitCode.IO


class Transient(Exception):
    """A failure worth retrying: 5xx, 429, a reset connection, a truncated body."""


@dataclass(frozen=True)
class Head:
    """What the first request learns: the size, a validator and the last bytes."""

    size: int
    tail: bytes
    validator: str | None


class Transport(Protocol):
    """One remote file. ``open`` reads its size and last ``tail`` bytes; ``fetch`` exactly
    ``n`` bytes at ``offset`` of the same version of the file (an ETag / mtime changed since
    ``open`` is an IntegrityError). Both raise :class:`Transient` or a capsa error."""

    url: str

    def open(self, tail: int) -> Head: ...

    def fetch(self, offset: int, n: int) -> bytes: ...

    def close(self) -> None: ...


class RemoteSource:
    """A ByteSource over a :class:`Transport`; thread-safe (the cache is locked, fetches are
    not serialised). ``requests`` and ``bytes_fetched`` count what went over the wire."""

    def __init__(
        self, transport: Transport, *, retries: int = RETRIES, backoff: float = BACKOFF
    ) -> None:
        self._t = transport
        self._retries, self._backoff = retries, backoff
        self._lock = threading.Lock()
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self.requests = 0
        self.bytes_fetched = 0
        try:
            head = self._retry(lambda: transport.open(TAIL), "opening")
        except BaseException:
            transport.close()
            raise
        self._size = head.size
        self.validator = head.validator
        self._tail = head.tail
        self._tail_at = head.size - len(head.tail)

    @property
    def name(self) -> str:
        return self._t.url

    @property
    def size(self) -> int:
        return self._size

    def local_extent(self) -> tuple[Path, int] | None:
        return None

    def close(self) -> None:
        self._t.close()
        with self._lock:
            self._blocks.clear()

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self._size:
            raise FormatError(f"truncated: wanted {n} bytes at offset {offset}", where=self.name)
        if n == 0:
            return b""
        if offset >= self._tail_at:
            return self._tail[offset - self._tail_at : offset - self._tail_at + n]
        if n >= DIRECT:
            return self._fetch(offset, n)
        first, last = offset // BLOCK, (offset + n - 1) // BLOCK
        with self._lock:
            have = {}
            for i in range(first, last + 1):
                block = self._blocks.get(i)
                if block is not None:
                    self._blocks.move_to_end(i)
                    have[i] = block
        i = first
        while i <= last:  # each run of missing blocks is one request
            if i in have:
                i += 1
                continue
            j = i
            while j + 1 <= last and j + 1 not in have:
                j += 1
            start, end = i * BLOCK, min((j + 1) * BLOCK, self._size)
            data = self._fetch(start, end - start)
            for k in range(i, j + 1):
                have[k] = data[(k - i) * BLOCK : (k - i + 1) * BLOCK]
            with self._lock:
                for k in range(i, j + 1):
                    self._blocks[k] = have[k]
                    self._blocks.move_to_end(k)
                while len(self._blocks) > CACHE_BLOCKS:
                    self._blocks.popitem(last=False)
            i = j + 1
        joined = b"".join(have[k] for k in range(first, last + 1))
        skip = offset - first * BLOCK
        return joined[skip : skip + n]

    def _fetch(self, offset: int, n: int) -> bytes:
        data = self._retry(lambda: self._t.fetch(offset, n), f"reading {n} bytes at {offset}")
        if len(data) != n:  # a transport's own check missed it: never return fewer bytes
            raise RemoteError(f"server sent {len(data)} bytes for a range of {n}", where=self.name)
        with self._lock:
            self.bytes_fetched += n
        return data

    def _retry(self, call: Callable[[], _T], doing: str) -> _T:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            with self._lock:
                self.requests += 1
            try:
                return call()
            except Transient as e:
                if attempt == self._retries:
                    raise RemoteError(
                        f"{doing} failed after {attempt + 1} tries: {e}",
                        where=self.name,
                        hint="the server or the network is failing; try again later",
                    ) from e
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")
