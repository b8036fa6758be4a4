"""A real single-node Slurm for the tests: munged, slurmctld and slurmd from Debian, started in
the foreground as child processes with their own key, sockets, ports and state below a
temporary directory, and stopped afterwards. Nothing of the host's Slurm or munge is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

NEEDS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing() -> list[str]:
    return [t for t in NEEDS if shutil.which(t) is None]


@contextlib.contextmanager
def single_node_slurm(base: Path) -> Iterator[dict[str, str]]:
    """Start Slurm; yield the environment its client commands need (``SLURM_CONF``). Raises
    RuntimeError with the daemons' last words when it does not come up."""
    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    munge = base / "munge"
    munge.mkdir(mode=0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = munge / "munge.socket"
    for d in ("state", "spool", "log"):
        (base / d).mkdir()
    conf = base / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=capsatest",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={sock}",
                f"StateSaveLocation={base / 'state'}",
                f"SlurmdSpoolDir={base / 'spool'}",
                f"SlurmctldPidFile={base / 'slurmctld.pid'}",
                f"SlurmdPidFile={base / 'slurmd.pid'}",
                f"SlurmctldLogFile={base / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={base / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "MpiDefault=none",
                "SchedulerType=sched/builtin",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SlurmctldTimeout=30",
                "SlurmdTimeout=30",
                "InactiveLimit=0",
                "KillWait=2",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} "
                "RealMemory=4000 State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (base / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\nIgnoreSystemd=yes\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*cmd: str | Path) -> None:
        with (base / "log" / f"{Path(str(cmd[0])).name}.out").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [str(c) for c in cmd],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def last_words() -> str:
        out = []
        for p in sorted((base / "log").iterdir()):
            lines = p.read_text(errors="replace").strip().splitlines()
            out.extend(f"{p.name}: {line}" for line in lines[-3:])
        return "\n".join(out)

    try:
        start(
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={base / 'log' / 'munged.log'}",
            f"--seed-file={munge / 'seed'}",
        )
        _wait(lambda: sock.exists(), 10, "munged did not start", last_words)
        start("slurmctld", "-D", "-i", "-f", conf)
        start("slurmd", "-D", "-f", conf)

        def idle() -> bool:
            r = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True
            )
            return r.returncode == 0 and r.stdout.strip() in ("idle", "mix")

        _wait(idle, 60, "the Slurm node did not become idle", last_words)
        yield env
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=10)
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _wait(ok, seconds: float, what: str, words) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what}:\n{words()}")
