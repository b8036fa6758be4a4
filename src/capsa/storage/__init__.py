"""Where bytes live: open a path or URL as a :class:`~capsa.format.source.ByteSource`.

The storage seam (ARCHITECTURE.md). A local path is a :class:`~capsa.format.source.LocalFile`;
a URL is handed to the backend registered for its scheme (``register_scheme``), so that remote
stores plug in without the readers above knowing which one they read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ..errors import UsageError
from ..format.source import ByteSource, LocalFile

__all__ = [
    "allow_download",
    "download_allowed",
    "is_url",
    "open_source",
    "register_scheme",
    "schemes",
]

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
Opener = Callable[[str], ByteSource]
_BACKENDS: dict[str, Callable[[], Opener]] = {}


def register_scheme(scheme: str, loader: Callable[[], Opener]) -> None:
    """Register ``loader`` (called on first use, so that heavy clients load lazily) for URLs
    ``scheme://…``."""
    _BACKENDS[scheme.lower()] = loader


_DOWNLOAD = [False]


def allow_download(on: bool = True) -> None:
    """Let a remote source without range requests be copied whole to a temporary file
    (``--download``) instead of being refused."""
    _DOWNLOAD[0] = on


def download_allowed() -> bool:
    return _DOWNLOAD[0]


def _remote(module: str, func: str) -> Callable[[], Opener]:
    """A loader for a scheme served by ``func`` of this package's ``module``; its client library
    is imported on first use, and its absence is one line naming the extra."""

    def load() -> Opener:
        import importlib

        impl: Opener = getattr(importlib.import_module(f".{module}", __name__), func)

        def open_url(url: str) -> ByteSource:
            try:
                return impl(url)
            except ImportError as e:
                raise UsageError(
                    f"reading {url.split(':')[0]}:// URLs needs the Python package {e.name}",
                    where=url,
                    hint="pip install 'capsa[remote]'",
                ) from None

        return open_url

    return load


def schemes() -> list[str]:
    return sorted(_BACKENDS)


def is_url(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and _SCHEME.match(target) is not None


def open_source(target: str | os.PathLike[str], *, what: str = "file") -> ByteSource:
    """The bytes at ``target``: a local path, ``file://PATH``, or a URL of a registered scheme."""
    if isinstance(target, str) and (m := _SCHEME.match(target)):
        scheme = m.group(1).lower()
        if scheme == "file":
            return LocalFile(target[len("file://") :], what=what)
        loader = _BACKENDS.get(scheme)
        if loader is None:
            raise UsageError(
                f"cannot read {scheme}:// URLs",
                where=target,
                hint="supported: local paths, file://" + "".join(f", {s}://" for s in schemes()),
            )
        return loader()(target)
    return LocalFile(target, what=what)


for _scheme, _module, _func in (
    ("http", "http", "open_http"),
    ("https", "http", "open_http"),
    ("s3", "s3", "open_s3"),
    ("root", "xrootd", "open_xrootd"),
    ("xroot", "xrootd", "open_xrootd"),
):
    register_scheme(_scheme, _remote(_module, _func))
