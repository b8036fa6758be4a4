"""What the report says about an image: its identity (SIF ID, architecture, the deffile's base),
where it came from (source reference and digest) and the software inside (OS, key packages).

Read defensively: the source reference, labels and SBOM are whatever the SIF holds — Apptainer
labels JSON, generic JSON objects, an SPDX / CycloneDX / syft SBOM object — and anything that is
missing, too large or not the JSON expected is simply not shown.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ...bundle import Bundle
from ...errors import Error
from ..history import image_info

__all__ = ["ImageDetails", "image_details"]

_MAX_JSON = 4 << 20
_MAX_PACKAGES = 12
# Packages a reviewer of a scientific analysis looks for first.
_KEY = re.compile(
    r"^(python3?(\.\d+)?|(python3?-)?(numpy|scipy|h5py|pandas|astropy|uproot|awkward|numba|"
    r"matplotlib|km3pipe|km3io|ctapipe|tables|pyroot|root|torch|tensorflow)|libhdf5.*|"
    r"root|gcc(-\d+)?|libc6|glibc|libopenblas.*|openblas|cuda.*|libstdc\+\+\d*)$",
    re.IGNORECASE,
)
_REF_KEYS = (
    "capsa.source.reference",
    "capsa.image.source",
    "capsa.source.ref",
    "org.opencontainers.image.ref.name",
    "org.opencontainers.image.base.name",
    "org.opencontainers.image.source",
)
_DIGEST_KEYS = (
    "capsa.source.digest",
    "capsa.image.source.digest",
    "org.opencontainers.image.digest",
    "org.opencontainers.image.base.digest",
)


@dataclass
class ImageDetails:
    digest: str
    paths: list[str] = field(default_factory=list)
    size: int = 0
    sif_id: str = ""
    arch: str = ""
    image_from: str = ""
    source_ref: str = ""
    source_digest: str = ""
    os: str = ""
    sbom_format: str = ""
    packages: list[tuple[str, str]] = field(default_factory=list)
    """Key packages (name, version): the ones in _KEY, else the first few."""
    package_count: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    readable: bool = True

    @property
    def label(self) -> str:
        """Short name for badges: the bundle path's file name, else the digest's start."""
        if self.paths:
            return self.paths[0].rsplit("/", 1)[-1]
        return self.digest[7:19]


def image_details(b: Bundle, digest: str, paths: list[str]) -> ImageDetails:
    blob = b.manifest.blobs.get(digest)
    d = ImageDetails(digest, sorted(paths), blob.size if blob else 0)
    info = image_info(b, digest)
    d.sif_id, d.arch, d.image_from = info["sif_id"], info["arch"], info["image_from"]
    if not d.sif_id:
        d.readable = False
        return d
    with contextlib.suppress(Error):  # damaged metadata objects: the identity is still shown
        _read_objects(b, digest, d)
    return d


def _read_objects(b: Bundle, digest: str, d: ImageDetails) -> None:
    from ...containers.sif import sif_from_file
    from ...containers.sif.descriptor import SBOM_FORMATS

    with b.open_blob(digest) as f:
        img = sif_from_file(f, f.size, where=digest)
        for obj in img.descriptors:
            if obj.type_name not in ("Labels", "GenericJSON", "SBOM") or obj.size > _MAX_JSON:
                continue
            doc = _json(img.read_object(obj, limit=_MAX_JSON))
            if obj.type_name == "SBOM":
                fmt = int.from_bytes(obj.extra[:4], "little", signed=True)
                d.sbom_format = SBOM_FORMATS.get(fmt, f"format {fmt}")
                _sbom(doc, d)
            else:
                _labels(doc, d)
    for key in _REF_KEYS:
        if not d.source_ref and d.labels.get(key):
            d.source_ref = d.labels[key]
    for key in _DIGEST_KEYS:
        if not d.source_digest and d.labels.get(key):
            d.source_digest = d.labels[key]


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _text(v: Any, limit: int = 300) -> str:
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return str(v)[:limit]
    return ""


def _labels(doc: Any, d: ImageDetails) -> None:
    """Labels from an Apptainer labels object, an OCI config (``config.Labels``) or a
    ``source`` record ({"reference": …, "digest": …})."""
    if not isinstance(doc, dict):
        return
    config = doc.get("config")
    for labels in (
        doc,
        doc.get("Labels"),
        config.get("Labels") if isinstance(config, dict) else None,
    ):
        if isinstance(labels, dict):
            for k, v in list(labels.items())[:200]:
                if isinstance(k, str) and _text(v):
                    d.labels.setdefault(k[:200], _text(v))
    source = doc.get("source")
    if isinstance(source, dict):
        d.source_ref = d.source_ref or _text(source.get("reference") or source.get("ref"))
        d.source_digest = d.source_digest or _text(source.get("digest"))
    d.labels = {k: v for k, v in d.labels.items() if k not in ("Labels", "config", "source")}


def _sbom(doc: Any, d: ImageDetails) -> None:
    """Packages and OS from an SPDX (``packages``), CycloneDX (``components``) or syft
    (``artifacts``, ``distro``) JSON document."""
    if not isinstance(doc, dict):
        return
    found: list[tuple[str, str]] = []
    for key, version_key in (
        ("packages", "versionInfo"),
        ("components", "version"),
        ("artifacts", "version"),
    ):
        items = doc.get(key)
        if not isinstance(items, list):
            continue
        for p in items:
            if not isinstance(p, dict) or not _text(p.get("name")):
                continue
            name, version = _text(p.get("name"), 120), _text(p.get(version_key), 120)
            kind = _text(p.get("type")) or _text(p.get("primaryPackagePurpose"))
            if kind.lower() in ("operating-system", "operating_system"):
                d.os = d.os or f"{name} {version}".strip()
                continue
            found.append((name, version))
    distro = doc.get("distro")
    if isinstance(distro, dict):
        d.os = d.os or _text(distro.get("prettyName")) or _text(distro.get("name"))
    d.package_count = len(found)
    wanted = [p for p in found if _KEY.match(p[0])]
    d.packages = sorted(set(wanted or found[:8]))[:_MAX_PACKAGES]
