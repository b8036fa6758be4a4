"""The replay journal: an interrupted replay keeps the verdicts it has, ``--resume`` runs only
the steps without one, and the attestation at the end covers every step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dag import fan_out_bundle

from capsa.signing import dsse
from capsa.signing.keys import keygen
from conftest import CliResult
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and the busybox test image


def _journal(work: Path) -> list[dict]:  # type: ignore[type-arg]
    found = list(work.glob("capsa-replay-*.journal"))
    if not found:
        return []
    return [json.loads(line) for line in found[0].read_text().splitlines() if line]


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_an_interrupted_replay_resumes_without_running_again_what_it_did(
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    executor: str,
) -> None:
    if executor == "dask":
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    bundle = fan_out_bundle(tmp_path / "slow.capsa", image("busybox"), 4, sleep=1)
    cache, work = tmp_path / "cache", tmp_path / "w"
    env = {**os.environ, "CAPSA_CACHE": str(cache)}
    common = ["--allow-unsigned", "--runtime", "bwrap", "--workdir", str(work)]
    how = ["--executor", "dask", "--workers", "1"] if executor == "dask" else ["--jobs", "1"]
    p = subprocess.Popen(
        [sys.executable, "-m", "capsa", "replay", "-q", str(bundle), *common, *how],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 120
        while len(_journal(work)) < 3 and time.monotonic() < end:  # header, seed, one work step
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    lines = _journal(work)
    header, *done = lines
    assert header["bundle_id"].startswith("sha256:") and header["mode"] == "chain"
    journaled = {d["report"]["name"] for d in done}
    assert "seed" in journaled and "merge" not in journaled  # interrupted half-way

    monkeypatch.setenv("CAPSA_CACHE", str(cache))
    priv, _pub, _ = keygen(tmp_path / "k")
    att = tmp_path / "att.json"
    r = cli("replay", bundle, *common, *how, "--resume", "--json",
            "--attest", priv, "--attest-output", att)  # fmt: skip
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    steps = {s["name"]: s for s in doc["steps"]}
    assert len(steps) == 6 and doc["ok"]
    assert {n for n, s in steps.items() if s["resumed"]} == journaled  # not run again
    assert all(o["verdict"] == "identical" for s in steps.values() for o in s["outputs"])
    # The attestation covers every step, resumed or not.
    statement = json.loads(dsse.parse_envelope(att.read_bytes(), where="att").payload)
    names = {s["name"] for s in statement["subject"][1:]}
    assert names == {o["path"] for s in doc["steps"] for o in s["outputs"]}
    assert len(statement["predicate"]["steps"]) == 6
    assert list(work.iterdir()) == []  # complete: the journal and directories are gone


def test_resume_needs_a_journal_of_this_bundle(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    bundle = fan_out_bundle(tmp_path / "a.capsa", image("busybox"), 1)
    work = tmp_path / "w"
    work.mkdir()
    other = {"kind": "capsa-replay-journal", "version": 1, "bundle_id": "sha256:" + "0" * 64}
    (work / "capsa-replay-x.journal").write_text(json.dumps(other) + "\n")
    r = cli("replay", bundle, "--allow-unsigned", "--workdir", work, "--resume")
    assert r.rc == 2 and len(r.err_lines) == 1
    assert "no interrupted replay of this bundle to resume" in r.err
