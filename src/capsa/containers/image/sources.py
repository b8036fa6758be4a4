"""Where an image comes from: ``docker-archive:FILE``, ``oci-archive:FILE[:TAG]``,
``oci:DIR[:TAG]``, ``dir:ROOTFS``, ``tar:ROOTFS.tar``. Each gives the image config, the layers in
order (decompressed tar streams) and the source's reference and digest; nothing but Python reads
them (no podman, skopeo or umoci at run time)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from ...errors import FormatError, NotFoundError, UsageError

__all__ = ["TRANSPORTS", "ImageSource", "open_source"]

TRANSPORTS = ("docker-archive", "oci-archive", "oci", "dir", "tar")
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_REF_NAME = "org.opencontainers.image.ref.name"
_MAX_JSON = 16 << 20
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "ppc64le": "ppc64le"}

LayerOpener = Callable[[], contextlib.AbstractContextManager[BinaryIO]]


@dataclass
class ImageSource:
    """An opened image source: what import needs, nothing of the transport."""

    transport: str
    location: str
    reference: str
    digest: str = ""
    """The manifest digest (OCI), else the image ID (docker-archive: the config's digest), else
    the tar file's digest; '' for a directory."""
    config: dict[str, Any] = field(default_factory=dict)
    layers: list[tuple[str, LayerOpener]] = field(default_factory=list)
    directory: str = ""
    close: Callable[[], None] = lambda: None

    @property
    def oci_config(self) -> dict[str, Any]:
        c = self.config.get("config")
        return c if isinstance(c, dict) else {}


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """A layer's tar stream, whatever its compression (gzip, zstd or none), sniffed."""
    buf = io.BufferedReader(cast(Any, raw), 1 << 16)
    head = buf.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return cast(BinaryIO, gzip.GzipFile(fileobj=buf, mode="rb"))
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard

        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(buf))
    return buf


def _split_tag(spec: str) -> tuple[str, str]:
    """``PATH[:TAG]``: a path that exists as given wins over a tag split off at the last colon."""
    if Path(spec).exists() or ":" not in spec:
        return spec, ""
    path, _, tag = spec.rpartition(":")
    return path, tag


def _json(data: bytes, what: str, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}", where=where) from e


class _Store:
    """Files of an image layout: a directory, or members of a tar archive."""

    def __init__(self, path: str, archive: bool) -> None:
        self.where = path
        self._dir = None if archive else Path(path)
        self._tar: tarfile.TarFile | None = None
        if archive:
            try:
                self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115
            except tarfile.TarError as e:
                raise FormatError(f"not a tar archive: {e}", where=path) from e
            self._names = {m.name.removeprefix("./"): m for m in self._tar.getmembers()}

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def exists(self, name: str) -> bool:
        if self._dir is not None:
            return (self._dir / name).is_file()
        return name in self._names

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        if self._dir is not None:
            try:
                f: BinaryIO = (self._dir / name).open("rb")
            except FileNotFoundError as e:
                raise FormatError(f"image layout lacks {name}", where=self.where) from e
            with f:
                yield f
            return
        assert self._tar is not None
        member = self._names.get(name.removeprefix("./"))
        ex = self._tar.extractfile(member) if member is not None else None
        if ex is None:
            raise FormatError(f"archive lacks {name}", where=self.where)
        with ex:
            yield ex  # type: ignore[misc]

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise FormatError(f"{name} is larger than 16 MiB", where=self.where)
        return data

    def layer(self, name: str) -> LayerOpener:
        @contextlib.contextmanager
        def opener() -> Iterator[BinaryIO]:
            with self.open(name) as raw:
                yield _decompressed(raw)

        return opener


def _blob(store: _Store, digest: str) -> bytes:
    algo, _, hexd = digest.partition(":")
    data = store.read(f"blobs/{algo}/{hexd}")
    if algo == "sha256" and hashlib.sha256(data).hexdigest() != hexd:
        raise FormatError(f"blob {digest} does not match its digest", where=store.where)
    return data


def _pick(manifests: list[Any], tag: str, where: str) -> dict[str, Any]:
    if tag:
        for m in manifests:
            name = (m.get("annotations") or {}).get(_REF_NAME, "")
            if name == tag or name.endswith(f":{tag}"):
                return dict(m)
        raise NotFoundError(f"no image tagged {tag!r} in the layout", where=where)
    if len(manifests) != 1:
        names = [(m.get("annotations") or {}).get(_REF_NAME, "?") for m in manifests]
        raise UsageError(
            f"the layout holds {len(manifests)} images", where=where, hint=f"name one: {names}"
        )
    return dict(manifests[0])


def _oci(store: _Store, tag: str, transport: str, given: str) -> ImageSource:
    where = store.where
    if not store.exists("index.json"):
        raise FormatError("not an OCI image layout: no index.json", where=where)
    index = _json(store.read("index.json"), "index.json", where)
    desc = _pick(list(index.get("manifests") or []), tag, where)
    ref = (desc.get("annotations") or {}).get(_REF_NAME, "")
    for _ in range(4):  # an index of indexes: take this machine's platform
        if desc.get("mediaType") not in _INDEX_TYPES:
            break
        sub = _json(_blob(store, desc["digest"]), "image index", where)
        arch = _GO_ARCH.get(platform.machine(), platform.machine())
        match = [
            m
            for m in sub.get("manifests") or []
            if (m.get("platform") or {}).get("architecture") == arch
        ]
        if not match:
            raise FormatError(f"the image index has no image for {arch}", where=where)
        desc = match[0]
    manifest = _json(_blob(store, desc["digest"]), "image manifest", where)
    config = _json(_blob(store, manifest["config"]["digest"]), "image config", where)
    layers = []
    for layer in manifest.get("layers") or []:
        algo, _, hexd = layer["digest"].partition(":")
        layers.append((layer["digest"], store.layer(f"blobs/{algo}/{hexd}")))
    return ImageSource(
        transport,
        where,
        ref if ref and ":" in ref else given,
        desc["digest"],
        config,
        layers,
        close=store.close,
    )


def _docker(store: _Store, tag: str, given: str) -> ImageSource:
    where = store.where
    if store.exists("index.json") and store.exists("oci-layout") and not tag:
        src = _oci(store, "", "docker-archive", given)  # docker 25+: an OCI layout inside
        entries = _json(store.read("manifest.json"), "manifest.json", where)
        tags = (entries[0].get("RepoTags") or []) if entries else []
        src.reference = tags[0] if tags else src.reference
        return src
    entries = _json(store.read("manifest.json"), "manifest.json", where)
    if not isinstance(entries, list) or not entries:
        raise FormatError("manifest.json lists no image", where=where)
    chosen = entries[0]
    if tag:
        chosen = next(
            (e for e in entries if any(t.endswith(f":{tag}") for t in e.get("RepoTags") or [])),
            None,
        )
        if chosen is None:
            raise NotFoundError(f"no image tagged {tag!r} in the archive", where=where)
    elif len(entries) > 1:
        raise UsageError(f"the archive holds {len(entries)} images", where=where, hint="name a tag")
    raw = store.read(chosen["Config"])
    tags = chosen.get("RepoTags") or []
    return ImageSource(
        "docker-archive",
        where,
        tags[0] if tags else given,
        "sha256:" + hashlib.sha256(raw).hexdigest(),
        _json(raw, "image config", where),
        [(name, store.layer(name)) for name in chosen.get("Layers") or []],
        close=store.close,
    )


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:  # noqa: PTH123
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def open_source(spec: str) -> ImageSource:
    """Open ``TRANSPORT:LOCATION``; the caller calls ``close()``."""
    transport, sep, rest = spec.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise UsageError(
            f"unknown image source {spec!r}",
            hint="use docker-archive:FILE.tar, oci-archive:FILE.tar, oci:DIR[:TAG], "
            "dir:ROOTFS or tar:ROOTFS.tar",
        )
    path, tag = (
        _split_tag(rest)
        if transport in ("oci", "oci-archive", "docker-archive")
        else (
            rest,
            "",
        )
    )
    if not Path(path).exists():
        raise NotFoundError("no such file or directory", where=path)
    name = Path(os.path.normpath(path)).name
    given = f"{transport}:{name}" + (f":{tag}" if tag else "")
    if transport == "dir":
        if not Path(path).is_dir():
            raise UsageError("dir: needs a directory", where=path)
        return ImageSource("dir", path, given, directory=path)
    if Path(path).is_dir() != (transport == "oci"):
        raise UsageError(
            f"{transport}: needs a {'directory' if transport == 'oci' else 'file'}", where=path
        )
    if transport == "tar":

        @contextlib.contextmanager
        def single() -> Iterator[BinaryIO]:
            with open(path, "rb") as raw:  # noqa: PTH123
                yield _decompressed(raw)

        return ImageSource("tar", path, given, _file_digest(path), layers=[(name, single)])
    store = _Store(path, archive=transport != "oci")
    try:
        if transport == "docker-archive":
            return _docker(store, tag, given)
        return _oci(store, tag, transport, given)
    except (KeyError, TypeError, AttributeError) as e:
        store.close()
        raise FormatError(f"malformed image metadata: {e!r}", where=path) from e
    except BaseException:
        store.close()
        raise
