"""``capsa show``: a one-screen summary of a bundle, as plain data (the CLI formats it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..bundle import Bundle
from ..bundle.verify import check_signatures
from ..signing.keys import PublicKey
from .history import image_info

__all__ = ["summarize"]


def summarize(b: Bundle, keys: Sequence[PublicKey] = ()) -> dict[str, Any]:
    """Identity, metadata, signatures (checked against ``keys``), steps, images, files, sizes."""
    m = b.manifest
    checks, _ = check_signatures(b, list(keys), require=False)
    files = {role: [] for role in ("input", "intermediate", "output", "image", "other")}  # type: dict[str, list[dict[str, Any]]]
    for mem in b.members():
        files[mem.role].append({"path": mem.path, "size": mem.size, "digest": mem.digest})
    images = []
    for f in files["image"]:
        info = image_info(b, f["digest"])
        images.append({**f, **info, "used_by": [s.name for s in m.steps if s.image == f["digest"]]})
    size = sum(x.size for x in m.blobs.values())
    stored = sum(x.stored_size for x in m.blobs.values())
    return {
        "bundle": str(b.path),
        "id": b.id,
        "format": m.capsa,
        "title": m.bundle.title,
        "description": m.bundle.description,
        "authors": [a.name for a in m.bundle.authors],
        "license": m.bundle.license,
        "identifiers": [f"{i.scheme}:{i.value}" for i in m.bundle.identifiers],
        "created": m.bundle.created,
        "signatures": [
            {"keyid": c.keyid, "status": c.status, "trusted": c.trusted} for c in checks
        ],
        "steps": [
            {
                "name": s.name,
                "command": " ".join(s.argv),
                "image": s.image,
                "exit_code": s.exit_code,
                "runtime": s.runtime.name,
                "outputs": [o.path for o in s.outputs],
            }
            for s in m.steps
        ],
        "images": images,
        "files": {k: v for k, v in files.items() if k != "image"},
        "file_size": b.file_size,
        "content_size": size,
        "stored_size": stored,
        "compression_ratio": round(size / stored, 3) if stored else 1.0,
    }
