"""Replay of a real step whose CSV, JSON and text outputs carry the time of the run: each is
explained by content, under its policy or under the default bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import capsa
from conftest import CliResult
from images import image

pytestmark = pytest.mark.container  # a real container (bwrap) and the built analysis image

REPORT = """
import json, time
now = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 10**9:09d}"
with open("report.csv", "w") as f:
    f.write(f"# written {now}\\n")
    f.write("id,energy\\n" + "".join(f"{i},{i * 1.5}\\n" for i in range(100)))
with open("summary.json", "w") as f:
    json.dump({"created": now, "events": 100, "mean": 74.25}, f)
with open("log.txt", "w") as f:
    f.write("start\\n" + f"finished at {now}\\n" + "done\\n")
"""


def test_replayed_text_formats_are_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> None:
    analysis = image("analysis")
    proj = tmp_path / "ana"
    proj.mkdir()
    (proj / "report.py").write_text(REPORT)
    monkeypatch.chdir(proj)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    args = ["run", "-q", "--runtime", "bwrap", "--image", analysis, "--name", "report"]
    args += ["--input", "report.py"]
    for out in ("report.csv", "summary.json", "log.txt"):
        args += ["--output", out]
    args += ["--compare", "report.csv=csv", "--ignore-line", "report.csv=^# written "]
    args += ["--compare", "summary.json=auto", "--", "python3", "report.py"]
    r = cli(*args)
    assert r.rc == 0, r.err
    assert cli("pack", "-q", "-o", tmp_path / "r.capsa", "--from-journal").rc == 0
    with capsa.open(tmp_path / "r.capsa") as b:
        policies = {o.path: o.compare for o in b.manifest.steps[0].outputs}
    found = policies["summary.json"]
    assert found is not None and found.method == "json"  # auto is recorded as what it found
    assert policies["log.txt"] is None

    r = cli("replay", tmp_path / "r.capsa", "--runtime", "bwrap", "--allow-unsigned", "--json")
    assert r.rc == 1  # summary.json and log.txt differ in their time
    doc = json.loads(r.out)
    outs = {o["path"]: o for s in doc["steps"] for o in s["outputs"]}
    csv = outs["report.csv"]
    assert csv["verdict"] == "equivalent" and csv["policy"] == "csv"
    assert csv["ignored"][0]["detail"]["rule"] == "^# written "
    js = outs["summary.json"]
    assert js["verdict"] == "different"
    [d] = js["differences"]
    assert d["path"] == "/created" and d["detail"]["volatile"] == "timestamp"
    log = outs["log.txt"]
    assert log["verdict"] == "different" and log["policy"] == "bytes"
    [d] = log["differences"]
    assert d["summary"] == "lines line 2: 1 of 3 lines differ (first at line 2)"
    assert any(x.startswith("-finished at ") for x in d["detail"]["excerpt"])
    assert d["detail"]["suggest"]["ignore_lines"][0].startswith(r"^finished at \d{4}-")
