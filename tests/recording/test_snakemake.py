"""Recording an unmodified Snakefile with real Snakemake 9 (spec/recording.md §6): every job
becomes one capsa step with exactly its own inputs and outputs, in parallel, then packs and
replays; a changed input re-records only the jobs it affects."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import capsa
from capsa.recording.journal import Journal
from capsa.recording.snakemake_job import step_name
from conftest import capsa_subprocess
from images import image

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(
        importlib.util.find_spec("snakemake") is None,
        reason="Snakemake 9 is not installed (pip install 'capsa[snakemake]'; CI installs it)",
    ),
]

RUNS = ["0042", "0043", "0044", "0045"]

SNAKEFILE = """
RUNS = {runs}
container: "{image}"

rule all:
    input: "merged/total.txt"

rule simulate:
    input: "cfg/{{run}}.cfg"
    output: "raw/{{run}}.txt"
    log: "logs/simulate/{{run}}.log"
    params: seed=lambda w: int(w.run), label="sim it"
    shell: "cat {{input}} > {{output}}; echo seed {{params.seed}} >> {{output}}; echo ok > {{log}}"

rule histogram:
    input: "raw/{{run}}.txt"
    output: "hist/{{run}}.txt"
    benchmark: "bench/histogram/{{run}}.tsv"
    shell: "wc -c < {{input}} > {{output}}"

rule merge:
    input: expand("hist/{{run}}.txt", run=RUNS)
    output: "merged/total.txt"
    shell: "cat {{input}} > {{output}}"
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    d = tmp_path / "wf"
    (d / "cfg").mkdir(parents=True)
    for r in RUNS:
        (d / "cfg" / f"{r}.cfg").write_text(f"config {r}\n")
    (d / "Snakefile").write_text(SNAKEFILE.format(runs=RUNS, image=image("analysis")))
    (d / "capsa.yaml").write_text(
        'compare:\n  "merged/*": {method: hdf5, ignore_attrs: ["/@kid"]}\n'
    )
    return d


def _env(d: Path) -> dict[str, str]:
    return {**os.environ, "CAPSA_CACHE": str(d.parent / "cache")}


def _snakemake(d: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return capsa_subprocess("snakemake", "--cores", "2", *args, cwd=d, env=_env(d))


def test_every_job_is_one_step_with_exactly_its_own_files(workflow: Path, tmp_path: Path) -> None:
    r = _snakemake(workflow)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    steps = {e.step.name: e for e in Journal(workflow).entries()}
    names = [step_name("simulate", {"run": x}) for x in RUNS]
    names += [step_name("histogram", {"run": x}) for x in RUNS] + ["merge"]
    assert sorted(steps) == sorted(names)  # each job exactly once
    for x in RUNS:
        sim = steps[f"simulate[run={x}]"].step
        assert [i.path for i in sim.inputs] == [f"cfg/{x}.cfg"]
        assert sorted(o.path for o in sim.outputs) == [f"logs/simulate/{x}.log", f"raw/{x}.txt"]
        assert sim.group == "simulate" and sim.params == {"seed": str(int(x)), "label": "sim it"}
        assert sim.argv[:2] == ("bash", "-c") and f"cfg/{x}.cfg" in sim.argv[2]
        hist = steps[f"histogram[run={x}]"].step
        assert [o.path for o in hist.outputs] == [f"hist/{x}.txt"]  # never the benchmark file
    merge = steps["merge"].step
    assert sorted(i.path for i in merge.inputs) == [f"hist/{x}.txt" for x in RUNS]
    (out,) = merge.outputs
    assert out.compare is not None and out.compare.method == "hdf5"  # from capsa.yaml
    assert all(not o.path.startswith(".snakemake") for e in steps.values() for o in e.step.outputs)

    bundle = tmp_path / "wf.capsa"
    r = capsa_subprocess("pack", "-o", bundle, "--from-journal", "merged/total.txt", cwd=workflow)
    assert r.returncode == 0, r.stderr
    r = capsa_subprocess(
        "replay",
        bundle,
        "--allow-unsigned",
        "--runtime",
        "bwrap",
        "--json",
        cwd=tmp_path,
        env=_env(workflow),
    )
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], r.stderr.decode()
    assert len(doc["steps"]) == 9
    with capsa.open(bundle) as b:
        assert {s.group for s in b.manifest.steps} == {"simulate", "histogram", "merge"}

    # Change one input: only its jobs run again, and their new records supersede the old ones.
    (workflow / "cfg" / "0043.cfg").write_text("config 0043, revised\n")
    r = _snakemake(workflow)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    journal = Journal(workflow)
    rerun = [e.step.name for e in journal.entries()][9:]
    assert sorted(rerun) == ["histogram[run=0043]", "merge", "simulate[run=0043]"]
    assert len(journal.current()) == 9


NO_CONTAINER = """
rule a:
    output: "a.txt"
    shell: "echo a > {output}"
"""

DOCKER = """
rule a:
    output: "a.txt"
    container: "docker://debian:bookworm"
    shell: "echo a > {output}"
"""

RUN_RULE = """
container: "IMAGE"
rule a:
    output: "a.txt"
    run:
        open(output[0], "w").write("a")
"""


@pytest.mark.parametrize(
    ("snakefile", "message"),
    [
        (NO_CONTAINER, "rule a has no container"),
        (DOCKER, "is not a local SIF file"),
        (RUN_RULE, "rule a uses run:"),
    ],
)
def test_rules_capsa_cannot_record_are_refused_before_anything_runs(
    tmp_path: Path, snakefile: str, message: str
) -> None:
    d = tmp_path / "wf"
    d.mkdir()
    (d / "Snakefile").write_text(snakefile.replace("IMAGE", str(image("busybox"))))
    r = _snakemake(d)
    assert r.returncode != 0
    assert message in r.stderr.decode()
    assert not (d / "a.txt").exists() and Journal(d).entries() == []


HOST_RULE = """
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    shell: "echo from the host > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    container: "IMAGE"
    shell: "wc -c < {input} > {output}"
"""


def test_a_rule_without_container_is_recorded_as_not_replayable_when_asked(
    tmp_path: Path,
) -> None:
    d = tmp_path / "wf"
    d.mkdir()
    (d / "Snakefile").write_text(HOST_RULE.replace("IMAGE", str(image("analysis"))))
    r = _snakemake(d, "--capsa-no-container", "record")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    steps = {e.step.name: e.step for e in Journal(d).entries()}
    assert steps["a"].image is None and steps["a"].runtime.name == "bwrap"
    assert steps["b"].image is not None
    assert (d / "a.txt").read_text() == "from the host\n"

    bundle = tmp_path / "wf.capsa"
    r = capsa_subprocess("pack", "-o", bundle, "--from-journal", "b.txt", cwd=d)
    assert r.returncode == 0, r.stderr
    r = capsa_subprocess("show", bundle, cwd=tmp_path)
    assert "(no image: not replayable)" in r.stdout.decode()
    r = capsa_subprocess(
        "replay", bundle, "--allow-unsigned", "--runtime", "bwrap", "--json",
        cwd=tmp_path, env=_env(d),
    )  # fmt: skip
    doc = json.loads(r.stdout)
    by_name = {s["name"]: s for s in doc["steps"]}
    assert by_name["a"]["status"] == "skipped" and by_name["a"]["reason"] == "no image"
    # b still replays, from a's recorded output, and the replay holds.
    assert by_name["b"]["status"] == "ok"
    assert [o["verdict"] for o in by_name["b"]["outputs"]] == ["identical"]
    assert r.returncode == 0 and doc["ok"] and doc["counts"]["skipped (no image)"] == 1
    r = capsa_subprocess("replay", bundle, "--allow-unsigned", "--runtime", "bwrap",
                         cwd=tmp_path, env=_env(d))  # fmt: skip
    assert "skipped (no image)" in r.stdout.decode()


def test_a_container_that_is_not_a_sif_fails_the_job_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "wf"
    d.mkdir()
    (d / "not.sif").write_bytes(b"an OCI archive, say" * 100)
    (d / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    container: "not.sif"\n    shell: "echo a > {output}"\n'
    )
    r = _snakemake(d)
    err = r.stderr.decode()
    assert r.returncode != 0 and "not a SIF image" in err


def test_options_that_would_wrap_jobs_twice_are_refused(tmp_path: Path) -> None:
    r = capsa_subprocess("snakemake", "--cores", "1", "--sdm", "apptainer", cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 2 and "--sdm would wrap the jobs a second time" in err
    assert err.count("\n") == 1


def test_step_names_stay_one_path_segment() -> None:
    assert step_name("merge", {}) == "merge"
    assert step_name("r", {"path": "a/b"}) == "r[path=a%2Fb]"
    long = step_name("r", {"x": "y" * 300})
    assert len(long.encode()) <= 200 and long.startswith("r[")


def test_snakemake_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from capsa.cli import snakemake as cli_snakemake
    from capsa.errors import UsageError

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(UsageError, match="Snakemake is not installed"):
        cli_snakemake.snakemake_command(["--cores", "1"])
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "8.20.0")
    with pytest.raises(UsageError, match=r"Snakemake 8\.20\.0 is not supported"):
        cli_snakemake.snakemake_command(["--cores", "1"])
    assert sys.executable  # the command runs Snakemake in this interpreter's environment
