"""Every committed benchmark runs to its end: each one in its smoke mode (tiny sizes, one run), as
a real process, exactly as a user would start it. Timings are never asserted; the benchmarks
print them. A benchmark that cannot start its baseline tool fails here, so CI installs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

SMOKE = {
    "bench_dask": ["--smoke"],
    "bench_record": ["--smoke"],
    "bench_snakemake": ["--smoke"],
    "bench_report": ["--steps", "30", "--repeat", "1"],
    "bench_compare": ["--entries", "200000"],
    "large_manifest": ["--files", "20000", "--blobs", "200"],
}


def run_bench(name: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAPSA_CACHE": str(tmp / "cache"), "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_to_its_end(name: str, tmp_path: Path) -> None:
    if name == "bench_compare":
        pytest.importorskip("uproot", reason="the root extra (uproot) is not installed")
    args = list(SMOKE[name])
    if name == "large_manifest":
        args += ["--dir", str(tmp_path / "lm")]
    p = run_bench(name, args, tmp_path)
    assert p.returncode == 0, (
        f"{name} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    )
    assert "Traceback" not in p.stderr
    assert p.stdout.strip(), f"{name} printed no results"


# Smoke-run by a test of their own, which also checks what they measure.
ELSEWHERE = {"bench_remote": "tests/storage/test_bench_remote.py"}


def test_every_benchmark_has_a_smoke_run() -> None:
    """A new benchmark gets a smoke run here, or CI would not notice when it stops working."""
    scripts = {p.stem for p in BENCH.glob("*.py")} - {"make_corpus"}
    missing = scripts - {"bench"} - set(SMOKE) - set(ELSEWHERE)
    assert not missing, sorted(missing)
    for test in ELSEWHERE.values():
        assert (BENCH.parent / test).is_file(), test
