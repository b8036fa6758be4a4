"""``http://`` and ``https://`` bundles: range requests through fsspec's HTTP stack (aiohttp).

fsspec supplies the event loop and the client session (``trust_env``: proxies from the
environment, credentials from ``~/.netrc``); the requests are made here because capsa checks
what fsspec's ``cat_file`` hides: the status, ``Content-Range``, the length and the ETag /
Last-Modified of every response against the first. Redirects are followed only within the
same scheme, host and port.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..errors import IntegrityError, NotFoundError
from ..format.source import ByteSource, LocalFile
from .remote import Head, RemoteError, RemoteSource, Transient

__all__ = ["HttpTransport", "open_http"]

_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_REDIRECTS = {301, 302, 303, 307, 308}
_HOPS = 5


class NoRanges(Exception):
    """The server answered a range request with the whole file (200)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    return u.scheme.lower(), (u.hostname or "").lower(), u.port


class HttpTransport:
    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self._origin = _origin(url)
        self._fs = fsspec.filesystem("http", client_kwargs={"trust_env": True})
        self._etag: str | None = None
        self._modified: str | None = None
        self._size = -1

    def _run(self, coro: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self._fs.loop, lambda: coro)

    def open(self, tail: int) -> Head:
        status, headers, body = self._run(self._get(f"bytes=-{tail}", first=True, small=tail))
        if status == 416:  # an empty file has no last bytes
            return Head(0, b"", None)
        if status == 200:
            size = len(body)
        else:
            start, end, size = self._content_range(headers, None, None)
            if end != size - 1 or len(body) != end - start + 1:
                raise RemoteError("server returned the wrong range for the end", where=self.url)
        self._size = size
        self._etag = headers.get("ETag")
        self._modified = headers.get("Last-Modified")
        return Head(size, body, self._etag or self._modified)

    def fetch(self, offset: int, n: int) -> bytes:
        _, headers, body = self._run(self._get(f"bytes={offset}-{offset + n - 1}", first=False))
        _, _, size = self._content_range(headers, offset, offset + n - 1)
        if size != self._size:
            raise _changed(self.url, "its size")
        if len(body) != n:
            raise Transient(f"{len(body)} bytes in a response to a range of {n}")
        return body  # type: ignore[no-any-return]

    def close(self) -> None:
        """The session belongs to fsspec's shared file system instance."""

    def _content_range(
        self, headers: Mapping[str, str], start: int | None, end: int | None
    ) -> tuple[int, int, int]:
        m = _RANGE.match(headers.get("Content-Range", ""))
        if m is None or m.group(3) == "*":
            raise RemoteError("server sent a partial response without a usable Content-Range")
        a, b, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if start is not None and (a, b) != (start, end):
            raise RemoteError(
                f"server returned bytes {a}-{b} for a request of {start}-{end}",
                where=self.url,
                hint="the server does not handle range requests correctly",
            )
        return a, b, total

    async def _get(
        self, rng: str, *, first: bool, small: int = 0
    ) -> tuple[int, Mapping[str, str], bytes]:
        import aiohttp

        session = await self._fs.set_session()
        headers = {"Range": rng, "Accept-Encoding": "identity"}
        if not first and self._etag and not self._etag.startswith("W/"):
            headers["If-Match"] = self._etag
        url = self.url
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        try:
            for _ in range(_HOPS + 1):
                async with session.get(
                    url, headers=headers, allow_redirects=False, timeout=timeout
                ) as r:
                    if r.status in _REDIRECTS:
                        url = self._follow(url, r.headers.get("Location", ""))
                        continue
                    self._check_status(r.status, first)
                    if not first:
                        self._check_same(r.headers)
                    if r.status == 200:
                        # A whole file no longer than the tail asked for is a fine answer.
                        length = r.content_length
                        if not first:
                            raise RemoteError("the server ignored a range request", where=self.url)
                        if length is None or length > small:
                            raise NoRanges
                    return r.status, r.headers, await r.read()
            raise RemoteError(f"more than {_HOPS} redirects", where=self.url)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
            raise Transient(str(e) or type(e).__name__) from e
        except asyncio.TimeoutError as e:
            raise Transient("timed out") from e

    def _follow(self, url: str, location: str) -> str:
        target = urljoin(url, location)
        if _origin(target) != self._origin:
            raise RemoteError(
                "the server redirects to another host",
                where=self.url,
                hint=f"it points to {target}; capsa follows redirects only within one host: "
                "use that URL if you trust it",
            )
        return target

    def _check_status(self, status: int, first: bool) -> None:
        if status in (200, 206) or (first and status == 416):
            return
        if status in (404, 410):
            raise NotFoundError(f"no such remote file (HTTP {status})", where=self.url)
        if status in (401, 403):
            raise RemoteError(
                f"access denied (HTTP {status})",
                where=self.url,
                hint="credentials for HTTP come from ~/.netrc (or a proxy from the environment)",
            )
        if status == 412:
            raise _changed(self.url, "its ETag")
        if status == 429 or status >= 500:
            raise Transient(f"HTTP {status}")
        raise RemoteError(f"unexpected HTTP status {status}", where=self.url)

    def _check_same(self, headers: Mapping[str, str]) -> None:
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        if (etag or self._etag) and etag != self._etag:
            raise _changed(self.url, "its ETag")
        if (modified or self._modified) and modified != self._modified:
            raise _changed(self.url, "its Last-Modified date")

    async def _download(self, fd: int) -> int:
        """The whole file into ``fd`` (for a server without range requests)."""
        import aiohttp

        session = await self._fs.set_session()
        url, done = self.url, 0
        for _ in range(_HOPS + 1):
            async with session.get(
                url, allow_redirects=False, headers={"Accept-Encoding": "identity"}
            ) as r:
                if r.status in _REDIRECTS:
                    url = self._follow(url, r.headers.get("Location", ""))
                    continue
                self._check_status(r.status, False)
                try:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        os.write(fd, chunk)
                        done += len(chunk)
                except aiohttp.ClientPayloadError as e:
                    raise RemoteError(f"download cut short: {e}", where=self.url) from e
                if r.content_length is not None and done != r.content_length:
                    raise RemoteError("download cut short", where=self.url)
                return done
        raise RemoteError(f"more than {_HOPS} redirects", where=self.url)


def _changed(url: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"the file changed on the server while it was read ({what} differs)",
        where=url,
        hint="open it again once the upload is complete",
    )


class _Downloaded(LocalFile):
    """A downloaded copy in a temporary file, removed on close."""

    def close(self) -> None:
        super().close()
        self.path.unlink(missing_ok=True)


def open_http(url: str) -> ByteSource:
    from . import download_allowed

    transport = HttpTransport(url)
    try:
        return RemoteSource(transport)
    except NoRanges:
        if not download_allowed():
            raise RemoteError(
                "the server does not support range requests",
                where=url,
                hint="pass --download to copy the whole file to a temporary file first",
            ) from None
    fd, name = tempfile.mkstemp(prefix="capsa-download-", suffix=".capsa")
    try:
        transport._run(transport._download(fd))
    except BaseException:
        os.close(fd)
        Path(name).unlink()
        raise
    os.close(fd)
    return _Downloaded(name, what="bundle")
