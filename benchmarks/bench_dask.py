"""Replay on Dask and recording at production scale (issue 15), through capsa's public API and
command line only.

    python benchmarks/bench_dask.py [--steps N] [--cpu-steps N] [--record-steps N] [--smoke]

* a synthetic fan-out/merge bundle of ``--steps`` short busybox steps (seed → work[i] → merge):
  scheduling overhead per step on a LocalCluster, i.e. (dask - local) per extra step with the
  fixed costs (verification, cluster start) cancelled by a one-step bundle (target < 20 ms), and
  end-to-end time of ``--executor dask --workers 2`` against ``--jobs 2``;
* ``--cpu-steps`` CPU-bound steps: speed-up of 2 Dask workers over 1 (target >= 1.7x on two
  cores);
* a journal of ``--record-steps`` recorded steps writing 10 files each: ``capsa log``,
  ``capsa pack --from-journal`` and ``capsa history`` of the final output (target < 5 s each at
  1,000 steps / 10,000 files).

``--smoke`` runs tiny sizes once (CI checks that the script runs to the end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import capsa
from capsa.replay import replay

ROOT = Path(__file__).resolve().parents[1]
CAPSA = [sys.executable, "-m", "capsa"]


def _busybox() -> Path:
    out = subprocess.run(
        [sys.executable, str(ROOT / "fixtures/images/build.py"), "busybox"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fan_out(out: Path, busybox: Path, n: int, burn: int = 0) -> Path:
    """seed → work[i] (i < n) → merge, packed with its steps (no recording needed)."""
    tmp = out.parent / f"{out.stem}-files"
    tmp.mkdir()
    image = _d(busybox.read_bytes())
    files: dict[str, Path] = {"images/busybox.sif": busybox}

    def file(path: str, data: bytes) -> dict[str, str]:
        (tmp / path).write_bytes(data)
        files[path] = tmp / path
        return {"path": path, "digest": _d(data)}

    def step(name: str, script: str, *args: str, **kw: object) -> capsa.Step:
        return capsa.Step.model_validate(
            {
                "name": name,
                "image": image,
                "argv": ("sh", "-c", script, "sh", *args),
                "env": {"PATH": "/bin"},
                "runtime": {"name": "bwrap"},
                **kw,
            }
        )

    seed = file("seed.txt", b"seed\n")
    steps = [step("seed", "echo seed > seed.txt", outputs=(seed,))]
    spin = f"i=0; while [ $i -lt {burn} ]; do i=$((i+1)); done; " if burn else ""
    parts = []
    for i in range(n):
        part = file(f"part-{i}.txt", f"seed-{i}\n".encode())
        parts.append(part)
        steps.append(
            step(
                f"work[i={i}]",
                spin + 'read x < seed.txt; echo "$x-$1" > "part-$1.txt"',
                str(i),
                inputs=(seed,),
                outputs=(part,),
            )
        )
    total = file("total.txt", b"".join(f"seed-{i}\n".encode() for i in range(n)))
    steps.append(
        step(
            "merge",
            "cat part-*.txt | sort -t- -k2 -n > total.txt",
            inputs=tuple(parts),
            outputs=(total,),
        )
    )
    return capsa.pack(out, files=files, steps=steps, progress=False).path


def _timed(bundle: Path, **kw: object) -> float:
    t = time.perf_counter()
    report = replay(bundle, allow_unsigned=True, runtime="bwrap", progress=False, **kw)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t
    if not report.ok:
        raise SystemExit(f"replay of {bundle} did not reproduce: {report.counts()}")
    return elapsed


def scheduling(busybox: Path, steps: int, tmp: Path) -> dict[str, float]:
    big = fan_out(tmp / "big.capsa", busybox, steps)
    one = fan_out(tmp / "one.capsa", busybox, 1)
    _timed(one)  # warm the image cache
    dask1 = {"executor": "dask", "cluster": "local", "workers": 1}
    t = {
        "local_1": _timed(one, jobs=1),
        "local_n": _timed(big, jobs=1),
        "dask_1": _timed(one, **dask1),
        "dask_n": _timed(big, **dask1),
        "local_jobs2": _timed(big, jobs=2),
        "dask_workers2": _timed(big, executor="dask", cluster="local", workers=2),
    }
    extra = steps + 2 - 3  # the big bundle has steps + 2 steps, the small one 3
    per_step_local = (t["local_n"] - t["local_1"]) / extra
    per_step_dask = (t["dask_n"] - t["dask_1"]) / extra
    return t | {
        "per_step_local_ms": 1000 * per_step_local,
        "per_step_dask_ms": 1000 * per_step_dask,
        "overhead_ms": 1000 * (per_step_dask - per_step_local),
    }


def speedup(busybox: Path, steps: int, burn: int, tmp: Path) -> dict[str, float]:
    b = fan_out(tmp / "cpu.capsa", busybox, steps, burn=burn)
    one = _timed(b, executor="dask", cluster="local", workers=1)
    two = _timed(b, executor="dask", cluster="local", workers=2)
    return {"workers1_s": one, "workers2_s": two, "speedup": one / two}


def recording(busybox: Path, steps: int, files_per_step: int, tmp: Path) -> dict[str, float]:
    """A journal of ``steps`` recorded steps (``capsa.run_step``), then the commands' times."""
    proj = tmp / "prod"
    proj.mkdir()
    (proj / ".capsa").mkdir()
    (proj / "seed.txt").write_text("seed\n")
    made = " ".join(f"out-$1-{k}.txt" for k in range(files_per_step))
    here = Path.cwd()
    os.chdir(proj)  # capsa run's paths are relative to the project, as on the command line
    t0 = time.perf_counter()
    outs: list[str] = []
    for i in range(steps):
        mine = [f"out-{i}-{k}.txt" for k in range(files_per_step)]
        capsa.run_step(
            busybox,
            ["sh", "-c", f"for f in {made}; do echo $f > $f; done", "sh", str(i)],
            inputs=["seed.txt"],
            outputs=mine,
            name=f"work[i={i}]",
            runtime="bwrap",
            echo=False,
            project=proj,
        )
        outs.extend(mine)
    (proj / "list.sh").write_text("cat out-*.txt | wc -l > total.txt\n")
    capsa.run_step(
        busybox,
        ["sh", "list.sh"],
        inputs=["list.sh", *outs],
        outputs=["total.txt"],
        name="merge",
        runtime="bwrap",
        echo=False,
        project=proj,
    )
    record_s = time.perf_counter() - t0
    os.chdir(here)

    def cli(*args: str) -> float:
        t = time.perf_counter()
        subprocess.run([*CAPSA, *args], cwd=proj, check=True, capture_output=True)
        return time.perf_counter() - t

    bundle = tmp / "prod.capsa"
    return {
        "files": steps * files_per_step + 1,
        "record_s": record_s,
        "log_s": cli("log"),
        "pack_s": cli("pack", "-q", "-o", str(bundle), "--from-journal", "total.txt"),
        "history_s": cli("history", str(bundle), "total.txt"),
        "history_journal_s": cli("history", "total.txt"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--cpu-steps", type=int, default=12)
    ap.add_argument("--burn", type=int, default=600_000, help="loop count of a CPU-bound step")
    ap.add_argument("--record-steps", type=int, default=1000)
    ap.add_argument("--files-per-step", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    ap.add_argument("--skip", action="append", default=[], help="scheduling|speedup|recording")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.cpu_steps, args.burn, args.record_steps = 4, 2, 1000, 3
    busybox = _busybox()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as tmp:
        os.environ["CAPSA_CACHE"] = cache
        base = Path(tmp)
        for part in ("scheduling", "speedup", "recording"):
            (base / part).mkdir()
        if "scheduling" not in args.skip:
            result["scheduling"] = scheduling(busybox, args.steps, base / "scheduling")
        if "speedup" not in args.skip:
            result["speedup"] = speedup(busybox, args.cpu_steps, args.burn, base / "speedup")
        if "recording" not in args.skip:
            result["recording"] = recording(
                busybox, args.record_steps, args.files_per_step, base / "recording"
            )
    result["load_average"] = os.getloadavg()[0]
    result["cpus"] = os.cpu_count() or 0
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    s = result.get("scheduling")
    if isinstance(s, dict):
        print(
            f"{args.steps}-step fan-out: per step local {s['per_step_local_ms']:.1f} ms, "
            f"dask (1 worker) {s['per_step_dask_ms']:.1f} ms → scheduling overhead "
            f"{s['overhead_ms']:.1f} ms/step (target < 20)"
        )
        print(
            f"end to end: --jobs 2 {s['local_jobs2']:.1f} s, --executor dask --workers 2 "
            f"{s['dask_workers2']:.1f} s"
        )
    p = result.get("speedup")
    if isinstance(p, dict):
        print(
            f"{args.cpu_steps} CPU-bound steps: 1 worker {p['workers1_s']:.1f} s, 2 workers "
            f"{p['workers2_s']:.1f} s → speed-up {p['speedup']:.2f}x (target >= 1.7)"
        )
    r = result.get("recording")
    if isinstance(r, dict):
        print(
            f"{args.record_steps} steps / {r['files']} files (recorded in {r['record_s']:.0f} s): "
            f"log {r['log_s']:.2f} s, pack --from-journal {r['pack_s']:.2f} s, history "
            f"{r['history_s']:.2f} s (of the journal {r['history_journal_s']:.2f} s; "
            "target < 5 s each)"
        )
    print(f"(load average {result['load_average']:.1f} on {result['cpus']} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
