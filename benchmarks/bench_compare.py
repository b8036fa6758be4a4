"""ROOT diff benchmark: `capsa diff` on two large ROOT files that differ in one value, against a
plain uproot script that only reads every branch of both (the least any content comparison must
do), and ROOT's own `rootcmp` / `hadd` when installed.

    python benchmarks/bench_compare.py                       # ~1 GB of uncompressed data per file
    python benchmarks/bench_compare.py --entries 200000      # a smoke run (CI), a few seconds
    python benchmarks/bench_compare.py --json out.json --keep --workdir /tmp/bc

Each command is a separate process under GNU `/usr/bin/time` (wall time, peak RSS). The files are
written once per size (kept in --workdir, reused when present) with uproot: one TTree of four
branches (random float64, rounded float64, a constant float64, an int64 counter) extended in
chunks of 1M entries, ZLIB level 1 — 32M entries make 1.02 GB of uncompressed data (~380 MB on
disk). The second file differs from the first in one value of one branch, at entry 20,012,345
scaled to the size. Needs the `root` extra (uproot, awkward).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 1_000_000
READ_ALL = """
import sys, uproot
step = int(sys.argv[3])
for p in sys.argv[1:3]:
    with uproot.open(p, array_cache=None, object_cache=None) as f:
        t = f["big"]
        for name in t.keys():
            b = t[name]
            for s in range(0, b.num_entries, step):
                b.array(entry_start=s, entry_stop=min(b.num_entries, s + step), library="np")
"""


def write(path: Path, entries: int, change_at: int | None) -> None:
    code = f"""
import numpy as np, uproot
N, CH, at = {entries}, {CHUNK}, {change_at!r}
with uproot.recreate({str(path)!r}, compression=uproot.ZLIB(1)) as f:
    t = f.mktree("big", {{"x": "f8", "y": "f8", "z": "f8", "n": "i8"}}, initial_basket_capacity=100)
    for start in range(0, N, CH):
        n = min(CH, N - start)
        rng = np.random.default_rng(start)
        y = rng.normal(size=n).round(3)
        if at is not None and start <= at < start + n:
            y[at - start] += 1e-12
        t.extend({{"x": rng.normal(size=n), "y": y, "z": np.full(n, 1.5),
                  "n": np.arange(start, start + n)}})
"""
    tmp = path.with_suffix(".tmp")
    subprocess.run(
        [sys.executable, "-c", code.replace(repr(str(path)), repr(str(tmp)))], check=True
    )
    tmp.rename(path)


def timed(argv: list[str]) -> tuple[dict[str, float | int], str]:
    """(wall time, peak RSS, exit code) of ``argv`` as its own process, and its stdout."""
    t0 = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *argv], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    rss_kb = int(p.stderr.strip().splitlines()[-1].split()[1])
    row = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss_kb / 1024, 1), "rc": p.returncode}
    return row, p.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=32_000_000, help="entries per file")
    ap.add_argument("--workdir", type=Path, help="where the files are written (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the files for the next run")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per command (median)")
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    if shutil.which("/usr/bin/time") is None:
        print("needs GNU time (/usr/bin/time)", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="capsa-bench-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.entries
    at = min(n - 1, 20_012_345 * n // 32_000_000)
    a, b = work / f"a-{n}.root", work / f"b-{n}.root"
    try:
        for path, change in ((b, None), (a, at)):
            if not path.exists():
                t0 = time.perf_counter()
                write(path, n, change)
                print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)  # fmt: skip
        # the same chunk as capsa's (entries of a float64 branch): "about 16 MiB of the
        # reference's uncompressed data" per read (spec/format.md, the root comparator)
        step = max(1, (16 << 20) // 8)
        commands = {
            "capsa diff": [sys.executable, "-m", "capsa", "diff", str(a), str(b), "--json", "-q"],
            "uproot read-all": [sys.executable, "-c", READ_ALL, str(a), str(b), str(step)],
        }
        if shutil.which("rootcmp"):
            commands["rootcmp"] = ["rootcmp", str(a), str(b)]
        rows, out = {}, {}
        for name, cmd in commands.items():
            runs = sorted((timed(cmd) for _ in range(args.repeat)), key=lambda r: r[0]["wall_s"])
            rows[name], out[name] = runs[len(runs) // 2]
        report = json.loads(out["capsa diff"])
        first = report["differences"][0]["detail"]["first"] if report["differences"] else []
        size = a.stat().st_size + b.stat().st_size
        base = rows["uproot read-all"]["wall_s"]
        print(f"{n} entries per file, {size / 1e6:.0f} MB on disk in all; the change at {at}")
        print(f"{'command':<18} {'wall s':>8} {'peak RSS MB':>12} {'vs read-all':>12}")
        for name, r in rows.items():
            ratio = float(base) / max(0.01, float(r["wall_s"]))
            print(f"{name:<18} {r['wall_s']:>8} {r['peak_rss_mb']:>12} {ratio:>11.2f}x")
        print(f"capsa diff: verdict {report['verdict']}, first differing entry {first}")
        if "rootcmp" not in rows:
            print("rootcmp (ROOT) not installed: not compared")
        if args.json:
            doc = {"entries": n, "bytes": size, "change_at": at, "found": first, "rows": rows}
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
        ok = report["verdict"] == "different" and first[:1] == [at]
        return 0 if ok else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:
            for p in (a, b):
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
