"""Recording overhead and parallel replay (issue 19), measured from outside with the CLI.

    python benchmarks/bench_record.py [--repeat N] [--files N] [--steps N] [--smoke]

* recording overhead per step: ``capsa run -- true`` minus capsa's own start-up
  (``capsa --version``) minus the bare sandboxed command (``bwrap`` with capsa's options running
  ``true`` in the same unpacked image), in an empty project and in one of ``--files`` files
  (target: < 50 ms, flat in the project's size);
* replay of a production of ``--steps`` CPU-bound steps with ``--jobs 2`` against ``--jobs 1``
  (target: >= 1.7x on two cores).

Uses the test image builder (fixtures/images/build.py) for busybox and a warm image cache.
``--smoke`` runs tiny sizes once (CI checks that the script runs to the end).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPSA = [sys.executable, "-m", "capsa"]


def _time(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def _median(cmd: list[str], cwd: Path, env: dict[str, str], n: int) -> float:
    return statistics.median(_time(cmd, cwd, env) for _ in range(n))


def _busybox() -> Path:
    out = (
        subprocess.run(
            [sys.executable, str(ROOT / "fixtures/images/build.py"), "busybox"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return Path(out)


def _bare_bwrap(rootfs: Path, work: Path) -> list[str]:
    return [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-all",
        "--hostname",
        "capsa",
        "--ro-bind",
        str(rootfs),
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(work),
        "/work",
        "--chdir",
        "/work",
        "--clearenv",
        "--setenv",
        "PATH",
        "/bin",
        "--",
        "true",
    ]


def recording(image: Path, files: int, repeat: int, env: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        startup = _median([*CAPSA, "--version"], Path(tmp), env, repeat)
        out["startup_s"] = startup
        for label, n in (("empty", 0), (f"{files}_files", files)):
            proj = Path(tmp) / label
            proj.mkdir()
            for i in range(n):
                d = proj / f"d{i // 100:04d}"
                d.mkdir(exist_ok=True)
                (d / f"f{i}.txt").write_text("x")
            run = [*CAPSA, "run", "-q", "--runtime", "bwrap", "--image", str(image), "--", "true"]
            _time(run, proj, env)  # warm the image cache
            rootfs = next((Path(env["CAPSA_CACHE"]) / "images").glob("*/rootfs"))
            bare = _median(_bare_bwrap(rootfs, proj), proj, env, repeat)
            total = _median(run, proj, env, repeat)
            out[f"run_{label}_s"] = total
            out[f"bare_{label}_s"] = bare
            out[f"overhead_{label}_ms"] = 1000 * (total - startup - bare)
    return out


def replay(image: Path, steps: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp) / "prod"
        proj.mkdir()
        burn = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $1 > out_$1.txt"
        for i in range(steps):
            subprocess.run(
                [
                    *CAPSA,
                    "run",
                    "-q",
                    "--runtime",
                    "bwrap",
                    "--image",
                    str(image),
                    "--name",
                    f"s{i}",
                    "--output",
                    f"out_{i}.txt",
                    "--",
                    "sh",
                    "-c",
                    burn,
                    "sh",
                    str(i),
                ],
                cwd=proj,
                env=env,
                check=True,
                capture_output=True,
            )
        bundle = Path(tmp) / "prod.capsa"
        subprocess.run(
            [*CAPSA, "pack", "-q", "-o", str(bundle), "--from-journal"],
            cwd=proj,
            env=env,
            check=True,
        )
        times = {}
        for jobs in (1, 2):
            cmd = [
                *CAPSA,
                "replay",
                "-q",
                str(bundle),
                "--allow-unsigned",
                "--runtime",
                "bwrap",
                "--jobs",
                str(jobs),
            ]
            times[jobs] = _time(cmd, Path(tmp), env)
        return {"jobs1_s": times[1], "jobs2_s": times[2], "speedup": times[1] / times[2]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat, args.files, args.steps = 1, 50, 2
    image = _busybox()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CAPSA_CACHE": cache}
        result = {
            "recording": recording(image, args.files, args.repeat, env),
            "replay": replay(image, args.steps, env),
            "load_average": os.getloadavg()[0],
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        r, p = result["recording"], result["replay"]
        print(f"capsa start-up                      {1000 * r['startup_s']:7.1f} ms")
        for label in ("empty", f"{args.files}_files"):
            print(
                f"capsa run -- true ({label:>12})    {1000 * r[f'run_{label}_s']:7.1f} ms  "
                f"(bare bwrap {1000 * r[f'bare_{label}_s']:.1f} ms; "
                f"recording overhead {r[f'overhead_{label}_ms']:.1f} ms)"
            )
        print(
            f"replay of {args.steps} CPU-bound steps: --jobs 1 {p['jobs1_s']:.1f} s, "
            f"--jobs 2 {p['jobs2_s']:.1f} s, speed-up {p['speedup']:.2f}x "
            f"(load average {result['load_average']:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
