"""`capsa history` and `capsa show`: lineage oldest first with container IDs, DOT graph,
journal lookup."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import capsa
from capsa.containers.sif import SifObject, write_sif
from capsa.format.digest import sha256_file
from capsa.format.manifest import HostInfo, RuntimeInfo, Step, StepFile
from capsa.recording.journal import Journal

SIF = Path(__file__).resolve().parents[2] / "fixtures" / "sif"


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    """raw.h5 -(select)-> events.h5 -(hist)-> hist.h5 ; unrelated step -> other.txt"""
    squash = (SIF / "one-group.sif").read_bytes()[36864:40960]
    img = tmp_path / "reco.sif"
    with img.open("wb") as f:
        write_sif(
            f,
            [
                SifObject("Deffile", b"Bootstrap: docker\nFrom: km3net/km3pipe:9.13\n"),
                SifObject.partition(squash, arch="amd64"),
            ],
        )
    files = {}
    for name, content in (
        ("raw.h5", b"raw"),
        ("events.h5", b"events"),
        ("hist.h5", b"hist"),
        ("other.txt", b"other"),
    ):
        (tmp_path / name).write_bytes(content)
        files[name] = tmp_path / name
    d = {k: sha256_file(v) for k, v in files.items()}
    rt = RuntimeInfo(name="bwrap", version="0.8.0")
    steps = [
        Step(
            name="select",
            image=sha256_file(img),
            argv=("python3", "select.py"),
            env={"TZ": "UTC"},
            inputs=(StepFile(path="raw.h5", digest=d["raw.h5"]),),
            outputs=(StepFile(path="events.h5", digest=d["events.h5"]),),
            runtime=rt,
            host=HostInfo(started="2026-11-25T09:00:00Z"),
        ),
        Step(
            name="unrelated",
            image=sha256_file(img),
            argv=("touch", "other.txt"),
            outputs=(StepFile(path="other.txt", digest=d["other.txt"]),),
            runtime=rt,
        ),
        Step(
            name="hist",
            image=sha256_file(img),
            argv=("python3", "hist.py"),
            inputs=(StepFile(path="events.h5", digest=d["events.h5"]),),
            outputs=(StepFile(path="hist.h5", digest=d["hist.h5"]),),
            runtime=rt,
        ),
    ]
    roles = [
        ("raw.h5", "input"),
        ("events.h5", "intermediate"),
        ("hist.h5", "output"),
        ("other.txt", "output"),
        ("images/*", "image"),
    ]
    b = capsa.pack(
        tmp_path / "c.capsa",
        files={**{k: v for k, v in files.items()}, "images/reco.sif": img},
        steps=steps,
        roles=roles,
        title="KM3NeT demo",
        authors=["A. Physicist"],
    ).path
    return {"bundle": b, "img": img, **files}


def test_history_oldest_first_with_container_ids(chain, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("history", chain["bundle"], "hist.h5")
    assert r.rc == 0, r.err
    text = r.out.decode()
    assert text.index("1. select") < text.index("2. hist")
    assert "unrelated" not in text
    assert "origin   raw.h5" in text
    assert "From: km3net/km3pipe:9.13" in text and "images/reco.sif" in text


def test_history_json_full_and_graph(chain, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dot = tmp_path / "g.dot"
    r = cli("history", chain["bundle"], "hist.h5", "--json", "--graph", dot)
    doc = json.loads(r.out)
    assert [s["name"] for s in doc["steps"]] == ["select", "hist"]
    assert doc["origins"] == [{"path": "raw.h5", "digest": sha256_file(chain["raw.h5"])}]
    assert doc["steps"][0]["recorded"] == "2026-11-25T09:00:00Z"
    assert doc["steps"][0]["image_from"] == "km3net/km3pipe:9.13"
    text = dot.read_text()
    assert text.startswith("digraph") and '"step:select" -> "file:events.h5@' in text
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", str(dot)], check=True, capture_output=True)
    full = cli("history", chain["bundle"], "hist.h5", "--full").out.decode()
    assert "env TZ=UTC" in full and "runtime bwrap 0.8.0" in full
    r = cli("history", chain["bundle"], "hist.h5", "--graph", dot)
    assert r.rc == 8  # never overwrites without --force


def test_history_errors(chain, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("history", chain["bundle"], "nope.h5")
    assert r.rc == 9 and len(r.err_lines) == 1
    r = cli("history", chain["bundle"], "raw.h5")
    assert r.rc == 9 and "original input" in r.err
    (tmp_path / "p.txt").write_text("x")
    plain = capsa.pack(tmp_path / "p.capsa", [tmp_path / "p.txt"]).path
    r = cli("history", plain)
    assert r.rc == 9 and "no recorded steps" in r.err


def test_history_of_a_file_on_disk_via_the_journal(
    chain, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with capsa.open(chain["bundle"]) as b:
        steps = b.manifest.steps
    j = Journal(tmp_path)
    for s in steps:
        j.append(step=s, image_path=str(chain["img"]), status="ok")
    monkeypatch.chdir(tmp_path)
    r = cli("history", "hist.h5", "--json")
    assert r.rc == 0, r.err
    assert [s["name"] for s in json.loads(r.out)["steps"]] == ["select", "hist"]
    (tmp_path / "hist.h5").write_bytes(b"changed")
    r = cli("history", "hist.h5")
    assert r.rc == 9 and "no recorded step produced a file with this content" in r.err


def test_show(chain, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from capsa.signing.keys import keygen

    priv, pub, keyid = keygen(tmp_path / "k")
    assert cli("sign", chain["bundle"], "--key", priv).rc == 0
    r = cli("show", chain["bundle"], "--key", pub)
    text = r.out.decode()
    assert r.rc == 0 and "KM3NeT demo" in text and "A. Physicist" in text
    assert f"{keyid}: valid, trusted" in text
    assert "from km3net/km3pipe:9.13" in text and "used by select, unrelated, hist" in text
    doc = json.loads(cli("show", chain["bundle"], "--json").out)
    assert doc["signatures"][0]["status"] == "unknown-key"
    assert [s["name"] for s in doc["steps"]] == ["select", "unrelated", "hist"]
    assert doc["files"]["output"][0]["path"] == "hist.h5"
    assert doc["compression_ratio"] >= 1.0 and doc["content_size"] > 0
