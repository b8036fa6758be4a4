"""The main job: the KM3NeT example recorded, sealed and replayed end to end on real data, and
the second user's path (only the bundle and a public key, elsewhere, with an empty cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import capsa
from capsa.cli.main import main
from images import ROOT, image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images

EXAMPLE = ROOT / "examples" / "km3net"


def _data() -> Path:
    km3 = pytest.importorskip("km3net_testdata", reason="pip install km3net-testdata (test extra)")
    return Path(km3.data_path("hdf5/mupage_ARCA.h5"))


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def test_km3net_example_recorded_sealed_and_replayed_by_a_second_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data()
    analysis = image("analysis")
    project = tmp_path / "analyst" / "project"
    project.mkdir(parents=True)
    shutil.copy(data, project)
    shutil.copy(f"{data}.prov.json", project)
    for script in ("select_events.py", "histogram.py", "result.py"):
        shutil.copy(EXAMPLE / script, project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "analyst" / "cache"))
    run = ("run", "-q", "--runtime", "bwrap", "--image", analysis)
    assert (
        _cli(
            *run,
            "--name",
            "select",
            "--input",
            "mupage_ARCA.h5",
            "--input",
            "mupage_ARCA.h5.prov.json",
            "--input",
            "select_events.py",
            "--output",
            "events.h5",
            "--",
            "python3",
            "select_events.py",
            "mupage_ARCA.h5",
            "events.h5",
        )
        == 0
    )
    assert (
        _cli(
            *run,
            "--name",
            "histogram",
            "--input",
            "events.h5",
            "--input",
            "histogram.py",
            "--output",
            "hist.h5",
            "--compare",
            "hdf5",
            "--ignore-attr",
            "/@kid",
            "--",
            "python3",
            "histogram.py",
            "events.h5",
            "hist.h5",
        )
        == 0
    )
    assert (
        _cli(
            *run,
            "--name",
            "result",
            "--input",
            "hist.h5",
            "--input",
            "result.py",
            "--output",
            "result.h5",
            "--output",
            "zenith.png",
            "--",
            "python3",
            "result.py",
            "hist.h5",
            "result.h5",
            "zenith.png",
        )
        == 0
    )
    assert (project / "zenith.png").read_bytes().startswith(b"\x89PNG")
    keys = tmp_path / "analyst" / "analyst"
    assert _cli("keygen", "-q", "-o", keys) == 0
    bundle = tmp_path / "analyst" / "km3.capsa"
    assert (
        _cli(
            "pack",
            "-q",
            "-o",
            bundle,
            "--from-journal",
            "result.h5",
            "zenith.png",
            "--sign",
            f"{keys}.key",
            "--title",
            "ARCA muons",
        )
        == 0
    )
    assert _cli("verify", "-q", bundle, "--key", f"{keys}.pub") == 0
    capsys.readouterr()
    assert _cli("history", bundle, "result.h5") == 0
    hist = capsys.readouterr().out
    assert hist.index("1. select") < hist.index("2. histogram") < hist.index("3. result")
    assert "origin   mupage_ARCA.h5" in hist

    # The reviewer: another directory, only the bundle and the public key, an empty cache.
    reviewer = tmp_path / "reviewer"
    reviewer.mkdir()
    shutil.copy(bundle, reviewer / "km3.capsa")
    shutil.copy(f"{keys}.pub", reviewer / "analyst.pub")
    monkeypatch.chdir(reviewer)
    monkeypatch.setenv("CAPSA_CACHE", str(reviewer / "cache"))
    assert _cli("verify", "-q", "km3.capsa", "--key", "analyst.pub") == 0
    capsys.readouterr()
    assert _cli("replay", "km3.capsa", "--key", "analyst.pub", "--runtime", "bwrap", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    verdicts = {o["path"]: o["verdict"] for s in doc["steps"] for o in s["outputs"]}
    assert verdicts == {
        "events.h5": "identical",
        "hist.h5": "equivalent",
        "result.h5": "identical",
        "zenith.png": "identical",
    }
    ignored = json.dumps([o["ignored"] for s in doc["steps"] for o in s["outputs"]])
    assert "kid" in ignored
    assert sorted(p.name for p in reviewer.iterdir()) == ["analyst.pub", "cache", "km3.capsa"]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CI") != "true" and not os.environ.get("CAPSA_TEST_DEMO"),
    reason="runs scripts/demo.sh twice (pip installs into .venv): CI only, or "
    "set CAPSA_TEST_DEMO=1",
)
def test_the_readme_main_job_runs_twice(tmp_path: Path) -> None:
    for _ in range(2):  # the second run reuses the image and the key, and must not fail
        r = subprocess.run(
            ["sh", str(ROOT / "scripts" / "demo.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "verdict: 1 equivalent, 3 identical → OK" in r.stdout
    assert (ROOT / "demo-out" / "km3net" / "km3net-analysis.capsa").is_file()
    with capsa.open(ROOT / "demo-out" / "km3net" / "km3net-analysis.capsa") as b:
        assert [s.name for s in b.manifest.steps] == ["select", "histogram", "result"]
