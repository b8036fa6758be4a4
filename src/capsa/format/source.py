"""Byte sources: where a bundle's (or an image's) bytes are read from, by offset.

The storage seam (ARCHITECTURE.md). Everything below the CLI reads through a :class:`ByteSource`:
its size and ``read_at(offset, n)``. A source that is a local file can say so
(:meth:`ByteSource.local_extent`), so that a tool which needs a file of its own (``unsquashfs -o``)
can use it in place; other sources (HTTP, S3, XRootD: ``capsa.storage``) cannot, and their users
copy the bytes out instead. Implementations turn every failure into capsa's own errors, as
python-tuf's fetcher does.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import FormatError, NotFoundError

__all__ = ["ByteSource", "LocalFile", "Window"]


@runtime_checkable
class ByteSource(Protocol):
    """Random-access, read-only bytes of known size.

    ``read_at`` returns exactly ``n`` bytes or raises :class:`capsa.Error` (FormatError when the
    source is shorter than it claimed, an I/O or integrity error otherwise); it must be safe to
    call from several threads at once. ``name`` is a path or URL for messages.
    """

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, n: int) -> bytes: ...

    def local_extent(self) -> tuple[Path, int] | None:
        """(file, offset) when these bytes are a range of a local file, else None."""
        ...

    def close(self) -> None: ...


class LocalFile:
    """A local regular file, read with ``pread`` (no shared file position: thread-safe)."""

    def __init__(self, path: str | os.PathLike[str], *, what: str = "file") -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"no such {what}", where=str(self.path)) from None
        except IsADirectoryError:
            raise FormatError(f"is a directory, not a {what}", where=str(self.path)) from None
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            raise FormatError("not a regular file", where=str(self.path))
        self._size = st.st_size

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        data = os.pread(self._fd, n, offset)
        if len(data) != n:
            raise FormatError(f"truncated: wanted {n} bytes at offset {offset}", where=self.name)
        return data

    def local_extent(self) -> tuple[Path, int] | None:
        return self.path, 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Window:
    """``size`` bytes of ``source`` from ``offset`` on (a blob inside a bundle, say)."""

    def __init__(self, source: ByteSource, offset: int, size: int, *, name: str = "") -> None:
        if offset < 0 or size < 0 or offset + size > source.size:
            raise FormatError("range outside the source", where=name or source.name)
        self.source, self.offset, self._size = source, offset, size
        self._name = name or f"{source.name}@{offset}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > self._size:
            raise FormatError(f"read past the end ({offset}+{n} > {self._size})", where=self.name)
        return self.source.read_at(self.offset + offset, n)

    def local_extent(self) -> tuple[Path, int] | None:
        outer = self.source.local_extent()
        return None if outer is None else (outer[0], outer[1] + self.offset)

    def close(self) -> None:
        """The window does not own its source."""
