"""RO-Crate export: ``ro-crate-metadata.json`` (and the payload) following Workflow Run RO-Crate.

The crate conforms to RO-Crate 1.1 and, when the bundle has recorded steps, to the Process Run
Crate, Workflow Run Crate and Provenance Run Crate profiles 0.5 and Workflow RO-Crate 1.0.
Those are the newest versions that fit together *and* that today's checkers know: Workflow Run
RO-Crate 0.6 moved to RO-Crate 1.3 (its changelog: 1.1 pairs with 0.1-0.5, 1.3 with 0.6 only),
but roc-validator 0.13 has shapes for the 0.5 profiles alone; the ``rocrate`` library reads both.
The version constants below are the only place to change to move on.

* every bundle file is a ``File`` data entity whose ``@id`` is its bundle path (percent-encoded
  as a URI reference), with ``contentSize``, ``encodingFormat`` and ``sha256``;
* the bundle manifest is written beside them as ``capsa-manifest.json`` (its SHA-256 is the
  bundle id): it is the *main workflow* (``ComputationalWorkflow``, ``HowTo``), since it is what
  ``capsa replay`` executes; its steps are ``HowToStep`` entities;
* every SIF image a step ran in is a ``SoftwareApplication`` + ``ContainerImage`` (additionalType
  ``SIFImage``, ``sha256``) — the step's ``instrument`` and ``containerImage``;
* every step is a ``CreateAction`` (``object`` its inputs, ``result`` its outputs, ``environment``
  its variables, ``actionStatus`` from its exit code, ``startTime``/``endTime`` when recorded),
  driven by a ``ControlAction``; the recording (capsa) is the ``OrganizeAction`` whose result is
  the whole run's ``CreateAction``.

A bundle without steps exports as a plain RO-Crate (no actions, no run profile claimed).
Content a step read or wrote that is not the bundle's current file at that path (a path
overwritten by a later step) is a contextual entity ``#sha256-<hex>`` with the same properties.
"""

from __future__ import annotations

import re
import shlex
import time
from typing import Any
from urllib.parse import quote

from ..bundle import Bundle
from ..errors import UsageError
from ._common import (
    ImageRef,
    end_time,
    file_for,
    hexof,
    images,
    origins,
    recorder_versions,
    results,
    run_span,
    start_time,
)

__all__ = [
    "MANIFEST",
    "METADATA",
    "PROFILES",
    "README",
    "RO_CRATE",
    "crate_metadata",
    "readme_text",
]

METADATA = "ro-crate-metadata.json"
PREVIEW = "ro-crate-preview.html"
MANIFEST = "capsa-manifest.json"
README = "README.md"
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
RO_CRATE = "https://w3id.org/ro/crate/1.1"
CONTEXT = [f"{RO_CRATE}/context", "https://w3id.org/ro/terms/workflow-run/context"]
WFRUN = "https://w3id.org/ro/terms/workflow-run#"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.0"
RESERVED = (METADATA, PREVIEW, MANIFEST, README)
_CHUNK = 4 << 20
_SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _ref(entity_id: str) -> dict[str, str]:
    return {"@id": entity_id}


def _refs(ids: list[str]) -> dict[str, str] | list[dict[str, str]]:
    """References to ``ids``; one alone is not wrapped in a list (RO-Crate 1.1 JSON-LD advice)."""
    refs = [_ref(i) for i in dict.fromkeys(ids)]
    return refs[0] if len(refs) == 1 else refs


def _time(text: str | None) -> str | None:
    """A recorded UTC time with the offset spelled ``+00:00``, as the profiles' checkers expect."""
    return None if text is None else text[:-1] + "+00:00"


def _status(ok: bool) -> str:
    return f"http://schema.org/{'Completed' if ok else 'Failed'}ActionStatus"


def file_id(path: str) -> str:
    """A bundle path as an RO-Crate ``@id``: a relative URI reference."""
    return quote(path, safe="/")


def _frag(text: str) -> str:
    return quote(text, safe="")


def _check_names(bundle: Bundle) -> None:
    for path in bundle.manifest.files:
        top = path.split("/", 1)[0]
        if top in RESERVED:
            raise UsageError(
                f"bundle path {path!r} collides with the crate's own {top}",
                where=str(bundle.path),
                hint="export --in-toto or --prov, or repack under another name",
            )


def _license(text: str) -> tuple[dict[str, str], dict[str, Any]]:
    if _SPDX_ID.match(text):
        lid = f"http://spdx.org/licenses/{text}"
        return _ref(lid), {"@id": lid, "@type": "CreativeWork", "name": text, "identifier": text}
    return _ref("#license"), {
        "@id": "#license",
        "@type": "CreativeWork",
        "name": text,
        "description": "SPDX license expression",
    }


def _date_published(created: str | None) -> str:
    """The bundle's ``created``, else SOURCE_DATE_EPOCH, else today (UTC): RO-Crate 1.1 requires
    a ``datePublished``, and this is the only clock an export ever reads."""
    from ..bundle.pack import created_timestamp

    return created_timestamp(created) or time.strftime("%Y-%m-%d", time.gmtime())


def _identifier(scheme: str, value: str) -> str:
    s = scheme.lower()
    if s == "doi":
        return value if value.startswith("https://") else f"https://doi.org/{value}"
    if s == "arxiv":
        return f"https://arxiv.org/abs/{value}"
    if s in ("url", "uri"):
        return value
    if s == "handle":
        return f"https://hdl.handle.net/{value}"
    return f"{scheme}:{value}"


def crate_metadata(bundle: Bundle) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document of ``bundle``.

    Deterministic (no UUIDs, no clock) except for ``datePublished`` when the bundle records no
    ``created`` time and SOURCE_DATE_EPOCH is not set: then it is today's date.
    """
    _check_names(bundle)
    m = bundle.manifest
    meta = m.bundle
    steps = m.steps
    imgs = images(bundle)
    contextual: dict[str, dict[str, Any]] = {}

    def add(entity: dict[str, Any]) -> None:
        contextual.setdefault(entity["@id"], entity)

    # -- data entities: every bundle file ----------------------------------------------------
    files: list[dict[str, Any]] = []
    image_ids: dict[str, str] = {}
    for path, f in sorted(m.files.items()):
        blob = m.blobs[f.digest]
        e: dict[str, Any] = {
            "@id": file_id(path),
            "@type": "File",
            "name": path,
            "contentSize": str(blob.size),
            "encodingFormat": blob.media_type,
            "sha256": hexof(f.digest),
        }
        img = imgs.get(f.digest)
        if img is not None and img.path == path:
            e.update(_image_props(img, bundle.id))
            image_ids[f.digest] = e["@id"]
        files.append(e)
    for digest, img in imgs.items():
        if digest not in image_ids:
            iid = f"#sha256-{hexof(digest)}"
            image_ids[digest] = iid
            add(
                {
                    "@id": iid,
                    "@type": ["SoftwareApplication", "ContainerImage"],
                    "contentSize": str(img.size),
                    "encodingFormat": img.media_type,
                    "sha256": hexof(digest),
                    **_image_props(img, bundle.id),
                }
            )

    def content(path: str, digest: str) -> str:
        if file_for(m, path, digest):
            return file_id(path)
        cid = f"#sha256-{hexof(digest)}"
        blob = m.blobs[digest]
        add(
            {
                "@id": cid,
                "@type": "CreativeWork",
                "name": path,
                "alternateName": path,
                "contentSize": str(blob.size),
                "encodingFormat": blob.media_type,
                "sha256": hexof(digest),
                "description": "content the recorded steps read or wrote at this path; "
                "not the bundle's file there",
            }
        )
        return cid

    manifest_entity: dict[str, Any] = {
        "@id": MANIFEST,
        "@type": "File",
        "name": "capsa bundle manifest",
        "description": "The bundle's manifest.json: its SHA-256 is the bundle id; the signatures "
        "are over these bytes. `capsa replay` executes its steps.",
        "identifier": bundle.id,
        "contentSize": str(len(bundle.manifest_bytes)),
        "encodingFormat": "application/json",
        "sha256": hexof(bundle.id),
    }

    # -- root -------------------------------------------------------------------------------
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": meta.title or f"capsa bundle {bundle.id}",
        "description": meta.description or f"Exported from the capsa bundle {bundle.id}.",
    }
    idents = [_identifier(i.scheme, i.value) for i in meta.identifiers] + [bundle.id]
    root["identifier"] = idents[0] if len(idents) == 1 else idents
    root["datePublished"] = _date_published(meta.created)
    if meta.license:
        root["license"], lic = _license(meta.license)
    else:  # RO-Crate 1.1 requires a license; say honestly that none was recorded
        root["license"], lic = (
            _ref("#license"),
            {
                "@id": "#license",
                "@type": "CreativeWork",
                "name": "no license recorded",
                "description": "The capsa bundle records no license; ask its authors before reuse.",
            },
        )
    add(lic)
    authors = []
    for n, a in enumerate(meta.authors, start=1):
        aid = f"https://orcid.org/{a.orcid}" if a.orcid else f"#author-{n}"
        person: dict[str, Any] = {"@id": aid, "@type": "Person", "name": a.name}
        if a.affiliation:
            oid = f"#organization-{_frag(a.affiliation)}"
            person["affiliation"] = _ref(oid)
            add({"@id": oid, "@type": "Organization", "name": a.affiliation})
        add(person)
        authors.append(aid)
    if authors:
        root["author"] = _refs(authors)
    if meta.publisher:
        add({"@id": "#publisher", "@type": "Organization", "name": meta.publisher})
        root["publisher"] = _ref("#publisher")
    readme = {
        "@id": README,
        "@type": "File",
        "name": "README",
        "about": _ref("./"),
        "encodingFormat": "text/markdown",
        "description": "What this crate holds and how to check it with capsa",
    }
    root["hasPart"] = _refs([MANIFEST, README] + [e["@id"] for e in files])

    # -- the run ----------------------------------------------------------------------------
    descriptor: dict[str, Any] = {
        "@id": METADATA,
        "@type": "CreativeWork",
        "conformsTo": _ref(RO_CRATE),
        "about": _ref("./"),
    }
    if steps:
        _run(bundle, root, descriptor, manifest_entity, imgs, image_ids, content, add)
    graph = [descriptor, root, manifest_entity, readme, *files, *contextual.values()]
    return {"@context": CONTEXT, "@graph": graph}


def _image_props(img: ImageRef, bundle_id: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "@type": ["File", "SoftwareApplication", "ContainerImage"]
        if img.path
        else ["SoftwareApplication", "ContainerImage"],
        "name": img.label,
        "additionalType": _ref(f"{WFRUN}SIFImage"),
        "sha256": hexof(img.digest),
        # Content-addressed: the image's digest is its version, and it is served by the bundle.
        "softwareVersion": img.digest,
        "registry": f"urn:capsa:bundle:{bundle_id}",
    }
    if img.path:
        props["alternateName"] = img.path
    if img.sif_id:
        props["identifier"] = f"urn:uuid:{img.sif_id}"
    if img.arch:
        props["processorRequirements"] = img.arch
    if img.image_from:
        props["description"] = f"SIF image built from {img.image_from}"
    return props


def _run(
    bundle: Bundle,
    root: dict[str, Any],
    descriptor: dict[str, Any],
    workflow: dict[str, Any],
    imgs: dict[str, ImageRef],
    image_ids: dict[str, str],
    content: Any,
    add: Any,
) -> None:
    m = bundle.manifest
    steps = m.steps
    root["conformsTo"] = _refs(list(PROFILES))
    descriptor["conformsTo"] = _refs([RO_CRATE, WORKFLOW_RO_CRATE])
    root["mainEntity"] = _ref(MANIFEST)
    for pid, (name, version) in PROFILES.items():
        add({"@id": pid, "@type": "CreativeWork", "name": name, "version": version})
    lang = "#capsa-manifest-format"
    add(
        {
            "@id": lang,
            "@type": "ComputerLanguage",
            "name": "capsa bundle manifest",
            "alternateName": "capsa",
            "version": m.capsa,
        }
    )
    workflow["@type"] = ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]
    workflow["conformsTo"] = _ref(BIOSCHEMAS_WORKFLOW)
    workflow["version"] = bundle.id  # a manifest is its own version: its digest
    workflow["programmingLanguage"] = _ref(lang)
    workflow["hasPart"] = _refs([image_ids[d] for d in imgs])
    if root.get("author"):
        workflow["author"] = root["author"]
    if root.get("license"):
        workflow["license"] = root["license"]

    engine: dict[str, Any] = {
        "@id": "#capsa",
        "@type": "SoftwareApplication",
        "name": "capsa",
        "description": "records each step's container run (`capsa run`) and seals it into a bundle",
    }
    versions = recorder_versions(steps)
    if len(versions) == 1:
        engine["softwareVersion"] = versions[0]
    add(engine)

    # Who ran it: the bundle's authors (else its publisher), the agent of every action.
    agent = root.get("author") or root.get("publisher")
    who = {"agent": agent} if agent else {}
    how_to_steps, controls, actions = [], [], []
    for i, s in enumerate(steps):
        key = _frag(s.name)
        hid, aid, cid = f"#step-{key}", f"#run-{key}", f"#control-{key}"
        # A step recorded without an image (it ran on the host's software) has no instrument.
        ran_in = {} if s.image is None else _ref(image_ids[s.image])
        how: dict[str, Any] = {"@id": hid, "@type": "HowToStep", "name": s.name, "position": i}
        add({**how, "workExample": ran_in} if ran_in else how)
        ok = s.exit_code == 0
        status = _status(ok)
        runtime = f"{s.runtime.name} {s.runtime.version}".strip()
        action: dict[str, Any] = {
            "@id": aid,
            "@type": "CreateAction",
            "name": f"Run of step {s.name}",
            "description": f"{shlex.join(s.argv)}  (in {s.workdir}, runtime {runtime})",
            **({"instrument": ran_in, "containerImage": ran_in} if ran_in else {}),
            **who,
        }
        if s.inputs:
            action["object"] = _refs([content(f.path, f.digest) for f in s.inputs])
        if s.outputs:
            action["result"] = _refs([content(f.path, f.digest) for f in s.outputs])
        action["actionStatus"] = status
        if not ok:
            action["error"] = f"exit code {s.exit_code}"
        if (t := _time(start_time(s.host))) is not None:
            action["startTime"] = t
        if (t := _time(end_time(s.host))) is not None:
            action["endTime"] = t
        env = []
        for k, v in sorted(s.env.items()):
            pid = f"#env-{key}-{_frag(k)}"
            add({"@id": pid, "@type": "PropertyValue", "name": k, "value": v})
            env.append(pid)
        if env:
            action["environment"] = _refs(env)
        add(action)
        control = {
            "@id": cid,
            "@type": "ControlAction",
            "name": f"orchestrate {s.name}",
            "instrument": _ref(hid),
            "object": _ref(aid),
            "actionStatus": status,
            **who,
        }
        if not ok:
            control["error"] = action["error"]
        add(control)
        how_to_steps.append(hid)
        controls.append(cid)
        actions.append(aid)
    workflow["step"] = _refs(how_to_steps)

    failed = [s.name for s in steps if s.exit_code != 0]
    status = _status(not failed)
    run: dict[str, Any] = {
        "@id": "#run",
        "@type": "CreateAction",
        "name": f"Run of {MANIFEST}",
        "description": f"The {len(steps)} recorded steps of bundle {bundle.id}, in order",
        "instrument": _ref(MANIFEST),
        **who,
    }
    if firsts := origins(steps):
        run["object"] = _refs([content(p, d) for p, d in firsts])
    if lasts := results(steps):
        run["result"] = _refs([content(p, d) for p, d in lasts])
    run["actionStatus"] = status
    error = {"error": f"failed steps: {', '.join(failed)}"} if failed else {}
    run.update(error)
    started, finished = run_span(steps)
    if started is not None:
        run["startTime"] = _time(started)
    if finished is not None:
        run["endTime"] = _time(finished)
    add(run)
    add(
        {
            "@id": "#capsa-run",
            "@type": "OrganizeAction",
            "name": "Recording with capsa",
            "instrument": _ref("#capsa"),
            "object": _refs(controls),
            "result": _ref("#run"),
            "actionStatus": status,
            **who,
            **error,
        }
    )
    root["mentions"] = _refs(["#run", *actions])


def readme_text(bundle: Bundle) -> bytes:
    """The crate's README.md: what it holds, and how to check it against the bundle."""
    meta = bundle.manifest.bundle
    lines = [f"# {meta.title or 'capsa bundle'}", ""]
    if meta.description:
        lines += [meta.description, ""]
    lines += [
        f"This RO-Crate was exported from the capsa bundle `{bundle.id}`: "
        f"{len(bundle.manifest.files)} files and {len(bundle.manifest.steps)} recorded steps.",
        "`ro-crate-metadata.json` describes them; `capsa-manifest.json` is the bundle's manifest",
        "(its SHA-256 is the bundle id, and the bundle's signatures are over its bytes).",
        "",
        "With the bundle itself: `capsa verify BUNDLE --key PUBLIC_KEY` checks every byte and",
        "signature, `capsa replay BUNDLE --key PUBLIC_KEY` re-runs the steps in their images.",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
