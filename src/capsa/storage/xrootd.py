"""``root://HOST//PATH`` bundles (EOS, dCache, XRootD servers) through fsspec-xrootd.

The XRootD client finds credentials where it always does: an X.509 proxy (``X509_USER_PROXY``,
``/tmp/x509up_u$UID``), a token (``BEARER_TOKEN``, ``BEARER_TOKEN_FILE``, ``XDG_RUNTIME_DIR``),
Kerberos — never the bundle. Reads go through one open file handle, so they see one version of
the file; the size and modification time are checked on open.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFoundError
from ..format.source import ByteSource
from .remote import Head, RemoteError, RemoteSource, Transient

__all__ = ["XRootDTransport", "open_xrootd"]

_MISSING = ("No such file", "not found", "[3011]")
_DENIED = ("Permission denied", "[3010]", "Auth failed", "authentication")


class XRootDTransport:
    def __init__(self, url: str) -> None:
        from fsspec.core import url_to_fs

        self.url = url
        fs, path = url_to_fs(url)
        self._fs: Any = fs
        self._path: str = path
        self._size = -1

    def _error(self, e: Exception) -> Exception:
        text = str(e)
        if any(s in text for s in _MISSING):
            return NotFoundError("no such remote file (XRootD)", where=self.url)
        if any(s in text for s in _DENIED):
            return RemoteError(
                f"access denied by the XRootD server: {text}",
                where=self.url,
                hint="XRootD reads an X.509 proxy (X509_USER_PROXY) or a token (BEARER_TOKEN_FILE)",
            )
        return Transient(text)

    def open(self, tail: int) -> Head:
        try:
            info = self._fs.info(self._path)
        except OSError as e:
            raise self._error(e) from e
        if info.get("type") != "file":
            raise RemoteError("not a regular file on the XRootD server", where=self.url)
        self._size = int(info["size"])
        start = max(self._size - tail, 0)
        data = self.fetch(start, self._size - start) if self._size else b""
        return Head(self._size, data, str(info.get("mtime")))

    def fetch(self, offset: int, n: int) -> bytes:
        try:
            data = self._fs.cat_file(self._path, start=offset, end=offset + n)
        except OSError as e:
            raise self._error(e) from e
        if len(data) != n:
            raise Transient(f"{len(data)} bytes in a response to a range of {n}")
        return bytes(data)

    def close(self) -> None:
        """Open handles belong to fsspec-xrootd's handle cache."""


def open_xrootd(url: str) -> ByteSource:
    return RemoteSource(XRootDTransport(url))
