"""W3C PROV-JSON export (https://www.w3.org/submissions/prov-json/).

* the bundle is an entity of type ``prov:Collection`` (``bundle:sha256-<hex>``) with every file
  as a member (``hadMember``) and attributed to its authors (``prov:Person`` agents
  ``author:a<n>``, with ``capsa:orcid`` and ``capsa:affiliation`` when known);
* every file content is an entity ``file:<path>`` (``prov:label`` the path, ``capsa:sha256``,
  ``capsa:role``, ``capsa:size``, ``capsa:mediaType``); content a step read or wrote that is not
  the bundle's file at that path (a later step overwrote it) is ``file:<path>@sha256-<hex>``;
  an image stored only as a blob is ``blob:sha256-<hex>``;
* every step is an activity ``step:<name>`` that ``used`` its image (role ``capsa:image``) and
  inputs (role ``capsa:input``), generated its outputs (``wasGeneratedBy``), and is associated
  with the container runtime (``prov:SoftwareAgent``), the capsa recorder and, as plan, its image.

Identifiers are qualified names whose local part is an XML NCName (:func:`ncname`), so the
document converts to valid PROV-XML (``xs:QName``) and PROV-N; the readable path or name is the
``prov:label``. File and step identifiers are scoped by the bundle id
(``urn:capsa:bundle:sha256-<hex>/…``). Times are the recorded UTC times.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ._common import end_time, file_for, hexof, images, recorder_versions, start_time, write_json

__all__ = ["VOCAB", "ncname", "prov_document", "write_prov"]

VOCAB = "urn:capsa:vocab#"


_NC_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def ncname(text: str) -> str:
    """``text`` as the local part of an ``xs:QName`` (an NCName: a letter or ``_`` first, then
    letters, digits, ``.``, ``-``, ``_``): ASCII letters, digits, ``.`` and ``-`` stay, every
    other UTF-8 byte — ``_`` itself included — becomes ``_XX`` (hex), and so does a first
    character that may not start a name. Deterministic and reversible: ``data/log.txt`` is
    ``data_2Flog.txt``, ``1st step`` is ``_31st_20step``."""
    out = []
    for i, byte in enumerate(text.encode("utf-8")):
        first_ok = i or chr(byte).isalpha()
        out.append(chr(byte) if byte in _NC_KEEP and first_ok else f"_{byte:02X}")
    return "".join(out) or "_"


def _qname(value: str) -> dict[str, str]:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def prov_document(bundle: Bundle) -> dict[str, Any]:
    """The PROV-JSON document of ``bundle`` (a dict; deterministic)."""
    m = bundle.manifest
    hx = hexof(bundle.id)
    base = f"urn:capsa:bundle:sha256-{hx}/"
    doc: dict[str, Any] = {
        "prefix": {
            "capsa": VOCAB,
            "bundle": "urn:capsa:bundle:",
            "file": f"{base}files/",
            "step": f"{base}steps/",
            "author": f"{base}authors/",
            "blob": "urn:capsa:blob:",
            "runtime": "urn:capsa:runtime:",
        },
    }
    entity: dict[str, Any] = {}
    activity: dict[str, Any] = {}
    agent: dict[str, Any] = {}
    relations: dict[str, dict[str, Any]] = {
        k: {}
        for k in ("used", "wasGeneratedBy", "wasAssociatedWith", "wasAttributedTo", "hadMember")
    }

    def relate(kind: str, record: dict[str, Any]) -> None:
        rel = relations[kind]
        rel[f"_:{kind}{len(rel) + 1}"] = record

    def describe(digest: str) -> dict[str, Any]:
        blob = m.blobs[digest]
        return {
            "capsa:sha256": hexof(digest),
            "capsa:size": blob.size,
            "capsa:mediaType": blob.media_type,
        }

    bundle_id = f"bundle:sha256-{hx}"
    meta = m.bundle
    b: dict[str, Any] = {
        "prov:type": _qname("prov:Collection"),
        "prov:label": meta.title or f"capsa bundle {bundle.id}",
        "capsa:format": m.capsa,
    }
    if meta.description:
        b["capsa:description"] = meta.description
    if meta.license:
        b["capsa:license"] = meta.license
    if meta.created:
        b["capsa:created"] = meta.created
    if meta.identifiers:
        b["capsa:identifier"] = [f"{i.scheme}:{i.value}" for i in meta.identifiers]
    entity[bundle_id] = b

    for path, f in sorted(m.files.items()):
        eid = f"file:{ncname(path)}"
        entity[eid] = {"prov:label": path, "capsa:role": f.role, **describe(f.digest)}
        relate("hadMember", {"prov:collection": bundle_id, "prov:entity": eid})

    for n, a in enumerate(meta.authors, start=1):
        aid = f"author:a{n}"
        person: dict[str, Any] = {"prov:type": _qname("prov:Person"), "prov:label": a.name}
        if a.orcid:
            person["capsa:orcid"] = {"$": f"https://orcid.org/{a.orcid}", "type": "xsd:anyURI"}
        if a.affiliation:
            person["capsa:affiliation"] = a.affiliation
        agent[aid] = person
        relate("wasAttributedTo", {"prov:entity": bundle_id, "prov:agent": aid})

    def content(path: str, digest: str) -> str:
        if file_for(m, path, digest):
            return f"file:{ncname(path)}"
        eid = f"file:{ncname(f'{path}@sha256-{hexof(digest)}')}"
        entity.setdefault(eid, {"prov:label": path, **describe(digest)})
        return eid

    image_ids: dict[str, str] = {}
    for digest, img in images(bundle).items():
        eid = f"file:{ncname(img.path)}" if img.path else f"blob:sha256-{hexof(digest)}"
        e = entity.setdefault(eid, {"prov:label": img.label, **describe(digest)})
        e["prov:type"] = _qname("prov:Plan")
        for key, value in (
            ("capsa:sifId", img.sif_id),
            ("capsa:arch", img.arch),
            ("capsa:from", img.image_from),
        ):
            if value:
                e[key] = value
        image_ids[digest] = eid

    if m.steps:
        versions = recorder_versions(m.steps)
        recorder: dict[str, Any] = {
            "prov:type": _qname("prov:SoftwareAgent"),
            "prov:label": "capsa recorder",
        }
        if versions:
            recorder["capsa:version"] = versions if len(versions) > 1 else versions[0]
        agent["capsa:recorder"] = recorder

    for s in m.steps:
        sid = f"step:{ncname(s.name)}"
        act: dict[str, Any] = {
            "prov:label": s.name,
            "capsa:command": shlex.join(s.argv),
            "capsa:image": s.image or "none",
            "capsa:workdir": s.workdir,
            "capsa:exitCode": s.exit_code,
        }
        if s.env:
            act["capsa:env"] = [f"{k}={v}" for k, v in sorted(s.env.items())]
        if (t := start_time(s.host)) is not None:
            act["prov:startTime"] = t
        if (t := end_time(s.host)) is not None:
            act["prov:endTime"] = t
        activity[sid] = act
        if s.image is not None:
            relate(
                "used",
                {
                    "prov:activity": sid,
                    "prov:entity": image_ids[s.image],
                    "prov:role": _qname("capsa:image"),
                },
            )
        for i in s.inputs:
            relate(
                "used",
                {
                    "prov:activity": sid,
                    "prov:entity": content(i.path, i.digest),
                    "prov:role": _qname("capsa:input"),
                },
            )
        for o in s.outputs:
            gen = {"prov:entity": content(o.path, o.digest), "prov:activity": sid}
            if (t := end_time(s.host)) is not None:
                gen["prov:time"] = t
            relate("wasGeneratedBy", gen)
        version = f"-{s.runtime.version}" if s.runtime.version else ""
        rt = f"runtime:{ncname(s.runtime.name + version)}"
        agent.setdefault(
            rt,
            {
                "prov:type": _qname("prov:SoftwareAgent"),
                "prov:label": f"{s.runtime.name} {s.runtime.version}".strip(),
            },
        )
        plan = {} if s.image is None else {"prov:plan": image_ids[s.image]}
        relate("wasAssociatedWith", {"prov:activity": sid, "prov:agent": rt, **plan})
        relate("wasAssociatedWith", {"prov:activity": sid, "prov:agent": "capsa:recorder"})

    doc["entity"] = entity
    if activity:
        doc["activity"] = activity
    if agent:
        doc["agent"] = agent
    for kind, rel in relations.items():
        if rel:
            doc[kind] = rel
    return doc


def write_prov(bundle: Bundle, out: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write the PROV-JSON document to ``out`` (``-``: standard output)."""
    return write_json(prov_document(bundle), out, force=force)
