"""What recording costs a Snakemake workflow (issue 12): ``capsa snakemake --cores 2`` against
plain ``snakemake --cores 2`` on the same fan-out/merge workflow, per job.

    python benchmarks/bench_snakemake.py [--runs N] [--repeat N] [--smoke]

Plain Snakemake runs the commands on the host (it ignores ``container:`` without ``--sdm``);
capsa runs each in the rule's image (bubblewrap) and journals it, so the difference is the whole
price of recording: the job runner's start, hashing, the sandbox, the commit and the journal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNAKEFILE = """
RUNS = [f"{{i:04d}}" for i in range({runs})]
container: "{image}"

rule all:
    input: "merged/total.txt"

rule simulate:
    output: "raw/{{run}}.txt"
    shell: "echo run {{wildcards.run}} > {{output}}"

rule histogram:
    input: "raw/{{run}}.txt"
    output: "hist/{{run}}.txt"
    shell: "wc -c < {{input}} > {{output}}"

rule merge:
    input: expand("hist/{{run}}.txt", run=RUNS)
    output: "merged/total.txt"
    shell: "cat {{input}} > {{output}}"
"""


def _image() -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "fixtures/images/build.py"), "analysis"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _once(cmd: list[str], snakefile: str, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Snakefile").write_text(snakefile)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True)
        return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16, help="fan-out width (jobs = 2 * runs + 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs, args.repeat = 2, 1
    if shutil.which("bwrap") is None:
        print("bwrap is not installed: nothing to measure")
        return 0
    snakefile = SNAKEFILE.format(runs=args.runs, image=_image())
    jobs = 2 * args.runs + 1
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CAPSA_CACHE": cache}
        plain = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet"]
        capsa = [sys.executable, "-m", "capsa", "snakemake", "--cores", "2", "--quiet"]
        _once(capsa, snakefile, env)  # warm the image cache
        t_plain = statistics.median(_once(plain, snakefile, env) for _ in range(args.repeat))
        t_capsa = statistics.median(_once(capsa, snakefile, env) for _ in range(args.repeat))
    per_job = 1000 * (t_capsa - t_plain) / jobs
    print(
        f"{jobs} jobs, --cores 2: snakemake {t_plain:.2f} s, capsa snakemake {t_capsa:.2f} s "
        f"(x{t_capsa / t_plain:.2f}); recording adds {per_job:.0f} ms per job "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
