"""`capsa run` records real steps (h5py inside the analysis image via bwrap); `capsa log`;
`capsa pack --from-journal` packs exactly the lineage of the requested outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import pytest

import capsa
from capsa.recording.journal import Journal
from conftest import CliResult
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images

WRITE_H5 = """
import sys, h5py, numpy as np
src, dst = sys.argv[1], sys.argv[2]
values = np.loadtxt(src)
with h5py.File(dst, "w") as f:
    f.create_dataset("values", data=values * 2)
    f.attrs["n"] = len(values)
open("side-effect.log", "w").write("not declared\\n")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "ana"
    d.mkdir()
    (d / "raw.txt").write_text("1\n2\n3\n")
    (d / "double.py").write_text(WRITE_H5)
    monkeypatch.chdir(d)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    yield d


@pytest.fixture(scope="module")
def analysis() -> Path:
    return image("analysis")


@pytest.fixture(scope="module")
def busybox() -> Path:
    return image("busybox")


def _run(cli: Callable[..., CliResult], img: Path, *args: str) -> CliResult:
    return cli("run", "-q", "--runtime", "bwrap", "--image", str(img), *args)


def test_records_a_real_h5py_step(project: Path, analysis: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = _run(
        cli,
        analysis,
        "--name",
        "double",
        "--input",
        "raw.txt",
        "--input",
        "double.py",
        "--output",
        "out.h5",
        "--",
        "python3",
        "double.py",
        "raw.txt",
        "out.h5",
    )
    assert r.rc == 0, r.err
    with h5py.File(project / "out.h5") as f:
        assert list(f["values"][:]) == [2.0, 4.0, 6.0]
    (entry,) = Journal(project).entries()
    s = entry.step
    assert (entry.status, s.name, s.exit_code, s.workdir) == ("ok", "double", 0, "/work")
    assert s.argv == ("python3", "double.py", "raw.txt", "out.h5")
    assert {f.path for f in s.inputs} == {"raw.txt", "double.py"}
    assert [f.path for f in s.outputs] == ["out.h5", "side-effect.log"]
    assert entry.undeclared_outputs == ("side-effect.log",)
    assert s.env["TZ"] == "UTC" and s.env["LC_ALL"] == "C" and s.env["PYTHONHASHSEED"] == "0"
    assert s.runtime.name == "bwrap" and s.runtime.version
    assert s.image == "sha256:" + __import__("hashlib").sha256(analysis.read_bytes()).hexdigest()
    assert s.host is not None and s.host.duration_ms > 0 and s.host.hostname
    assert entry.image_path == str(analysis)


def test_failing_command_is_recorded_and_its_code_returned(
    project: Path, busybox: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    r = _run(cli, busybox, "--name", "bad", "--", "sh", "-c", "echo broken >&2; exit 42")
    assert r.rc == 42
    (entry,) = Journal(project).entries()
    assert (entry.status, entry.step.exit_code, entry.reason) == ("failed", 42, "exit code 42")
    stderr = Journal(project).blob_path(entry.step.stderr).read_text()  # type: ignore[arg-type]
    assert stderr == "broken\n"


def test_declared_output_not_produced(project: Path, busybox: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = _run(cli, busybox, "--output", "never.txt", "--", "true")
    assert r.rc == 1
    (entry,) = Journal(project).entries()
    assert entry.status == "failed" and "never.txt" in entry.reason


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--input", "missing.txt", "--", "true"], 9, "input does not exist"),
        (["--input", "/etc/hostname", "--", "true"], 2, "outside the work directory"),
        (["--", "no-such-command"], 6, "command not found in the image"),
        ([], 2, "no command given"),
    ],
)
def test_bad_input_is_one_line(project: Path, busybox: Path, cli, args, code, message) -> None:  # type: ignore[no-untyped-def]
    r = _run(cli, busybox, *args)
    assert r.rc == code, r.err
    assert len(r.err_lines) == 1 and message in r.err and "Traceback" not in r.err


def test_not_an_image(project: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project / "fake.sif").write_bytes(b"hello" * 100)
    r = cli("run", "--runtime", "bwrap", "--image", "fake.sif", "--", "true")
    assert r.rc == 3 and "not a SIF image" in r.err and len(r.err_lines) == 1
    r = cli("run", "--runtime", "bwrap", "--image", "nope.sif", "--", "true")
    assert r.rc == 9 and len(r.err_lines) == 1


def test_interrupted_step_leaves_the_journal_intact(
    project: Path, busybox: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert _run(cli, busybox, "--name", "one", "--", "true").rc == 0
    from capsa.containers.runtime import bwrap

    def interrupted(*a: object, **k: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(bwrap, "run_with_overlay", interrupted)
    r = _run(cli, busybox, "--name", "two", "--", "true")
    assert r.rc == 130
    journal = project / ".capsa" / "journal"
    assert sorted(p.name for p in journal.iterdir()) == ["000001.json"]
    assert [e.step.name for e in Journal(project).entries()] == ["one"]


def test_recording_a_name_again_supersedes_it(project: Path, busybox: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert (
        _run(
            cli, busybox, "--name", "same", "--output", "a.txt", "--", "sh", "-c", "echo 1 > a.txt"
        ).rc
        == 0
    )
    assert (
        _run(
            cli, busybox, "--name", "same", "--output", "a.txt", "--", "sh", "-c", "echo 2 > a.txt"
        ).rc
        == 0
    )
    journal = Journal(project)
    assert [e.seq for e in journal.entries()] == [1, 2]
    (live,) = journal.current()
    assert live.seq == 2
    r = cli("log", "--all")
    assert b"superseded" in r.out and r.out.count(b"same") == 2
    assert cli("log").out.count(b"same") == 1
    r = cli("pack", "-o", "b.capsa", "--from-journal")
    assert r.rc == 0, r.err
    with capsa.open(project / "b.capsa") as b:
        (step,) = b.manifest.steps
        assert step.name == "same" and step.argv[-1] == "echo 2 > a.txt"
    assert cli("forget", "same").rc == 0
    assert Journal(project).current() == []
    r = cli("forget", "same")
    assert r.rc == 9 and "no recorded step" in r.err


def test_log_and_pack_from_journal_take_exactly_the_lineage(
    project: Path, analysis: Path, busybox: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    assert (
        _run(
            cli,
            busybox,
            "--name",
            "prep",
            "--input",
            "raw.txt",
            "--output",
            "clean.txt",
            "--",
            "sh",
            "-c",
            "grep -v '^#' raw.txt > clean.txt",
        ).rc
        == 0
    )
    assert (
        _run(
            cli,
            analysis,
            "--name",
            "double",
            "--input",
            "clean.txt",
            "--input",
            "double.py",
            "--output",
            "out.h5",
            "--compare",
            "hdf5",
            "--ignore-attr",
            "*@kid",
            "--",
            "python3",
            "double.py",
            "clean.txt",
            "out.h5",
        ).rc
        == 0
    )
    assert (
        _run(
            cli,
            busybox,
            "--name",
            "unrelated",
            "--output",
            "other.txt",
            "--",
            "sh",
            "-c",
            "echo x > other.txt",
        ).rc
        == 0
    )
    r = cli("log", "--json")
    assert [e["step"]["name"] for e in json.loads(r.out)] == ["prep", "double", "unrelated"]
    assert "prep" in cli("log").out.decode()

    r = cli("pack", "-q", "-o", "ana.capsa", "--from-journal", "out.h5")
    assert r.rc == 0, r.err
    with capsa.open(project / "ana.capsa") as b:
        m = b.manifest
        assert [s.name for s in m.steps] == ["prep", "double"]
        roles = {p: f.role for p, f in m.files.items()}
        assert roles["raw.txt"] == "input" and roles["double.py"] == "input"
        assert roles["clean.txt"] == "intermediate" and roles["out.h5"] == "output"
        assert roles["images/analysis.sif"] == roles["images/busybox.sif"] == "image"
        assert "other.txt" not in roles and "logs/double.stdout" in roles
        out = next(o for o in m.steps[1].outputs if o.path == "out.h5")
        assert out.compare is not None and out.compare.method == "hdf5"
        assert out.compare.ignore_attrs == ("*@kid",)
        assert b.verify().ok
    # All steps when no output is named.
    r = cli("pack", "-q", "-o", "all.capsa", "--from-journal")
    with capsa.open(project / "all.capsa") as b:
        assert [s.name for s in b.manifest.steps] == ["prep", "double", "unrelated"]


def test_pack_from_journal_refuses_a_changed_file(project: Path, busybox: Path, cli) -> None:  # type: ignore[no-untyped-def]
    assert _run(cli, busybox, "--output", "o.txt", "--", "sh", "-c", "echo 1 > o.txt").rc == 0
    (project / "o.txt").write_text("edited by hand\n")
    r = cli("pack", "-o", "x.capsa", "--from-journal", "o.txt")
    assert r.rc == 4 and "changed since it was recorded" in r.err
    assert not (project / "x.capsa").exists()


def test_pack_from_journal_without_records(project: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("pack", "-o", "x.capsa", "--from-journal")
    assert r.rc == 9 and "no recorded steps" in r.err


def test_source_date_epoch_reaches_the_step(
    project: Path, busybox: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert (
        _run(
            cli,
            busybox,
            "--env",
            "FOO=bar",
            "--",
            "sh",
            "-c",
            "echo $SOURCE_DATE_EPOCH $FOO $HOME > env.txt",
        ).rc
        == 0
    )
    assert (project / "env.txt").read_text() == "1700000000 bar /home/capsa\n"
    assert os.environ["SOURCE_DATE_EPOCH"] == "1700000000"


CTAPIPE_LOG = (
    '[{"activity_name": "ctapipe-process", "activity_uuid": "7f1c", "start": {}, '
    '"stop": {}, "system": {}, "input": [], "output": [], "config": {}}]'
)
KM3PIPE_LOG = (
    '[{"uuid": "a1b2", "name": "km3pipe.Pipeline", "start": {}, "stop": {}, '
    '"input": [{"url": "raw.h5"}], "output": [], "parameters": []}]'
)


def test_tool_provenance_is_attached_and_packed(project: Path, busybox: Path, cli) -> None:  # type: ignore[no-untyped-def]
    script = (
        f"echo '{CTAPIPE_LOG}' > cta.provenance.log; echo '{KM3PIPE_LOG}' > run.prov.json; "
        "echo 1 > o.txt"
    )
    r = _run(
        cli,
        busybox,
        "--name",
        "tool",
        "--output",
        "o.txt",
        "--provenance",
        "cta.provenance.log",
        "--provenance",
        "run.prov.json",
        "--",
        "sh",
        "-c",
        script,
    )
    assert r.rc == 0, r.err
    (entry,) = Journal(project).entries()
    recs = {p.path: p for p in entry.step.provenance}
    assert recs["provenance/tool/cta.provenance.log"].format == "ctapipe"
    assert recs["provenance/tool/run.prov.json"].format == "km3pipe"
    assert recs["provenance/tool/run.prov.json"].activities == 1
    assert cli("pack", "-q", "-o", "p.capsa", "--from-journal", "o.txt").rc == 0
    with capsa.open(project / "p.capsa") as b:
        assert b.open_member("provenance/tool/run.prov.json").read().strip() == KM3PIPE_LOG.encode()
        assert b.manifest.files["provenance/tool/cta.provenance.log"].role == "other"


def test_malformed_provenance_is_one_line_and_the_step_is_still_recorded(
    project: Path, busybox: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    r = _run(
        cli,
        busybox,
        "--name",
        "tool",
        "--provenance",
        "bad.json",
        "--",
        "sh",
        "-c",
        "echo 'not json {' > bad.json",
    )
    assert r.rc == 3 and len(r.err_lines) == 1 and "malformed provenance file" in r.err
    assert "recorded without it" in r.err
    (entry,) = Journal(project).entries()
    assert entry.step.provenance == ()


def test_a_step_without_an_image_runs_read_only_on_the_host_and_sees_no_home(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_step(None, ...) (a Snakemake rule without container:, recorded on request): the host's
    software read-only, the project at /work, nothing of the host's /home, /root or /tmp."""
    if not Path("/usr/bin/sh").exists() and not Path("/bin/sh").exists():
        pytest.skip("no /bin/sh on this host")
    secret = tmp_path / "host-tmp-secret"
    secret.write_text("secret\n")
    script = (
        "echo hello > out.txt; ls /home /root 2>&1 | wc -l > seen.txt; "
        "touch /usr/capsa-probe 2>/dev/null && echo wrote-usr >> seen.txt; "
        f"cat {secret} >> seen.txt 2>/dev/null; true"
    )
    outcome = capsa.run_step(
        None, ["sh", "-c", script], outputs=["out.txt", "seen.txt"], echo=False, runtime="bwrap"
    )
    step = outcome.entry.step
    assert outcome.entry.status == "ok" and step.image is None and step.runtime.name == "bwrap"
    assert (project / "out.txt").read_text() == "hello\n"
    seen = (project / "seen.txt").read_text()
    assert "wrote-usr" not in seen and "secret" not in seen
    assert not Path("/usr/capsa-probe").exists()
    with pytest.raises(capsa.UsageError, match="runs under bwrap"):
        capsa.run_step(None, ["true"], runtime="apptainer", echo=False)
