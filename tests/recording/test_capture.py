"""Exact write attribution (spec/recording.md §3.1-3.4): each step's outputs are exactly what it
wrote — with parallel recorders in one project, capsa's own redirected log, a batch system's job
log, provenance logs, directories made beforehand, and data bound from outside the project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import capsa
from capsa.recording.journal import Journal
from conftest import capsa_subprocess
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "ana"
    d.mkdir()
    return d


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "CAPSA_CACHE": str(project.parent / "cache")}


def _run(project: Path, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return capsa_subprocess(
        "run",
        "--runtime",
        "bwrap",
        "--image",
        image("busybox"),
        *args,
        cwd=project,
        env=_env(project),
    )


def _outputs(project: Path) -> dict[str, list[str]]:
    return {e.step.name: sorted(o.path for o in e.step.outputs) for e in Journal(project).current()}


def _replay(project: Path, bundle: Path) -> dict[str, object]:
    r = capsa_subprocess(
        "replay",
        bundle,
        "--allow-unsigned",
        "--runtime",
        "bwrap",
        "--json",
        cwd=project.parent,
        env=_env(project),
    )
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def test_eight_parallel_recorders_claim_exactly_their_own_files(project: Path) -> None:
    busybox = image("busybox")
    procs = []
    for i in range(8):
        script = (
            f"mkdir -p shared/new; echo {i} > shared/new/f{i}; echo {i} > own{i}.txt; "
            f"sleep 0.{i}; echo done > late{i}.txt"
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "capsa",
                    "run",
                    "-q",
                    "--runtime",
                    "bwrap",
                    "--image",
                    str(busybox),
                    "--name",
                    f"s{i}",
                    "--",
                    "sh",
                    "-c",
                    script,
                ],
                cwd=project,
                env=_env(project),
                stderr=subprocess.PIPE,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    outputs = _outputs(project)
    assert outputs == {
        f"s{i}": sorted([f"shared/new/f{i}", f"own{i}.txt", f"late{i}.txt"]) for i in range(8)
    }
    assert all(e.capture == "overlay" for e in Journal(project).entries())
    assert sorted(p.name for p in (project / "shared/new").iterdir()) == [f"f{i}" for i in range(8)]


def test_capsas_own_log_and_job_logs_are_never_outputs(project: Path) -> None:
    (project / "slurm-1.out").write_text("written by the batch system\n")
    with (project / "run.log").open("wb") as log:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "capsa",
                "run",
                "--runtime",
                "bwrap",
                "--image",
                str(image("busybox")),
                "--name",
                "s",
                "--output",
                "out.txt",
                "--",
                "sh",
                "-c",
                "echo result > out.txt; echo job > slurm-7.out; mkdir -p .snakemake/m; "
                "echo meta > .snakemake/m/x; echo progress",
            ],
            cwd=project,
            env=_env(project),
            stdout=log,
            stderr=log,
        )
    assert r.returncode == 0, (project / "run.log").read_text()
    (entry,) = Journal(project).entries()
    assert [o.path for o in entry.step.outputs] == ["out.txt"]
    assert entry.undeclared_outputs == ()
    # ... yet the step's writes did reach the project
    assert (project / "slurm-7.out").read_text() == "job\n"
    assert (project / ".snakemake/m/x").is_file()
    assert "progress" in (project / "run.log").read_text()


def test_capsaignore_filters_undeclared_outputs(project: Path) -> None:
    (project / ".capsaignore").write_text("# scratch\n*.tmp\nscratch/\n")
    r = _run(
        project,
        "--name",
        "s",
        "--",
        "sh",
        "-c",
        "echo a > keep.txt; echo b > x.tmp; mkdir scratch; echo c > scratch/y",
    )
    assert r.returncode == 0, r.stderr
    assert _outputs(project) == {"s": ["keep.txt"]}


def test_a_bad_ignore_pattern_is_one_line(project: Path) -> None:
    (project / ".capsaignore").write_text("ok.txt\n../outside\n")
    r = _run(project, "--name", "s", "--", "true")
    err = r.stderr.decode()
    assert r.returncode == 2 and ".capsaignore:2" in err and err.count("\n") == 1, err


def test_provenance_logs_are_annotations_and_replay_ok(project: Path, tmp_path: Path) -> None:
    prov = '[{"uuid": "u1", "name": "Pipeline", "input": [], "output": ["out.txt"]}]'
    r = _run(
        project,
        "--name",
        "km3",
        "--output",
        "out.txt",
        "--provenance",
        "out.txt.prov.json",
        "--",
        "sh",
        "-c",
        f"echo 42 > out.txt; echo '{prov}' > out.txt.prov.json",
    )
    assert r.returncode == 0, r.stderr
    (entry,) = Journal(project).entries()
    assert [o.path for o in entry.step.outputs] == ["out.txt"]
    assert [p.format for p in entry.step.provenance] == ["km3pipe"]
    b = tmp_path / "b.capsa"
    assert capsa_subprocess("pack", "-o", b, "--from-journal", cwd=project).returncode == 0
    doc = _replay(project, b)
    (step,) = doc["steps"]  # type: ignore[misc]
    assert [o["path"] for o in step["outputs"]] == ["out.txt"]


def test_directories_made_beforehand_are_recreated_at_replay(project: Path, tmp_path: Path) -> None:
    (project / "per").mkdir()
    (project / "merged").mkdir()
    for i in (1, 2):
        r = _run(
            project,
            "--name",
            f"per{i}",
            "--output",
            f"per/run_{i}.txt",
            "--",
            "sh",
            "-c",
            f"echo {i} > per/run_{i}.txt",
        )
        assert r.returncode == 0, r.stderr
    r = _run(
        project,
        "--name",
        "merge",
        "--input",
        "per/run_1.txt",
        "--input",
        "per/run_2.txt",
        "--output",
        "merged/all.txt",
        "--",
        "sh",
        "-c",
        "cat per/run_1.txt per/run_2.txt > merged/all.txt",
    )
    assert r.returncode == 0, r.stderr
    assert [e.step.dirs for e in Journal(project).current()] == [("per",), ("per",), ("merged",)]
    b = tmp_path / "b.capsa"
    assert capsa_subprocess("pack", "-o", b, "--from-journal", cwd=project).returncode == 0
    doc = _replay(project, b)
    assert doc["ok"] is True


def test_data_outside_the_project_through_a_bind(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "sps" / "km3net" / "raw"
    data.mkdir(parents=True)
    (data / "run_0042.txt").write_text("raw hits\n")
    r = _run(
        project,
        "--name",
        "reco",
        "--bind",
        f"{data}:/data:ro",
        "--input",
        data / "run_0042.txt",
        "--output",
        "reco.txt",
        "--",
        "sh",
        "-c",
        "wc -c < /data/run_0042.txt > reco.txt",
    )
    assert r.returncode == 0, r.stderr
    (entry,) = Journal(project).entries()
    (inp,) = entry.step.inputs
    assert (inp.path, inp.at) == ("binds/data/run_0042.txt", "/data/run_0042.txt")
    assert [(x.target, x.readonly) for x in entry.step.binds] == [("/data", True)]
    b = tmp_path / "b.capsa"
    r = capsa_subprocess("pack", "-o", b, "--from-journal", cwd=project)
    assert r.returncode == 0, r.stderr
    with capsa.open(b) as bundle:
        assert bundle.manifest.files["binds/data/run_0042.txt"].role == "input"
    (data / "run_0042.txt").unlink()  # replay needs only the bundle
    assert _replay(project, b)["ok"] is True


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--bind", "/no/such/dir:/data", "--", "true"], 9, "bind source does not exist"),
        (["--bind", "/tmp:/work", "--", "true"], 2, "would hide the work directory"),
        (["--bind", "/tmp:/work/sub", "--", "true"], 2, "would hide the work directory"),
        (["--output", "/etc/out.txt", "--", "true"], 2, "outside the work directory"),
        (["--bind", "/tmp:/data", "--bind", "/var:/data/x", "--", "true"], 2, "overlap"),
    ],
)
def test_bad_binds_and_outputs_are_one_line(
    project: Path, args: list[str], code: int, message: str
) -> None:
    r = _run(project, "--name", "s", *args)
    err = r.stderr.decode()
    assert r.returncode == code and message in err and err.count("\n") == 1, err
    assert Journal(project).entries() == []


def test_two_steps_rewriting_the_same_file_conflict_and_the_journal_stays_intact(
    project: Path,
) -> None:
    (project / "shared.txt").write_text("start\n")
    busybox = image("busybox")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "capsa",
                "run",
                "-q",
                "--runtime",
                "bwrap",
                "--image",
                str(busybox),
                "--name",
                f"w{i}",
                "--",
                "sh",
                "-c",
                f"sleep 1; echo {i} >> shared.txt",
            ],
            cwd=project,
            env=_env(project),
            stderr=subprocess.PIPE,
        )
        for i in (1, 2)
    ]
    for p in procs:
        p.communicate(timeout=300)
    entries = Journal(project).entries()
    assert sorted(e.status for e in entries) == ["failed", "ok"]
    (lost,) = [e for e in entries if e.status == "failed"]
    assert "changed in the project while the step ran" in lost.reason
    text = (project / "shared.txt").read_text().splitlines()
    assert len(text) == 2 and text[0] == "start"  # one step's version, never a mix


def test_deletions_are_recorded_and_snapshot_capture_still_works(project: Path) -> None:
    (project / "old.txt").write_text("x\n")
    with (project / "run.log").open("wb") as log:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "capsa",
                "run",
                "--runtime",
                "bwrap",
                "--capture",
                "snapshot",
                "--image",
                str(image("busybox")),
                "--name",
                "s",
                "--",
                "sh",
                "-c",
                "rm old.txt; echo new > new.txt; echo job > slurm-3.out",
            ],
            cwd=project,
            env=_env(project),
            stdout=log,
            stderr=log,
        )
    assert r.returncode == 0, (project / "run.log").read_text()
    (entry,) = Journal(project).entries()
    assert entry.capture == "snapshot"
    assert [o.path for o in entry.step.outputs] == ["new.txt"]
    assert entry.deleted == ("old.txt",)


def test_policies_set_at_pack_time_are_recorded_as_such(project: Path, tmp_path: Path) -> None:
    assert (
        _run(
            project, "--name", "s", "--output", "a.txt", "--", "sh", "-c", "echo 1 > a.txt"
        ).returncode
        == 0
    )
    b = tmp_path / "b.capsa"
    r = capsa_subprocess(
        "pack",
        "-o",
        b,
        "--from-journal",
        "--compare",
        "a.txt=hdf5",
        "--ignore-attr",
        "a.txt=/@kid",
        cwd=project,
    )
    assert r.returncode == 0, r.stderr
    with capsa.open(b) as bundle:
        (out,) = bundle.manifest.steps[0].outputs
        assert out.compare_set == "pack" and out.compare is not None
        assert out.compare.method == "hdf5" and out.compare.ignore_attrs == ("/@kid",)
    r = capsa_subprocess(
        "pack", "-o", tmp_path / "c.capsa", "--from-journal", "--compare", "hdf5", cwd=project
    )
    assert r.returncode == 2 and b"name the output" in r.stderr


KM3 = """
import sys, time, uuid, h5py, numpy as np
time.sleep(1.1)  # object modification times have one-second resolution
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["kid"] = str(uuid.uuid4())
    f.attrs["format_version"] = 2
    f.create_dataset("hist", data=np.arange(20), track_times=True)
"""

DRIFT = """
import sys, time, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("energy", data=np.array([time.time_ns() % 1000, 1.0]))
"""


def test_check_records_the_narrowest_policy_naming_what_it_accepted(project: Path) -> None:
    (project / "km3.py").write_text(KM3)
    r = capsa_subprocess(
        "run",
        "--runtime",
        "bwrap",
        "--image",
        image("analysis"),
        "--name",
        "hist",
        "--check",
        "--input",
        "km3.py",
        "--output",
        "hist.h5",
        "--",
        "python3",
        "km3.py",
        "hist.h5",
        cwd=project,
        env=_env(project),
    )
    err = r.stderr.decode()
    assert r.returncode == 0, err
    (entry,) = Journal(project).entries()
    (out,) = entry.step.outputs
    assert out.compare is not None and out.compare.method == "hdf5"
    assert out.compare.ignore_attrs == ("/@kid",)  # exactly the random uuid; times never count
    (note,) = entry.check or ()
    assert "hist.h5" in note and "/@kid" in note and "--check" in err


def test_check_refuses_a_step_whose_values_change(project: Path) -> None:
    (project / "drift.py").write_text(DRIFT)
    r = capsa_subprocess(
        "run",
        "--runtime",
        "bwrap",
        "--image",
        image("analysis"),
        "--name",
        "drift",
        "--check",
        "--input",
        "drift.py",
        "--output",
        "e.h5",
        "--",
        "python3",
        "drift.py",
        "e.h5",
        cwd=project,
        env=_env(project),
    )
    assert r.returncode == 1, r.stderr
    (entry,) = Journal(project).entries()
    assert entry.status == "failed" and "not deterministic: e.h5" in entry.reason
    assert "/energy" in entry.reason
