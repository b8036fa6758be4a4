"""benchmarks/bench_remote.py runs to the end in its smoke mode (CI), and what it counts holds
the issue's request bounds: `capsa ls URL` ≤ 3 requests, `capsa cat URL … --length 1MiB` ≤ 4.
Times are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_remote.py"


@pytest.mark.slow
def test_bench_remote_smoke(tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    r = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--workdir", str(tmp_path), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    numbers = json.loads(out.read_text())
    assert numbers["ls"]["requests"] <= 3
    assert numbers["cat_last_mib"]["requests"] <= 4
    h5 = numbers["h5py_slice_1000_rows"]
    assert h5["bytes"] < numbers["events_h5_bytes"]
    assert numbers["verify"]["requests"] >= 1
