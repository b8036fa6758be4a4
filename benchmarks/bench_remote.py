#!/usr/bin/env python3
"""Remote bundles on loopback: requests, bytes and time of reading a large bundle over HTTP.

    python benchmarks/bench_remote.py [--size-mb 2000] [--workdir DIR] [--json OUT.json] [--smoke]

A bundle of ``--size-mb`` (default 2000: a random ``big.bin`` that is stored as is, plus an
HDF5 ``events.h5`` of about a tenth of it) is served by the tests' range server
(tests/storage/rangeserver.py, which counts requests and body bytes) on 127.0.0.1, and read
with the public interface only — the ``capsa`` command as its own process, ``capsa.open`` —:

* ``capsa ls URL``: requests (the issue asks ≤ 3) and wall time;
* ``capsa cat URL big.bin --offset SIZE-1MiB --length 1MiB``: requests (≤ 4), wall time of the
  whole process (< 0.5 s asked);
* one 1,000-row slice of ``events.h5`` with h5py through ``capsa.open(URL).open_member``:
  requests and bytes fetched against the file's size;
* ``capsa verify URL`` (every blob hashed, read over HTTP) against
  ``curl -s URL | sha256sum``: MB/s.

``--smoke`` (CI) uses a 20 MB bundle and runs everything once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "storage"))
from rangeserver import RangeServer  # noqa: E402

import capsa  # noqa: E402

MIB = 1 << 20
MB = 1000 * 1000
ROWS_PER_MB = MB // 64  # events rows are 8 float64 columns


def make_bundle(work: Path, size: int) -> tuple[Path, int]:
    """A bundle of about ``size`` bytes; returns it and the number of event rows."""
    src = work / "ana"
    src.mkdir()
    rng = np.random.default_rng(14)
    rows = max(size // 10 // 64, 10_000)
    with h5py.File(src / "events.h5", "w") as f:
        d = f.create_dataset("events", shape=(rows, 8), dtype="f8", chunks=(8192, 8))
        for start in range(0, rows, 1 << 20):
            n = min(1 << 20, rows - start)
            d[start : start + n] = rng.normal(size=(n, 8))
    big = size - (src / "events.h5").stat().st_size
    with (src / "big.bin").open("wb") as f:
        left = max(big, MIB)
        while left:
            n = min(left, 64 * MIB)
            f.write(rng.bytes(n))
            left -= n
    bundle = work / "www" / "ana.capsa"
    bundle.parent.mkdir()
    capsa.pack(bundle, [src / "events.h5", src / "big.bin"], progress=False)
    shutil.rmtree(src)
    return bundle, rows


def timed(argv: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t0, r


def run(size: int, work: Path) -> dict[str, object]:
    bundle, rows = make_bundle(work, size)
    total = bundle.stat().st_size
    capsa_cmd = [sys.executable, "-m", "capsa"]
    out: dict[str, object] = {"bundle_bytes": total}
    with RangeServer(bundle.parent) as server:
        url = server.url("ana.capsa")
        with capsa.open(bundle) as b:
            big = next(m for m in b.members() if m.path == "big.bin")
            h5 = next(m for m in b.members() if m.path == "events.h5")
        out["events_h5_bytes"], out["events_h5_encoding"] = h5.size, h5.encoding

        server.reset()
        t, r = timed([*capsa_cmd, "ls", url])
        assert r.returncode == 0, r.stderr
        out["ls"] = {"requests": server.requests, "bytes": server.bytes_sent, "seconds": t}

        server.reset()
        argv = [*capsa_cmd, "cat", url, "big.bin", "--offset", str(big.size - MIB)]
        t, r = timed([*argv, "--length", str(MIB)])
        assert r.returncode == 0 and len(r.stdout) == MIB, r.stderr
        out["cat_last_mib"] = {
            "requests": server.requests,
            "bytes": server.bytes_sent,
            "seconds": t,
        }

        # What the whole-process times are made of: the same commands on the local file, and
        # the remote `cat` in this process (opening, the range requests, no interpreter start).
        t, r = timed([*capsa_cmd, "ls", str(bundle)])
        out["ls_local_file_seconds"] = t
        t, r = timed([*capsa_cmd, "cat", str(bundle), "big.bin", "--offset", str(big.size - MIB)])
        out["cat_local_file_seconds"] = t
        t0 = time.perf_counter()
        with capsa.open(url) as b:
            chunk = b.open_member("big.bin")
            chunk.seek(big.size - MIB)
            assert len(chunk.read(MIB)) == MIB
        out["cat_last_mib_in_process_seconds"] = time.perf_counter() - t0

        server.reset()
        t0 = time.perf_counter()
        with capsa.open(url) as b, h5py.File(b.open_member("events.h5"), "r") as f:
            opened = server.requests
            start = rows // 2
            got = f["events"][start : start + 1000]
        t = time.perf_counter() - t0
        assert got.shape == (1000, 8)
        out["h5py_slice_1000_rows"] = {
            "requests": server.requests,
            "requests_opening_bundle": opened,
            "bytes": server.bytes_sent,
            "fraction_of_file": server.bytes_sent / h5.size,
            "seconds": t,
        }

        server.reset()
        t, r = timed([*capsa_cmd, "verify", "-q", url])
        assert r.returncode == 0, r.stderr
        out["verify"] = {"requests": server.requests, "seconds": t, "MB_per_s": total / MB / t}
        if shutil.which("curl"):
            t, r = timed(["sh", "-c", f"curl -s {url} | sha256sum"])
            assert r.returncode == 0
            out["curl_sha256sum"] = {"seconds": t, "MB_per_s": total / MB / t}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=2000, help="bundle size (default 2000)")
    ap.add_argument("--workdir", type=Path, help="where the bundle is made (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--smoke", action="store_true", help="a 20 MB bundle (CI)")
    args = ap.parse_args(argv)
    size = 20 * MB if args.smoke else args.size_mb * MB
    work = Path(tempfile.mkdtemp(prefix="capsa-bench-remote-", dir=args.workdir))
    try:
        result = run(size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
