"""SHA-256 digests as capsa writes them: ``sha256:<64 lowercase hex>`` (spec/format.md §4)."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ..errors import FormatError

__all__ = [
    "DIGEST_RE",
    "copy_hashed",
    "format_digest",
    "parse_digest",
    "sha256_bytes",
    "sha256_file",
    "sha256_fileobj",
]

DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_CHUNK = 1 << 20
COPY_CHUNK = 4 << 20


def parse_digest(text: str, *, where: str | None = None) -> str:
    """Return the 64-hex part of ``sha256:<hex>``; raise FormatError for anything else."""
    m = DIGEST_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise FormatError(f"not a sha256 digest: {text!r:.80}", where=where)
    return m.group(1)


def format_digest(hexdigest: str) -> str:
    return f"sha256:{hexdigest}"


def sha256_bytes(data: bytes) -> str:
    return format_digest(hashlib.sha256(data).hexdigest())


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream a file through SHA-256 in 1 MiB reads (bounded memory)."""
    with Path(path).open("rb", buffering=0) as f:
        return sha256_fileobj(f)


def sha256_fileobj(f: BinaryIO) -> str:
    """SHA-256 of what is left to read in ``f``, in 1 MiB reads."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):  # type: ignore[attr-defined]
        h.update(view[:n])
    return format_digest(h.hexdigest())


def copy_hashed(
    src: BinaryIO | io.RawIOBase, dst: BinaryIO, hasher: ThreadPoolExecutor, bar: object = None
) -> str:
    """Copy ``src`` to ``dst`` and return the SHA-256 of what was copied.

    The hash runs on ``hasher``'s thread while this one decompresses and writes (all three release
    the GIL); at most two chunks in flight keep memory bounded.
    """
    sha = hashlib.sha256()
    pending: deque[Future[None]] = deque()
    while chunk := src.read(COPY_CHUNK):
        pending.append(hasher.submit(sha.update, chunk))
        dst.write(chunk)
        if bar is not None:
            bar.update(len(chunk))  # type: ignore[attr-defined]
        while len(pending) > 1:
            pending.popleft().result()
    for fut in pending:
        fut.result()
    return format_digest(sha.hexdigest())
