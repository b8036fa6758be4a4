"""`capsa export`: each document is loaded by its ecosystem's own library, never by our parser.

RO-Crate by ``rocrate`` (ROCrate), in-toto by ``in_toto_attestation`` (its Statement validation
and the SLSA Provenance v1 protobuf), PROV-JSON by ``prov`` (ProvDocument). The bundles are
made with ``capsa.pack(..., steps=[Step(...)])`` and a small SIF written by ``capsa.sif``, so no
container runtime is needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import capsa
import capsa.cli
from capsa.cli import export as _cli_export
from capsa.containers.sif import SifObject, write_sif
from capsa.errors import Error, ExistsError, FormatError, NotFoundError, UsageError
from capsa.export import (
    crate_metadata,
    intoto_statement,
    prov_document,
    write_crate,
    write_intoto,
    write_prov,
)
from capsa.format.digest import sha256_file
from capsa.format.manifest import Author, HostInfo, RuntimeInfo, Step, StepFile
from capsa.signing.dsse import parse_envelope
from capsa.signing.keys import keygen, load_private_key, load_public_key

rocrate_lib = pytest.importorskip("rocrate.rocrate", reason="the rocrate library validates crates")
prov_model = pytest.importorskip("prov.model", reason="the prov library validates PROV-JSON")

SIF = Path(__file__).resolve().parents[2] / "fixtures" / "sif"
HOSTNAME = "node17.secret-cluster.example"


@dataclass
class Analysis:
    bundle: Path
    files: dict[str, bytes]  # bundle path -> content
    image_digest: str


def _write_image(path: Path) -> None:
    squash = (SIF / "one-group.sif").read_bytes()[36864:40960]  # a real 4096-byte squashfs
    with path.open("wb") as f:
        write_sif(
            f,
            [
                SifObject("Deffile", b"Bootstrap: docker\nFrom: km3net/km3pipe:9.13\n"),
                SifObject.partition(squash, arch="amd64"),
            ],
        )


@pytest.fixture
def analysis(tmp_path: Path) -> Analysis:
    """raw data.h5 -(select)-> events.h5 -(hist)-> hist.h5; draft/final rewrite notes.txt;
    a failing step; one file that no step touches."""
    src = tmp_path / "src"
    src.mkdir()
    img = src / "reco.sif"
    _write_image(img)
    contents = {
        "raw data.h5": b"\x89HDF\r\n\x1a\nraw",
        "events.h5": b"events",
        "hist.h5": b"histograms",
        "notes.txt": b"final notes\n",
        "backup/notes-v0.txt": b"draft notes\n",  # the content draft wrote, before final
        "failed.log": b"partial",
        "README.txt": b"read me\n",
    }
    paths = {}
    for name, data in contents.items():
        p = src / name.replace("/", "_")
        p.write_bytes(data)
        paths[name] = p
    d = {k: sha256_file(v) for k, v in paths.items()}
    image = sha256_file(img)
    rt = RuntimeInfo(name="bwrap", version="0.8.0")

    def host(started: str, ms: int) -> HostInfo:
        return HostInfo(
            hostname=HOSTNAME,
            kernel="6.1.0-secret",
            machine="x86_64",
            started=started,
            duration_ms=ms,
            capsa_version="0.1.0",
        )

    steps = [
        Step(
            name="select",
            image=image,
            argv=("python3", "select.py", "raw data.h5"),
            env={"TZ": "UTC", "LC_ALL": "C"},
            inputs=(StepFile(path="raw data.h5", digest=d["raw data.h5"]),),
            outputs=(StepFile(path="events.h5", digest=d["events.h5"]),),
            runtime=rt,
            host=host("2026-11-25T09:00:00Z", 1500),
        ),
        Step(
            name="hist",
            image=image,
            argv=("python3", "hist.py"),
            inputs=(StepFile(path="events.h5", digest=d["events.h5"]),),
            outputs=(StepFile(path="hist.h5", digest=d["hist.h5"]),),
            runtime=rt,
            host=host("2026-11-25T09:00:02Z", 3000),
        ),
        Step(
            name="draft",
            image=image,
            argv=("sh", "-c", "echo draft notes > notes.txt"),
            outputs=(StepFile(path="notes.txt", digest=d["backup/notes-v0.txt"]),),
            runtime=rt,
        ),
        Step(
            name="final",
            image=image,
            argv=("sh", "-c", "echo final notes > notes.txt"),
            inputs=(StepFile(path="notes.txt", digest=d["backup/notes-v0.txt"]),),
            outputs=(StepFile(path="notes.txt", digest=d["notes.txt"]),),
            runtime=rt,
        ),
        Step(
            name="crash",
            image=image,
            argv=("false",),
            outputs=(StepFile(path="failed.log", digest=d["failed.log"]),),
            runtime=rt,
            exit_code=2,
        ),
    ]
    roles = [
        ("raw data.h5", "input"),
        ("events.h5", "intermediate"),
        ("hist.h5", "output"),
        ("notes.txt", "output"),
        ("images/*", "image"),
    ]
    bundle = capsa.pack(
        tmp_path / "analysis.capsa",
        files={**paths, "images/reco.sif": img},
        steps=steps,
        roles=roles,
        title="ARCA muon selection",
        description="A test analysis",
        authors=[
            Author(name="A. Physicist", orcid="0000-0002-1825-0097", affiliation="CPPM"),
            "B. Student",
        ],
        license="CC-BY-4.0",
        identifiers=[("doi", "10.5281/zenodo.1")],
        created="2026-11-26T00:00:00Z",
    ).path
    return Analysis(bundle, {**contents, "images/reco.sif": img.read_bytes()}, image)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """A bundle without steps (and without outputs)."""
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.bin").write_bytes(b"\0\1\2")
    return capsa.pack(
        tmp_path / "plain.capsa",
        files={"a.txt": tmp_path / "a.txt", "data/b.bin": tmp_path / "b.bin"},
    ).path


def _run(*args: str | os.PathLike[str]) -> int:
    """``capsa export ARGS`` through the real CLI once it is wired, else through a parser built
    the same way (common -v/-q flags, errors printed as one line, exit code returned)."""
    argv = ["export", *[str(a) for a in args]]
    if "export" in capsa.cli.build_parser().format_help():
        return capsa.cli.main(argv)
    top = argparse.ArgumentParser(prog="capsa")
    top.add_argument("-q", "--quiet", action="store_true", default=False)
    top.add_argument("-v", "--verbose", action="store_true", default=False)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    _cli_export.add_parsers(top.add_subparsers(dest="command", required=True), common)
    ns = top.parse_args(argv)
    try:
        return int(ns.func(ns))
    except Error as e:
        print(f"capsa: error: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _id(value: Any) -> str:
    """The @id of what rocrate returns for a reference: an entity, or the bare id it could not
    resolve to an entity of the crate."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value["@id"])
    return str(value.id)


def _ids(value: Any) -> list[str]:
    return [_id(v) for v in _as_list(value)]


# -- RO-Crate --------------------------------------------------------------------------------


def _check_crate(crate: Any, analysis: Analysis) -> None:
    with capsa.open(analysis.bundle) as b:
        m = b.manifest
        bundle_id = b.id
    root = crate.root_dataset
    assert crate.version == "1.1"
    assert root["name"] == "ARCA muon selection"
    assert root["description"] == "A test analysis"
    assert root["datePublished"] == "2026-11-26T00:00:00Z"
    assert _id(root["license"]) == "http://spdx.org/licenses/CC-BY-4.0"
    assert set(root["identifier"]) == {bundle_id, "https://doi.org/10.5281/zenodo.1"}
    authors = {a.id: a for a in _as_list(root["author"])}
    assert authors["https://orcid.org/0000-0002-1825-0097"]["affiliation"]["name"] == "CPPM"
    assert [a["name"] for a in authors.values()] == ["A. Physicist", "B. Student"]
    assert set(_ids(root["conformsTo"])) == {
        "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5",
        "https://w3id.org/ro/wfrun/provenance/0.5",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
    }

    # Every bundle file is a File data entity with its size, media type and sha256.
    files = {e.id: e for e in crate.data_entities}
    assert set(files) == {p.replace(" ", "%20") for p in m.files} | {
        "capsa-manifest.json",
        "README.md",
    }
    for path, f in m.files.items():
        e = files[path.replace(" ", "%20")]
        assert "File" in _as_list(e.type)
        assert e["sha256"] == f.digest.removeprefix("sha256:")
        assert e["contentSize"] == str(len(analysis.files[path]))
        assert e["encodingFormat"] == m.blobs[f.digest].media_type
    manifest = files["capsa-manifest.json"]
    assert manifest["sha256"] == bundle_id.removeprefix("sha256:")
    assert crate.mainEntity is manifest
    assert {"ComputationalWorkflow", "HowTo"} <= set(manifest.type)

    # The image: a SIF ContainerImage with its sha256, the instrument of every step.
    image = files["images/reco.sif"]
    assert {"File", "SoftwareApplication", "ContainerImage"} <= set(image.type)
    assert _id(image["additionalType"]) == "https://w3id.org/ro/terms/workflow-run#SIFImage"
    assert image["sha256"] == analysis.image_digest.removeprefix("sha256:")
    assert image["name"] == "km3net/km3pipe:9.13"
    assert image["processorRequirements"] == "amd64"
    assert _ids(manifest["hasPart"]) == ["images/reco.sif"]

    # One CreateAction per step (plus the run of the whole workflow), linked as recorded.
    actions = {e.id: e for e in crate.get_entities() if e.type == "CreateAction"}
    step_actions = [a for a in actions.values() if a["instrument"] is image]
    assert len(step_actions) == len(m.steps) == 5
    assert len(actions) == len(m.steps) + 1
    by_name = {a["name"].removeprefix("Run of step "): a for a in step_actions}
    select = by_name["select"]
    assert select["containerImage"] is image
    assert _ids(select["object"]) == ["raw%20data.h5"] and _ids(select["result"]) == ["events.h5"]
    assert select["startTime"] == "2026-11-25T09:00:00+00:00"
    assert select["endTime"] == "2026-11-25T09:00:01.500+00:00"
    assert select["actionStatus"] == "http://schema.org/CompletedActionStatus"
    env = {pv["name"]: pv["value"] for pv in _as_list(select["environment"])}
    assert env == {"TZ": "UTC", "LC_ALL": "C"}
    assert "select.py" in select["description"]
    assert _ids(by_name["hist"]["object"]) == ["events.h5"]
    assert _ids(by_name["hist"]["result"]) == ["hist.h5"]
    crash = by_name["crash"]
    assert crash["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert crash["error"] == "exit code 2"
    assert "startTime" not in crash.properties()
    # notes.txt as draft wrote it is not the bundle's notes.txt: a contextual entity.
    draft_out = by_name["draft"]["result"]
    assert draft_out.id.startswith("#sha256-") and draft_out["alternateName"] == "notes.txt"
    assert draft_out["sha256"] == hashlib.sha256(b"draft notes\n").hexdigest()
    assert by_name["final"]["object"] is draft_out
    assert _ids(by_name["final"]["result"]) == ["notes.txt"]
    run = actions["#run"]
    assert run["instrument"] is manifest
    assert _ids(run["object"]) == ["raw%20data.h5"]
    assert set(_ids(run["result"])) == {"hist.h5", "notes.txt", "failed.log"}
    assert run["startTime"] == "2026-11-25T09:00:00+00:00"
    assert run["endTime"] == "2026-11-25T09:00:05+00:00"

    # Provenance Run Crate: steps, control actions and the engine run.
    steps = _as_list(manifest["step"])
    assert [s["name"] for s in steps] == [s.name for s in m.steps]
    assert all(s["workExample"] is image for s in steps)
    controls = [e for e in crate.get_entities() if e.type == "ControlAction"]
    assert {c["object"].id for c in controls} == {a.id for a in step_actions}
    organize = [e for e in crate.get_entities() if e.type == "OrganizeAction"]
    assert len(organize) == 1 and organize[0]["result"] is run
    assert organize[0]["instrument"]["name"] == "capsa"
    assert {c.id for c in _as_list(organize[0]["object"])} == {c.id for c in controls}


def test_rocrate_directory_loads_in_rocrate_with_payload(
    analysis: Analysis, tmp_path: Path
) -> None:
    out = tmp_path / "crate"
    assert _run(analysis.bundle, "--ro-crate", out) == 0
    crate = rocrate_lib.ROCrate(out)
    _check_crate(crate, analysis)
    # The payload is the bundle's members, byte for byte, at their bundle paths.
    for path, data in analysis.files.items():
        assert (out / path).read_bytes() == data
    with capsa.open(analysis.bundle) as b:
        assert (out / "capsa-manifest.json").read_bytes() == b.manifest_bytes
        assert crate.dereference("raw%20data.h5").source == out / "raw data.h5"
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == set(analysis.files) | {
        "ro-crate-metadata.json",
        "capsa-manifest.json",
        "README.md",
    }
    assert (out / "README.md").read_text().startswith("# ARCA muon selection\n")


# The Workflow Run terms capsa uses, as https://w3id.org/ro/terms/workflow-run/context defines
# them: roc-validator fetches contexts over HTTP, so the test inlines them (the RO-Crate 1.1
# context from the rocrate package's own copy) and runs it --offline.
WFRUN_TERMS = [
    *("ContainerImage", "SIFImage", "DockerImage", "containerImage", "registry", "tag"),
    *("sha256", "environment", "ParameterConnection", "connection", "sourceParameter"),
    *("targetParameter", "resourceUsage"),
]


def _validate_recommended(crate_dir: Path, tmp_path: Path) -> list[tuple[str, str, str]]:
    """(severity, check, message) of every issue roc-validator finds at level recommended."""
    pytest.importorskip("rocrate_validator", reason="roc-validator checks RO-Crate profiles")
    import shutil
    import subprocess

    import rocrate

    local = tmp_path / "validated"
    shutil.copytree(crate_dir, local)
    meta = json.loads((local / "ro-crate-metadata.json").read_text())
    data = Path(rocrate.__file__).with_name("data")
    ro_context = json.loads((data / "ro-crate.jsonld").read_text())["@context"]
    # rocrate's copy maps Bioschemas terms under /terms/; the published 1.1 context (and the
    # validator's shapes) use https://bioschemas.org/<Term>.
    ro_context["ComputationalWorkflow"] = "https://bioschemas.org/ComputationalWorkflow"
    wfrun = "https://w3id.org/ro/terms/workflow-run#"
    meta["@context"] = [ro_context, {t: wfrun + t for t in WFRUN_TERMS}]
    (local / "ro-crate-metadata.json").write_text(json.dumps(meta))
    report = tmp_path / "report.json"
    cli = "from rocrate_validator.cli import cli; cli()"
    cmd = [sys.executable, "-c", cli, "-y", "validate", "--offline"]
    r = subprocess.run(
        [*cmd, "-l", "recommended", "-f", "json", "-o", str(report), "--no-paging", str(local)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not report.exists():
        pytest.skip(f"roc-validator did not run: {r.stderr[-300:]}")
    issues = json.loads(report.read_text())["issues"]
    return [(i["severity"], i["check"]["identifier"], i["message"]) for i in issues]


def test_rocrate_meets_the_recommendations_the_bundle_can_meet(tmp_path: Path) -> None:
    """Issue 10 item 15: the RECOMMENDED-level findings about publisher, affiliations, agents,
    versions, the image registry and the README are gone — with what `capsa pack` was told
    (--publisher, --affiliation). What only the analyst knows and did not say (an end time of a
    step recorded without one, a URL for the organisations) may remain."""
    src = tmp_path / "src"
    src.mkdir()
    img = src / "reco.sif"
    _write_image(img)
    (src / "in.txt").write_bytes(b"in")
    (src / "out.txt").write_bytes(b"out")
    d = {n: sha256_file(src / n) for n in ("in.txt", "out.txt")}
    bundle = capsa.pack(
        tmp_path / "b.capsa",
        files={"in.txt": src / "in.txt", "out.txt": src / "out.txt", "images/reco.sif": img},
        steps=[
            Step(
                name="select",
                image=sha256_file(img),
                argv=("cp", "in.txt", "out.txt"),
                inputs=(StepFile(path="in.txt", digest=d["in.txt"]),),
                outputs=(StepFile(path="out.txt", digest=d["out.txt"]),),
                runtime=RuntimeInfo(name="bwrap", version="0.8.0"),
                host=HostInfo(started="2026-11-25T09:00:00Z", duration_ms=10, capsa_version="1"),
            )
        ],
        roles=[("images/*", "image")],
        title="muons",
        license="CC-BY-4.0",
        authors=[Author(name="A. Physicist", affiliation="CPPM")],
        publisher="KM3NeT",
        created="2026-11-26T00:00:00Z",
    ).path
    out = tmp_path / "crate"
    assert _run(bundle, "--ro-crate", out) == 0
    found = _validate_recommended(out, tmp_path)
    messages = " | ".join(m for _, _, m in found)
    for gone in (
        "`publisher` property of a `Root Data Entity` SHOULD be an `Organization`",
        "author SHOULD have an organizational affiliation",
        "Action SHOULD have an agent",
        "ContainerImage SHOULD have a registry",
        "README.md SHOULD",
        "SoftwareApplication SHOULD have a version",
        "ComputationalWorkflow SHOULD have a version",
        "Bioschemas ComputationalWorkflow",
        "Action SHOULD have an endTime",
    ):
        assert gone not in messages, found
    assert not [f for f in found if f[0] == "REQUIRED"], found


def test_pack_takes_publisher_and_affiliations(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(b"a")
    out = tmp_path / "b.capsa"
    r = cli(
        "pack",
        "-q",
        "-o",
        out,
        tmp_path / "a.txt",
        "--author",
        "A",
        "--affiliation",
        "CPPM",
        "--author",
        "B",
        "--author",
        "C",
        "--affiliation",
        "INFN",
        "--publisher",
        "KM3NeT",
    )
    assert r.rc == 0, r.err
    with capsa.open(out) as b:
        meta = b.manifest.bundle
    assert [(a.name, a.affiliation) for a in meta.authors] == [
        ("A", "CPPM"),
        ("B", None),
        ("C", "INFN"),
    ]
    assert meta.publisher == "KM3NeT"
    r = cli("pack", "-q", "-o", tmp_path / "c.capsa", tmp_path / "a.txt", "--affiliation", "X")
    assert r.rc == 2 and "each --affiliation needs its own --author just before it" in r.err


def test_rocrate_zip_loads_in_rocrate(analysis: Analysis, tmp_path: Path) -> None:
    out = tmp_path / "crate.zip"
    assert _run(analysis.bundle, "--ro-crate", out) == 0
    _check_crate(rocrate_lib.ROCrate(out), analysis)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        for path, data in analysis.files.items():
            assert zf.read(path) == data
        assert set(zf.namelist()) == set(analysis.files) | {
            "ro-crate-metadata.json",
            "capsa-manifest.json",
            "README.md",
        }


@pytest.mark.parametrize("name", ["meta", "meta.zip"])
def test_rocrate_metadata_only(analysis: Analysis, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    assert _run(analysis.bundle, "--ro-crate", out, "--metadata-only") == 0
    if name.endswith(".zip"):
        with zipfile.ZipFile(out) as zf:
            assert zf.namelist() == ["ro-crate-metadata.json"]
    else:
        assert [p.name for p in out.iterdir()] == ["ro-crate-metadata.json"]
    crate = rocrate_lib.ROCrate(out)
    assert len([e for e in crate.get_entities() if e.type == "CreateAction"]) == 6


def test_rocrate_is_deterministic(analysis: Analysis) -> None:
    with capsa.open(analysis.bundle) as b:
        first = json.dumps(crate_metadata(b))
    with capsa.open(analysis.bundle) as b:
        assert json.dumps(crate_metadata(b)) == first
    assert HOSTNAME not in first


def test_rocrate_of_a_bundle_without_steps(
    plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "crate"
    assert _run(plain, "--ro-crate", out) == 0
    crate = rocrate_lib.ROCrate(out)
    assert not [e for e in crate.get_entities() if "Action" in str(e.type)]
    assert "conformsTo" not in crate.root_dataset.properties()  # no run profile claimed
    # RO-Crate 1.1 requires datePublished and license, which this bundle does not record.
    assert crate.root_dataset["datePublished"] == "2023-11-14T22:13:20Z"
    assert crate.root_dataset["license"]["name"] == "no license recorded"
    assert {e.id for e in crate.data_entities} == {
        "a.txt",
        "data/b.bin",
        "capsa-manifest.json",
        "README.md",
    }
    assert (out / "data" / "b.bin").read_bytes() == b"\0\1\2"


def test_rocrate_existing_targets(
    analysis: Analysis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An existing non-empty directory is left alone without --force.
    out = tmp_path / "crate"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert _run(analysis.bundle, "--ro-crate", out) == ExistsError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # --force writes the crate into it, leaving other files alone.
    assert _run(analysis.bundle, "--ro-crate", out, "--force") == 0
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "hist.h5").read_bytes() == b"histograms"
    rocrate_lib.ROCrate(out)
    # An existing empty directory is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(analysis.bundle, "--ro-crate", empty) == 0
    assert (empty / "ro-crate-metadata.json").is_file()
    # A zip target is replaced only with --force.
    z = tmp_path / "c.zip"
    z.write_bytes(b"old")
    assert _run(analysis.bundle, "--ro-crate", z) == ExistsError.exit_code
    assert z.read_bytes() == b"old"
    assert _run(analysis.bundle, "--ro-crate", z, "--force") == 0
    assert zipfile.is_zipfile(z)
    # A regular file where a directory crate should go.
    f = tmp_path / "file"
    f.write_bytes(b"x")
    assert _run(analysis.bundle, "--ro-crate", f, "--force") == ExistsError.exit_code
    assert f.read_bytes() == b"x"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rocrate_name_collision_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("{}")
    b = capsa.pack(tmp_path / "x.capsa", files={"ro-crate-metadata.json": tmp_path / "m.json"}).path
    with capsa.open(b) as bundle, pytest.raises(UsageError, match="collides"):
        crate_metadata(bundle)
    assert _run(b, "--ro-crate", tmp_path / "crate") == UsageError.exit_code
    assert not (tmp_path / "crate").exists()


# -- in-toto ---------------------------------------------------------------------------------


def _validate_statement(doc: dict[str, Any]) -> Any:
    """Validate with in-toto-attestation: the Statement wrapper and the SLSA v1 protobuf."""
    ita = pytest.importorskip(
        "in_toto_attestation.v1.statement", reason="in-toto-attestation validates statements"
    )
    json_format = pytest.importorskip("google.protobuf.json_format")
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2

    pb = json_format.ParseDict(doc, statement_pb2.Statement())  # unknown fields are errors
    ita.Statement.copy_from_pb(pb).validate()
    provenance = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    return pb, provenance


def test_intoto_statement_validates(analysis: Analysis, tmp_path: Path) -> None:
    out = tmp_path / "prov.intoto.json"
    assert _run(analysis.bundle, "--in-toto", out) == 0
    text = out.read_text()
    assert HOSTNAME not in text and "secret" not in text
    doc = json.loads(text)
    pb, provenance = _validate_statement(doc)
    assert pb.type == "https://in-toto.io/Statement/v1"
    assert pb.predicate_type == "https://slsa.dev/provenance/v1"
    subjects = {s.name: s.digest["sha256"] for s in pb.subject}
    assert subjects == {
        "hist.h5": hashlib.sha256(b"histograms").hexdigest(),
        "notes.txt": hashlib.sha256(b"final notes\n").hexdigest(),
    }
    bd = provenance.build_definition
    assert bd.build_type == "urn:capsa:buildtype:replay-steps:v1"
    steps = doc["predicate"]["buildDefinition"]["externalParameters"]["steps"]
    assert [s["name"] for s in steps] == ["select", "hist", "draft", "final", "crash"]
    assert steps[0]["argv"] == ["python3", "select.py", "raw data.h5"]
    assert steps[0]["image"] == analysis.image_digest
    internal = doc["predicate"]["buildDefinition"]["internalParameters"]["steps"]
    assert internal[0]["env"] == {"LC_ALL": "C", "TZ": "UTC"} and internal[4]["exitCode"] == 2
    deps = {d.name: d for d in bd.resolved_dependencies}
    assert deps["images/reco.sif"].digest["sha256"] == analysis.image_digest[7:]
    assert deps["images/reco.sif"].annotations["from"] == "km3net/km3pipe:9.13"
    assert (
        deps["raw data.h5"].digest["sha256"] == hashlib.sha256(b"\x89HDF\r\n\x1a\nraw").hexdigest()
    )
    assert set(deps) == {"images/reco.sif", "raw data.h5"}
    rd = provenance.run_details
    assert rd.builder.id == "urn:capsa:recorder" and rd.builder.version["capsa"] == "0.1.0"
    with capsa.open(analysis.bundle) as b:
        assert rd.metadata.invocation_id == b.id
    assert rd.metadata.started_on.ToJsonString() == "2026-11-25T09:00:00Z"
    assert rd.metadata.finished_on.ToJsonString() == "2026-11-25T09:00:05Z"


def test_intoto_subjects_by_path(
    analysis: Analysis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    assert _run(analysis.bundle, "--in-toto", out, "--subject", "events.h5") == 0
    doc = json.loads(out.read_text())
    assert [s["name"] for s in doc["subject"]] == ["events.h5"]
    capsys.readouterr()
    # A path that is not in the bundle: one line, exit 9, nothing written.
    other = tmp_path / "t.json"
    assert _run(analysis.bundle, "--in-toto", other, "--subject", "nope.h5") == 9
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.h5" in err and "no such file" in err
    assert not other.exists()


def test_intoto_signed_with_key(analysis: Analysis, tmp_path: Path) -> None:
    priv, pub, keyid = keygen(tmp_path / "alice")
    out = tmp_path / "s.dsse.json"
    assert _run(analysis.bundle, "--in-toto", out, "--key", priv) == 0
    env = parse_envelope(out.read_bytes(), where=str(out))
    assert env.payload_type == "application/vnd.in-toto+json"
    assert env.verify(load_public_key(pub)) == [True]
    assert env.signatures[0].keyid == keyid
    other = load_private_key(priv)  # a different key must not verify
    assert other.keyid == keyid
    _, pub2, _ = keygen(tmp_path / "mallory")
    assert env.verify(load_public_key(pub2)) == [False]
    doc = json.loads(env.payload)
    _validate_statement(doc)
    raw = json.loads(out.read_text())
    assert base64.b64decode(raw["payload"]) == env.payload
    with capsa.open(analysis.bundle) as b:
        assert doc == intoto_statement(b)


def test_intoto_of_a_bundle_without_steps_attests_every_file(plain: Path) -> None:
    with capsa.open(plain) as b:
        doc = intoto_statement(b)
    _validate_statement(doc)
    assert [s["name"] for s in doc["subject"]] == ["a.txt", "data/b.bin"]
    assert doc["predicate"]["buildDefinition"]["externalParameters"]["steps"] == []


def test_intoto_to_stdout(analysis: Analysis, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert _run(analysis.bundle, "--in-toto", "-") == 0
    _validate_statement(json.loads(capsys.readouterr().out))


# -- PROV-JSON -------------------------------------------------------------------------------


def _load_prov(text: str) -> Any:
    return prov_model.ProvDocument.deserialize(content=text, format="json")


def test_prov_json_loads_in_prov(analysis: Analysis, tmp_path: Path) -> None:
    out = tmp_path / "prov.json"
    assert _run(analysis.bundle, "--prov", out) == 0
    text = out.read_text()
    assert HOSTNAME not in text
    doc = _load_prov(text)
    pm = prov_model
    records = doc.get_records()

    def of(cls: type) -> list[Any]:
        return [r for r in records if isinstance(r, cls)]

    entities, activities, agents = of(pm.ProvEntity), of(pm.ProvActivity), of(pm.ProvAgent)
    # 8 files + the bundle + notes.txt as draft wrote it
    assert len(entities) == 10
    assert len(activities) == 5
    # 2 authors, the recorder, the bwrap runtime
    assert len(agents) == 4
    labels = {str(a.label) for a in activities}
    assert labels == {"select", "hist", "draft", "final", "crash"}
    # used: 5 images + 3 inputs; generated: 5 outputs
    assert len(of(pm.ProvUsage)) == 8
    assert len(of(pm.ProvGeneration)) == 5
    assert len(of(pm.ProvAssociation)) == 10
    assert len(of(pm.ProvMembership)) == 8
    assert len(of(pm.ProvAttribution)) == 2

    bundle = next(e for e in entities if pm.PROV["Collection"] in e.get_asserted_types())
    assert str(bundle.label) == "ARCA muon selection"
    members = {str(r.formal_attributes[1][1]) for r in of(pm.ProvMembership)}
    assert len(members) == 8
    select = next(a for a in activities if str(a.label) == "select")
    assert select.get_startTime().isoformat() == "2026-11-25T09:00:00+00:00"
    assert select.get_endTime().isoformat() == "2026-11-25T09:00:01.500000+00:00"
    used = [u for u in of(pm.ProvUsage) if u.formal_attributes[0][1] == select.identifier]
    used_labels = {str(doc.get_record(u.formal_attributes[1][1])[0].label) for u in used}
    assert used_labels == {"images/reco.sif", "raw data.h5"}
    sha = {
        str(e.label): next(iter(e.get_attribute("capsa:sha256")))
        for e in entities
        if e.get_attribute("capsa:sha256")
    }
    assert sha["hist.h5"] == hashlib.sha256(b"histograms").hexdigest()
    persons = [a for a in agents if pm.PROV["Person"] in a.get_asserted_types()]
    assert sorted(str(p.label) for p in persons) == ["A. Physicist", "B. Student"]
    # Identifiers are valid xs:QNames (no digit first): the ORCID is an attribute of the person.
    orcids = [str(next(iter(p.get_attribute("capsa:orcid")), "")) for p in persons]
    assert "https://orcid.org/0000-0002-1825-0097" in orcids

    # Round trip through the library's own serializer; PROV-N can write it too.
    again = _load_prov(doc.serialize(format="json"))
    assert again == doc
    assert "file:raw_20data.h5" in doc.get_provn()


def _prov_xsd() -> Any:
    """W3C's prov.xsd as the prov package ships it (its own tests validate against it)."""
    etree = pytest.importorskip("lxml.etree", reason="lxml validates PROV-XML against prov.xsd")
    import prov

    xsd = Path(prov.__file__).parent / "tests" / "schemas" / "prov.xsd"
    if not xsd.is_file():
        pytest.skip(f"the prov package does not ship the W3C schema here ({xsd})")
    return etree, etree.XMLSchema(etree.parse(str(xsd)))


def test_prov_xml_is_valid_against_the_w3c_schema(
    analysis: Analysis, plain: Path, tmp_path: Path
) -> None:
    """PROV-JSON converted by the prov library to PROV-XML validates against prov.xsd: every
    identifier is an xs:QName — paths with '/' and spaces, names starting with a digit, ORCIDs,
    bundle ids and runtime versions included (issue 10 item 13: 26 errors before)."""
    etree, schema = _prov_xsd()
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "in.txt").write_bytes(b"in")
    (odd / "out.txt").write_bytes(b"out")
    digests = {n: sha256_file(odd / n) for n in ("in.txt", "out.txt")}
    img = odd / "i.sif"
    _write_image(img)
    odd_bundle = capsa.pack(
        tmp_path / "odd.capsa",
        files={
            "2024 runs/ü_x.txt": odd / "in.txt",
            "0/out.txt": odd / "out.txt",
            "9images/i.sif": img,
        },
        steps=[
            Step(
                name="1st step: é_",
                image=sha256_file(img),
                argv=("true",),
                inputs=(StepFile(path="2024 runs/ü_x.txt", digest=digests["in.txt"]),),
                outputs=(StepFile(path="0/out.txt", digest=digests["out.txt"]),),
                runtime=RuntimeInfo(name="0bwrap", version="0.8.0/x"),
            )
        ],
        authors=[Author(name="7 of Nine", orcid="0000-0002-1825-0097"), "_"],
    ).path
    for bundle in (analysis.bundle, plain, odd_bundle):
        with capsa.open(bundle) as b:
            doc = _load_prov(json.dumps(prov_document(b)))
        xml = etree.fromstring(doc.serialize(format="xml").encode())
        assert schema.validate(xml), [e.message for e in schema.error_log][:5]
    labels = {str(r.label) for r in doc.get_records() if r.label}
    assert {"2024 runs/ü_x.txt", "0/out.txt", "1st step: é_", "7 of Nine"} <= labels


def test_ncname_is_reversible_and_valid() -> None:
    import re

    from capsa.export.prov import ncname

    name = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
    seen = {}
    for text in ["data/log.txt", "1st", "_", "a_2F", "a/", "é", ".x", "-", "a b", "ab"]:
        n = ncname(text)
        assert name.match(n), (text, n)
        assert seen.setdefault(n, text) == text, "two texts, one name"
    assert ncname("data/log.txt") == "data_2Flog.txt"


def test_prov_of_a_bundle_without_steps(plain: Path) -> None:
    with capsa.open(plain) as b:
        doc = _load_prov(json.dumps(prov_document(b)))
    records = doc.get_records()
    assert not [r for r in records if isinstance(r, prov_model.ProvActivity)]
    assert len([r for r in records if isinstance(r, prov_model.ProvEntity)]) == 3
    assert len([r for r in records if isinstance(r, prov_model.ProvMembership)]) == 2


# -- the command: several exports, bad input -------------------------------------------------


def test_all_three_at_once_and_json_report(
    analysis: Analysis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rc = _run(
        analysis.bundle,
        "--ro-crate",
        tmp_path / "c.zip",
        "--in-toto",
        tmp_path / "i.json",
        "--prov",
        tmp_path / "p.json",
        "--json",
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["format"] for e in report["exports"]] == ["ro-crate", "in-toto", "prov-json"]
    for name in ("c.zip", "i.json", "p.json"):
        assert (tmp_path / name).is_file()


def test_existing_file_targets_need_force(
    analysis: Analysis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag in ("--in-toto", "--prov"):
        out = tmp_path / f"{flag[2:]}.json"
        out.write_text("precious")
        capsys.readouterr()
        assert _run(analysis.bundle, flag, out) == 8
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "destination exists" in err and "--force" in err
        assert out.read_text() == "precious"
        assert _run(analysis.bundle, flag, out, "--force") == 0
        json.loads(out.read_text())


def test_nothing_is_written_when_one_target_fails(analysis: Analysis, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("precious")
    rc = _run(
        analysis.bundle,
        "--ro-crate",
        tmp_path / "crate",
        "--in-toto",
        tmp_path / "i.json",
        "--prov",
        tmp_path / "p.json",
    )
    assert rc == 8
    assert not (tmp_path / "crate").exists() and not (tmp_path / "i.json").exists()
    assert (tmp_path / "p.json").read_text() == "precious"


def test_bad_input_is_one_line_with_its_exit_code(
    analysis: Analysis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.capsa"
    junk.write_bytes(b"this is not a bundle")
    cases = [
        ((junk, "--prov", tmp_path / "a.json"), FormatError.exit_code),
        ((tmp_path / "missing.capsa", "--prov", tmp_path / "a.json"), NotFoundError.exit_code),
        ((analysis.bundle,), UsageError.exit_code),
        ((analysis.bundle, "--prov", tmp_path / "a.json", "--metadata-only"), 2),
        ((analysis.bundle, "--prov", tmp_path / "a.json", "--key", "k.key"), 2),
        ((analysis.bundle, "--in-toto", "-", "--prov", "-"), 2),
        ((analysis.bundle, "--prov", tmp_path / "no" / "dir" / "a.json"), 9),
        ((analysis.bundle, "--in-toto", tmp_path / "s.json", "--key", tmp_path / "nokey"), 9),
        ((analysis.bundle, "--prov", tmp_path / "x.json", "--in-toto", tmp_path / "x.json"), 2),
    ]
    for args, code in cases:
        capsys.readouterr()
        assert _run(*args) == code, args
        err = capsys.readouterr().err
        assert err.startswith("capsa: error: ") and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "s.json").exists()


def test_python_api_writers(analysis: Analysis, tmp_path: Path) -> None:
    with capsa.open(analysis.bundle) as b:
        assert write_prov(b, tmp_path / "p.json") == tmp_path / "p.json"
        assert write_intoto(b, tmp_path / "i.json") == tmp_path / "i.json"
        assert write_crate(b, tmp_path / "c", metadata_only=True) == tmp_path / "c"
        with pytest.raises(ExistsError):
            write_prov(b, tmp_path / "p.json")
        first = (tmp_path / "p.json").read_bytes()
        write_prov(b, tmp_path / "p.json", force=True)
        assert (tmp_path / "p.json").read_bytes() == first  # deterministic


@pytest.mark.skipif(
    "export" not in capsa.cli.build_parser().format_help(),
    reason="`capsa export` is not wired into capsa.cli yet",
)
def test_capsa_cli_main_knows_export(analysis: Analysis, tmp_path: Path) -> None:
    assert (
        capsa.cli.main(["export", str(analysis.bundle), "--prov", str(tmp_path / "p.json"), "-q"])
        == 0
    )
    _load_prov((tmp_path / "p.json").read_text())
