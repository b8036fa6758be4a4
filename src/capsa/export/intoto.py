"""in-toto export: a Statement v1 whose predicate is SLSA Provenance v1, optionally DSSE-signed.

* ``subject``: the bundle's files with role ``output`` (or the paths asked for), by SHA-256;
  a bundle without outputs attests all its files.
* ``predicate.buildDefinition``: ``buildType`` ``urn:capsa:buildtype:replay-steps:v1`` — the
  steps, in order, run as ``capsa replay`` runs them; ``externalParameters`` holds what defines
  the result (each step's name, argv, image digest, work directory, inputs and outputs),
  ``internalParameters`` what the recorder fixed (environment, runtime, exit code), and
  ``resolvedDependencies`` the images and the origin inputs as ResourceDescriptors.
* ``predicate.runDetails``: builder ``urn:capsa:recorder``, ``invocationId`` the bundle id,
  ``startedOn``/``finishedOn`` when the steps recorded them. Host names and kernels are left
  out: they describe the recording machine, not the build.

Signed (``keys``), the file is a DSSE envelope with payload type ``application/vnd.in-toto+json``
over the compact JSON of the statement (spec/signing.md describes the envelope).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..errors import NotFoundError
from ..signing import intoto
from ..signing.intoto import PAYLOAD_TYPE, STATEMENT_TYPE
from ..signing.keys import PrivateKey
from ._common import dumps, hexof, images, origins, recorder_versions, run_span, write_bytes

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "intoto_statement",
    "write_intoto",
]

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:capsa:buildtype:replay-steps:v1"
BUILDER_ID = "urn:capsa:recorder"


def _descriptor(
    name: str, digest: str, media_type: str | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    rd: dict[str, Any] = {"name": name, "digest": {"sha256": hexof(digest)}}
    if media_type:
        rd["mediaType"] = media_type
    if annotations:
        rd["annotations"] = annotations
    return rd


def intoto_statement(bundle: Bundle, subjects: Sequence[str] | None = None) -> dict[str, Any]:
    """The in-toto Statement of ``bundle``; ``subjects`` are bundle paths (default: outputs)."""
    m = bundle.manifest
    if subjects:
        for p in subjects:
            if p not in m.files:
                raise NotFoundError(
                    "no such file in the bundle",
                    where=f"{bundle.path}: {p}",
                    hint="`capsa ls` lists the files",
                )
        chosen = sorted(set(subjects))
    else:
        chosen = sorted(p for p, f in m.files.items() if f.role == "output") or sorted(m.files)

    ext_steps = []
    int_steps = []
    for s in m.steps:
        ext_steps.append(
            {
                "name": s.name,
                "argv": list(s.argv),
                "image": s.image,
                "workdir": s.workdir,
                "inputs": [{"path": f.path, "digest": f.digest} for f in s.inputs],
                "outputs": [{"path": f.path, "digest": f.digest} for f in s.outputs],
            }
        )
        internal: dict[str, Any] = {
            "name": s.name,
            "env": dict(sorted(s.env.items())),
            "runtime": {"name": s.runtime.name, "version": s.runtime.version},
            "exitCode": s.exit_code,
        }
        if s.binds:
            internal["binds"] = [{"target": b.target, "readonly": b.readonly} for b in s.binds]
        int_steps.append(internal)

    deps = []
    for digest, img in images(bundle).items():
        notes = {
            k: v
            for k, v in (("sifId", img.sif_id), ("arch", img.arch), ("from", img.image_from))
            if v
        }
        deps.append(_descriptor(img.path or img.label, digest, img.media_type, notes or None))
    for path, digest in origins(m.steps):
        deps.append(_descriptor(path, digest, m.blobs[digest].media_type))

    builder: dict[str, Any] = {"id": BUILDER_ID}
    versions = recorder_versions(m.steps)
    if len(versions) == 1:
        builder["version"] = {"capsa": versions[0]}
    metadata: dict[str, Any] = {"invocationId": bundle.id}
    started, finished = run_span(m.steps)
    if started is not None:
        metadata["startedOn"] = started
    if finished is not None:
        metadata["finishedOn"] = finished
    byproducts = []
    for s in m.steps:
        for stream, log in (("stdout", s.stdout), ("stderr", s.stderr)):
            if log is not None:
                byproducts.append(_descriptor(f"{s.name}/{stream}", log, "text/plain"))

    run_details: dict[str, Any] = {"builder": builder, "metadata": metadata}
    if byproducts:
        run_details["byproducts"] = byproducts
    return intoto.statement(
        [_descriptor(p, m.files[p].digest) for p in chosen],
        PREDICATE_TYPE,
        {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "bundle": {"id": bundle.id, "title": m.bundle.title, "format": m.capsa},
                    "steps": ext_steps,
                },
                "internalParameters": {"steps": int_steps},
                "resolvedDependencies": deps,
            },
            "runDetails": run_details,
        },
    )


def write_intoto(
    bundle: Bundle,
    out: str | os.PathLike[str],
    *,
    keys: Sequence[PrivateKey] = (),
    subjects: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Write the statement to ``out`` (``-``: standard output); signed with ``keys`` if given."""
    statement = intoto_statement(bundle, subjects)
    if keys:
        return write_bytes(intoto.sign(statement, keys) + b"\n", out, force=force)
    return write_bytes(dumps(statement), out, force=force)
