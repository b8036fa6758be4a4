"""``s3://BUCKET/KEY`` bundles through s3fs (aiobotocore): range ``GetObject`` requests.

Credentials and the endpoint come from where botocore looks for them (``AWS_*`` variables,
``~/.aws/credentials`` and ``~/.aws/config``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` for a
store that is not AWS, instance roles) — never from the bundle. Each response's ETag is checked
against the first, and later requests carry ``If-Match``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import IntegrityError, NotFoundError, UsageError
from ..format.source import ByteSource
from .remote import Head, RemoteError, RemoteSource, Transient

__all__ = ["S3Transport", "open_s3"]

_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class S3Transport:
    def __init__(self, url: str) -> None:
        import s3fs

        u = urlsplit(url)
        self.url = url
        self._bucket, self._key = u.netloc, u.path.lstrip("/")
        if not self._bucket or not self._key:
            raise UsageError("an S3 URL is s3://BUCKET/KEY", where=url)
        # A fresh instance: credentials and endpoint are read from the environment now.
        self._fs = s3fs.S3FileSystem(skip_instance_cache=True)
        self._fs.retries = 1  # RemoteSource retries, with its own backoff: not both, multiplied
        self._etag: str | None = None
        self._size = -1

    def _run(self, rng: str) -> tuple[dict[str, Any], bytes]:
        from fsspec.asyn import sync

        return sync(self._fs.loop, self._get, rng)  # type: ignore[no-any-return]

    async def _get(self, rng: str) -> tuple[dict[str, Any], bytes]:
        kw: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key, "Range": rng}
        if self._etag:
            kw["IfMatch"] = self._etag
        try:
            resp = await self._fs._call_s3("get_object", **kw)
            data = await resp["Body"].read()
            resp["Body"].close()
        except Exception as e:
            raise self._error(e) from e
        return resp, data

    def _error(self, e: Exception) -> Exception:
        import botocore.exceptions as bx

        text = str(e) + " " + _code(e)
        if isinstance(e, FileNotFoundError) or "NoSuchKey" in text or "NoSuchBucket" in text:
            return NotFoundError("no such S3 object", where=self.url)
        if isinstance(e, bx.NoCredentialsError):
            return RemoteError(
                "no S3 credentials",
                where=self.url,
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
                "~/.aws/credentials",
            )
        if isinstance(e, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
            return RemoteError(
                "access denied by the S3 store",
                where=self.url,
                hint="check the credentials (AWS_PROFILE, ~/.aws/credentials) and the "
                "bucket policy",
            )
        if "PreconditionFailed" in text or "412" in text:
            return IntegrityError(
                "the object changed on the store while it was read (ETag differs)",
                where=self.url,
                hint="open it again once the upload is complete",
            )
        if "InvalidRange" in text or "416" in text:
            return _Empty()
        if isinstance(e, (bx.EndpointConnectionError, bx.ConnectionClosedError, ConnectionError)):
            return Transient(text)
        if isinstance(e, OSError | bx.BotoCoreError):
            return Transient(text)
        return RemoteError(f"S3 request failed: {text}", where=self.url)

    def open(self, tail: int) -> Head:
        try:
            resp, data = self._run(f"bytes=-{tail}")
        except _Empty:
            return Head(0, b"", None)
        m = _RANGE.match(resp.get("ContentRange") or "")
        if m is None:  # the whole object, shorter than the tail
            size = len(data)
        else:
            size = int(m.group(3))
            if int(m.group(2)) != size - 1 or len(data) != int(m.group(2)) - int(m.group(1)) + 1:
                raise RemoteError("the store returned the wrong range for the end", where=self.url)
        self._size = size
        self._etag = resp.get("ETag")
        return Head(size, data, self._etag)

    def fetch(self, offset: int, n: int) -> bytes:
        try:
            resp, data = self._run(f"bytes={offset}-{offset + n - 1}")
        except _Empty as e:
            raise _changed(self.url) from e
        m = _RANGE.match(resp.get("ContentRange") or "")
        if m is None or (int(m.group(1)), int(m.group(2))) != (offset, offset + n - 1):
            got = resp.get("ContentRange")
            raise RemoteError(
                f"the store returned {got!r} for bytes {offset}-{offset + n - 1}",
                where=self.url,
            )
        if int(m.group(3)) != self._size or resp.get("ETag") != self._etag:
            raise _changed(self.url)
        if len(data) != n:
            raise Transient(f"{len(data)} bytes in a response to a range of {n}")
        return data

    def close(self) -> None:
        """The client belongs to s3fs's shared file system instance."""


def _code(e: BaseException) -> str:
    """The S3 error code (``PreconditionFailed``…) s3fs's translation to OSError leaves behind
    in the exception's cause."""
    seen: BaseException | None = e
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        seen = seen.__cause__ or seen.__context__
    return ""


class _Empty(Exception):
    """Range not satisfiable: an empty object."""


def _changed(url: str) -> IntegrityError:
    return IntegrityError(
        "the object changed on the store while it was read",
        where=url,
        hint="open it again once the upload is complete",
    )


def open_s3(url: str) -> ByteSource:
    return RemoteSource(S3Transport(url))
