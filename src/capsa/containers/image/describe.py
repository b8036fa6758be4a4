"""What ``capsa image inspect`` shows of a SIF: the software inside (OS, Debian packages, Python
distributions from its SBOM object), labels, environment and the source it was made from."""

from __future__ import annotations

import json
from typing import Any

from ...errors import Error
from ..sif import SifImage
from ..sif.descriptor import SBOM_FORMATS

__all__ = ["describe", "source_of"]

_LIMIT = 16 << 20


def _doc(img: SifImage, d: Any) -> Any:
    if d.size > _LIMIT:
        return None
    try:
        return json.loads(img.read_object(d, limit=_LIMIT))
    except (Error, ValueError, UnicodeDecodeError):
        return None


def describe(img: SifImage) -> dict[str, Any]:
    """Plain data: ``sif`` (header and objects), ``source``, ``labels``, ``env``, ``os``,
    ``packages`` and ``python`` (name, version), ``sbom_format``."""
    out: dict[str, Any] = {
        "sif": img.inspect(),
        "source": {},
        "labels": {},
        "env": [],
        "os": "",
        "sbom_format": "",
        "packages": [],
        "python": [],
    }
    labels: dict[str, str] = {}
    for d in img.descriptors:
        if d.type_name == "Labels":
            doc = _doc(img, d)
            if isinstance(doc, dict):
                labels.update({str(k): str(v) for k, v in doc.items()})
        elif d.type_name == "GenericJSON" and d.name == "oci-config.json":
            doc = _doc(img, d)
            if isinstance(doc, dict):
                out["env"] = [e for e in doc.get("Env") or [] if isinstance(e, str)]
                labels = {
                    **{str(k): str(v) for k, v in (doc.get("Labels") or {}).items()},
                    **labels,
                }
        elif d.type_name == "GenericJSON" and d.name == "inspect-metadata.json":
            doc = _doc(img, d)
            attrs = (
                ((doc or {}).get("data") or {}).get("attributes") if isinstance(doc, dict) else None
            )
            if isinstance(attrs, dict) and isinstance(attrs.get("labels"), dict):
                labels = {**{str(k): str(v) for k, v in attrs["labels"].items()}, **labels}
        elif d.type_name == "SBOM":
            fmt = int.from_bytes(d.extra[:4], "little", signed=True)
            out["sbom_format"] = SBOM_FORMATS.get(fmt, f"format {fmt}")
            _sbom(_doc(img, d), out)
    out["labels"] = dict(sorted(labels.items()))
    for key, field in (
        ("capsa.source.reference", "reference"),
        ("capsa.source.digest", "digest"),
        ("capsa.source.transport", "transport"),
    ):
        if labels.get(key):
            out["source"][field] = labels[key]
    return out


def _sbom(doc: Any, out: dict[str, Any]) -> None:
    """CycloneDX ``components`` or SPDX ``packages``: OS, Debian packages, Python ones."""
    if not isinstance(doc, dict):
        return
    for key, vkey in (("components", "version"), ("packages", "versionInfo")):
        for c in doc.get(key) or []:
            if not isinstance(c, dict) or not c.get("name"):
                continue
            name, version = str(c["name"]), str(c.get(vkey) or "")
            purl = str(c.get("purl") or "")
            if not purl:
                refs = c.get("externalRefs") or []
                purl = next(
                    (str(r.get("referenceLocator")) for r in refs if isinstance(r, dict)), ""
                )
            if str(c.get("type") or "").lower() == "operating-system":
                out["os"] = str(c.get("description") or f"{name} {version}").strip()
            elif purl.startswith("pkg:pypi/"):
                out["python"].append([name, version])
            else:
                out["packages"].append([name, version])


def source_of(img: SifImage) -> str:
    """``REFERENCE DIGEST`` of the image an imported SIF was made from ('' when not known), from
    its labels object (``capsa.source.*``, written by ``capsa image import``)."""
    for d in img.of_type("Labels"):
        doc = _doc(img, d)
        if isinstance(doc, dict) and doc.get("capsa.source.reference"):
            return f"{doc['capsa.source.reference']} {doc.get('capsa.source.digest', '')}".strip()
    return ""
