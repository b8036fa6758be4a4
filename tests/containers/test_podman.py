"""The podman runtime: the KM3NeT example recorded once and replayed under two independent
runtimes, bwrap and podman, gives the same verdicts and the same output digests; podman keeps
the isolation contract bwrap keeps; a step can also be recorded under podman."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from capsa.containers.runtime import RunSpec, runtime_names
from capsa.containers.runtime.cache import ImageCache
from capsa.containers.runtime.podman import PodmanRuntime
from capsa.format.digest import sha256_file
from conftest import CliResult
from images import ROOT, image

pytestmark = pytest.mark.container  # real containers (bwrap, podman) and built test images

EXAMPLE = ROOT / "examples" / "km3net"


@pytest.fixture(autouse=True)
def _podman() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc)")


def _record_example(cli: Callable[..., CliResult], project: Path, runtime: str) -> None:
    km3 = pytest.importorskip("km3net_testdata", reason="pip install km3net-testdata (test extra)")
    data = Path(km3.data_path("hdf5/mupage_ARCA.h5"))
    analysis = image("analysis")
    shutil.copy(data, project)
    for script in ("select_events.py", "histogram.py", "result.py"):
        shutil.copy(EXAMPLE / script, project)
    run = ("run", "-q", "--runtime", runtime, "--image", analysis)
    steps = [
        ("select", ["mupage_ARCA.h5", "select_events.py"], ["events.h5"], []),
        ("histogram", ["events.h5", "histogram.py"], ["hist.h5"], ["--compare", "hdf5",
                                                                   "--ignore-attr", "/@kid"]),
        ("result", ["hist.h5", "result.py"], ["result.h5", "zenith.png"], []),
    ]  # fmt: skip
    for name, inputs, outputs, extra in steps:
        argv = ["python3", inputs[1], inputs[0], *outputs]
        flags = [f for i in inputs for f in ("--input", i)]
        flags += [f for o in outputs for f in ("--output", o)]
        r = cli(*run, "--name", name, *flags, *extra, "--", *argv)
        assert r.rc == 0, r.err


def test_bwrap_and_podman_replays_agree(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "podman" in runtime_names()
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    _record_example(cli, project, "bwrap")
    bundle = tmp_path / "km3.capsa"
    r = cli("pack", "-q", "-o", bundle, "--from-journal", "result.h5", "zenith.png")
    assert r.rc == 0, r.err
    results = {}
    for runtime in ("bwrap", "podman"):
        r = cli("replay", bundle, "--allow-unsigned", "--runtime", runtime, "--json")
        assert r.rc == 0, r.err
        doc = json.loads(r.out)
        results[runtime] = {
            o["path"]: (o["verdict"], o["found"]) for s in doc["steps"] for o in s["outputs"]
        }
        assert doc["runtime"] == runtime
    # Same verdicts; the same bytes wherever the analysis is deterministic (hist.h5 holds a
    # random kid and object times by design: equivalent under its policy, under both runtimes).
    bw, pm = results["bwrap"], results["podman"]
    assert {p: v for p, (v, _) in bw.items()} == {p: v for p, (v, _) in pm.items()}
    assert {p: d for p, (v, d) in bw.items() if v == "identical"} == {
        p: d for p, (v, d) in pm.items() if v == "identical"
    }
    assert {p: v for p, (v, _) in results["podman"].items()} == {
        "events.h5": "identical",
        "hist.h5": "equivalent",
        "result.h5": "identical",
        "zenith.png": "identical",
    }


def test_podman_isolation_matches_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from capsa.containers.runtime.bwrap import BwrapRuntime

    busybox = image("busybox")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".capsa").mkdir()
    (work / ".capsa" / "journal").write_text("hidden from the step")
    monkeypatch.setenv("CAPSA_SECRET_HOST_VAR", "leak")
    script = (
        "env | grep -v ^HOSTNAME= | sort; echo HOST=$(hostname); echo PWD=$(pwd); "
        "ls -A /tmp | wc -l; ls -A $HOME | wc -l; ls -A /work/.capsa | wc -l; "
        "touch /should-fail 2>/dev/null && echo ROOT-WRITABLE; echo hi > /work/made.txt; "
        "grep ^CapEff /proc/self/status; id -u; "
        "wget -q -T 2 http://127.0.0.1:9/ 2>&1 | head -1; ip link 2>/dev/null | grep -c '^[0-9]'"
    )
    env = {"PATH": "/bin:/usr/bin", "HOME": "/home/capsa", "TZ": "UTC"}
    outs = {}
    cache = ImageCache(tmp_path / "cache")
    for rt in (BwrapRuntime(cache), PodmanRuntime(cache)):
        spec = RunSpec(
            busybox, sha256_file(busybox), ("sh", "-c", script), env, "/work", work,
            hide=("/work/.capsa",),
        )  # fmt: skip
        r = rt.run(spec, tmp_path / f"{rt.name}.out", tmp_path / f"{rt.name}.err")
        assert r.exit_code == 0, (tmp_path / f"{rt.name}.err").read_text()
        outs[rt.name] = (tmp_path / f"{rt.name}.out").read_text()
        assert (work / "made.txt").read_text() == "hi\n"
        (work / "made.txt").unlink()
    assert outs["bwrap"] == outs["podman"]
    text = outs["podman"]
    assert "CAPSA_SECRET_HOST_VAR" not in text and "ROOT-WRITABLE" not in text
    assert "HOST=capsa" in text and "PWD=/work" in text
    assert "CapEff:\t0000000000000000" in text
    # The shared cache stays exactly as unpacked: podman's mount points go to its own overlay.
    rootfs = next((tmp_path / "cache" / "images").glob("*/rootfs"))
    assert not (rootfs / "run").exists() and not (rootfs / "sys").exists()


def test_a_step_recorded_under_podman_sees_its_own_writes_and_deletions(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busybox = image("busybox")
    project = tmp_path / "p"
    project.mkdir()
    (project / "in.txt").write_text("hello\n")
    (project / "old.txt").write_text("to delete\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    r = cli(
        "run", "--runtime", "podman", "--image", busybox, "--name", "up", "--input", "in.txt",
        "--output", "out.txt", "--", "sh", "-c", "tr a-z A-Z < in.txt > out.txt; rm old.txt",
    )  # fmt: skip
    assert r.rc == 0, r.err
    assert (project / "out.txt").read_text() == "HELLO\n"
    assert not (project / "old.txt").exists()
    assert "deleted: old.txt" in r.err
    log = json.loads(cli("log", "--json").out)
    assert log[0]["step"]["runtime"]["name"] == "podman" and log[0]["capture"] == "overlay"
