"""``capsa replay --executor dask`` on real clusters started by the tests on 127.0.0.1: a Dask
LocalCluster, a ``dask scheduler`` with two ``dask worker`` processes, and a single-node Slurm
whose worker jobs dask-jobqueue submits; plus the replay journal (``--resume``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dag import fan_out_bundle
from slurm import missing, single_node_slurm

from conftest import CliResult
from images import image

pytest.importorskip("distributed", reason="the dask extra is not installed")
pytestmark = pytest.mark.container  # real containers (bwrap) and the busybox test image

N = 4


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed → work[0..3] → merge, and a failing step whose dependant must be skipped."""
    return fan_out_bundle(
        tmp_path_factory.mktemp("dag") / "dag.capsa", image("busybox"), N, fail=True
    )


@pytest.fixture
def replay(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, dict, str]]:  # type: ignore[type-arg]
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))

    def run(bundle: Path, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
        r = cli("replay", bundle, "--allow-unsigned", "--runtime", "bwrap", "--json", *args)
        doc = json.loads(r.out) if r.out.strip().startswith(b"{") else {}
        return r.rc, doc, r.err

    return run


def _verdicts(doc: dict) -> dict[str, tuple[str, list[str]]]:  # type: ignore[type-arg]
    return {s["name"]: (s["status"], [o["verdict"] for o in s["outputs"]]) for s in doc["steps"]}


EXPECTED = {
    "seed": ("ok", ["identical"]),
    **{f"work[i={i}]": ("ok", ["identical"]) for i in range(N)},
    "merge": ("ok", ["identical"]),
    "fail": ("failed", ["missing"]),
    "after-fail": ("skipped", []),
}


def test_local_cluster_gives_the_verdicts_of_the_local_executor(replay, production) -> None:  # type: ignore[no-untyped-def]
    rc, local, _ = replay(production, "--jobs", "2")
    assert rc == 1 and _verdicts(local) == EXPECTED
    rc, doc, err = replay(production, "--executor", "dask", "--cluster", "local", "--workers", "2")
    assert rc == 1, err
    assert _verdicts(doc) == EXPECTED
    # Digests of the replayed outputs came back from the workers, and agree.
    found = {o["path"]: o["found"] for s in doc["steps"] for o in s["outputs"]}
    assert found == {o["path"]: o["found"] for s in local["steps"] for o in s["outputs"]}
    assert "Dask dashboard: http://127.0.0.1:" in err  # on stderr, beside --json
    assert doc["steps"][-1]["reason"] == "input lost.txt was not reproduced by its step"


def test_the_dashboard_link_is_printed_unless_quiet(replay, production) -> None:  # type: ignore[no-untyped-def]
    from capsa.cli.main import main

    args = [str(production), "--allow-unsigned", "--runtime", "bwrap", "--step", "seed"]
    rc, _, err = replay(production, "--executor", "dask", "--workers", "1", "--step", "seed")
    assert rc == 0
    assert "Dask dashboard: http://127.0.0.1:" in err
    assert main(["replay", "-q", *args, "--executor", "dask", "--workers", "1"]) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[dict[str, object]]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1. A worker that dies
    fails its task at once (allowed-failures 0), as a batch job killed by its wall time."""
    dask = Path(sys.executable).with_name("dask")
    env = {
        **os.environ,
        "CAPSA_CACHE": str(tmp_path / "cache"),
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    }
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("wb") as log:
            procs[name] = subprocess.Popen(
                [str(dask), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
          "--no-dashboard")  # fmt: skip
    for n in (1, 2):
        start(f"worker{n}", "worker", address, "--nthreads", "1", "--nworkers", "1",
              "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{n}")  # fmt: skip
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=60)
        yield {"address": address, "procs": procs, "env": env}
    finally:
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_an_existing_scheduler_with_two_worker_processes(  # type: ignore[no-untyped-def]
    replay, production, dask_processes
) -> None:
    address = dask_processes["address"]
    rc, doc, err = replay(production, "--executor", "dask", "--scheduler", address)
    assert rc == 1, err
    assert _verdicts(doc) == EXPECTED


def test_a_worker_dying_mid_step_fails_that_step_and_skips_only_its_dependants(
    production: Path, dask_processes: dict[str, object], tmp_path: Path
) -> None:
    slow = fan_out_bundle(tmp_path / "slow.capsa", image("busybox"), 2, sleep=20)
    work = tmp_path / "w"
    env = dict(dask_processes["env"])  # type: ignore[call-overload]
    cmd = [sys.executable, "-m", "capsa", "replay", "--json", str(slow), "--allow-unsigned",
           "--runtime", "bwrap", "--executor", "dask", "--workdir", str(work),
           "--scheduler", str(dask_processes["address"])]  # fmt: skip
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while not list(work.glob("*/00[23]-work*/work")) and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(1)  # both work steps are running, one on each worker
        procs: dict[str, subprocess.Popen[bytes]] = dask_processes["procs"]  # type: ignore[assignment]
        os.killpg(procs["worker1"].pid, signal.SIGKILL)
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    doc = json.loads(out)
    steps = {s["name"]: s for s in doc["steps"]}
    died = [n for n in ("work[i=0]", "work[i=1]") if steps[n]["status"] == "failed"]
    assert len(died) == 1 and "worker running it died" in steps[died[0]]["reason"]
    other = "work[i=1]" if died == ["work[i=0]"] else "work[i=0]"
    assert steps[other]["status"] == "ok" and steps["seed"]["status"] == "ok"
    assert steps["merge"]["status"] == "skipped"  # it reads the lost part


def test_a_scheduler_that_does_not_answer_is_one_line_exit_7(
    cli: Callable[..., CliResult], production: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capsa.replay.executors.dask as executor

    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 2.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    r = cli("replay", production, "--allow-unsigned", "--executor", "dask", "--scheduler", address)
    assert r.rc == 7
    assert len(r.err_lines) == 1 and "no Dask scheduler answers at this address" in r.err
    assert address in r.err


@pytest.mark.parametrize("kind", ["local", "slurm"])
def test_a_cluster_option_the_backend_rejects_is_a_usage_error(
    cli: Callable[..., CliResult], production: Path, kind: str
) -> None:
    r = cli("replay", production, "--allow-unsigned", "--executor", "dask", "--cluster", kind,
            "--cluster-option", "no_such_option=1")  # fmt: skip
    assert r.rc == 2, r.err
    assert len(r.err_lines) == 1 and "no_such_option" in r.err and f"{kind} cluster" in r.err


def test_cluster_options_are_key_value(cli: Callable[..., CliResult], production: Path) -> None:
    r = cli("replay", production, "--allow-unsigned", "--executor", "dask",
            "--cluster-option", "queue")  # fmt: skip
    assert r.rc == 2 and "is not KEY=VALUE" in r.err
    r = cli("replay", production, "--allow-unsigned", "--scheduler", "tcp://127.0.0.1:1")
    assert r.rc == 2 and "need --executor dask" in r.err
    r = cli("replay", production, "--allow-unsigned", "--executor", "dask",
            "--scheduler", "nonsense://x")  # fmt: skip
    assert r.rc == 2 and len(r.err_lines) == 1 and "not a Dask scheduler address" in r.err


def test_replay_help_does_not_import_dask() -> None:
    code = textwrap.dedent("""
        import sys, contextlib, io
        import capsa.cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                capsa.cli.main(["replay", "--help"])
            except SystemExit as e:
                assert e.code == 0, e.code
        assert "--executor" in out.getvalue() and "--resume" in out.getvalue()
        assert "dask" not in sys.modules and "distributed" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    gone = missing()
    if gone:
        pytest.skip(f"a test Slurm needs {', '.join(gone)} (Debian: slurmctld slurmd munge)")
    if os.geteuid() != 0:
        pytest.skip("the test Slurm runs its daemons as root (SlurmUser=root)")
    try:
        with single_node_slurm(tmp_path_factory.mktemp("slurm")) as env:
            yield env
    except RuntimeError as e:
        if "did not" in str(e).splitlines()[0]:
            pytest.skip(f"the test Slurm cannot start here: {e}")
        raise


LOOPBACK = json.dumps({"host": "127.0.0.1"})


def test_slurm_cluster_runs_the_steps_as_batch_jobs(
    replay, production, slurm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    work = tmp_path / "w"
    rc, doc, err = replay(production, "--executor", "dask", "--cluster", "slurm",
                          "--workers", "2", "--keep", "--workdir", str(work),
                          "--cluster-option", "walltime=00:10:00",
                          "--cluster-option", f"scheduler_options={LOOPBACK}")  # fmt: skip
    assert rc == 1, err
    assert _verdicts(doc) == EXPECTED
    # The workers were Slurm jobs: their job logs are kept with the work directories.
    logs = list(Path(doc["workdir"]).glob("dask-jobs/*.err"))
    assert logs, "no Slurm job log"
    # The cluster was closed: its jobs were cancelled (at most still completing).
    r = subprocess.run(["squeue", "-h", "-o", "%t"], env=slurm, capture_output=True, text=True)
    assert r.returncode == 0 and set(r.stdout.split()) <= {"CG"}


def test_a_job_the_batch_system_refuses_is_one_line_with_its_reason(
    cli: Callable[..., CliResult],
    production: Path,
    slurm: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    r = cli("replay", production, "--allow-unsigned", "--executor", "dask", "--cluster", "slurm",
            "--cluster-option", "memory=100GB",
            "--cluster-option", f"scheduler_options={LOOPBACK}")  # fmt: skip
    assert r.rc == 2, r.err
    assert len(r.err_lines) == 1, r.err
    assert "the slurm batch system refuses the worker job" in r.err and "Memory" in r.err


def test_ctrl_c_cancels_the_batch_jobs_and_keeps_the_journal(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    slow = fan_out_bundle(tmp_path / "slow.capsa", image("busybox"), 2, sleep=30)
    work = tmp_path / "w"
    env = {**slurm, "CAPSA_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "capsa", "replay", "-q", str(slow), "--allow-unsigned",
           "--runtime", "bwrap", "--executor", "dask", "--cluster", "slurm", "--workers", "2",
           "--workdir", str(work), "--cluster-option", f"scheduler_options={LOOPBACK}"]  # fmt: skip
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while not list(work.glob("*/00[23]-work*/work")) and time.monotonic() < end:
            time.sleep(0.2)

        def jobs() -> set[str]:
            r = subprocess.run(["squeue", "-h", "-o", "%t"], env=slurm, capture_output=True,
                               text=True)  # fmt: skip
            return set(r.stdout.split())

        assert "R" in jobs()  # the worker jobs run the steps
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert jobs() <= {"CG"}  # cancelled, at most still completing
    journal = next(work.glob("capsa-replay-*.journal"))
    names = [json.loads(line)["report"]["name"] for line in journal.read_text().splitlines()[1:]]
    assert names == ["seed"]  # what finished before Ctrl-C is kept for --resume
