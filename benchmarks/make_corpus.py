#!/usr/bin/env python3
"""Generate a deterministic, physics-like benchmark corpus for capsa.

    python benchmarks/make_corpus.py DIR [--size-gb 2] [--blob-gib 1] [--seed 20261125]

The corpus is

* ``DIR/hdf5/run_NNNN_{gzip,plain}.h5``: HDF5 files (h5py) holding KM3NeT-like hit tables, about
  ``--size-gb`` GB on disk in total. Files alternate between gzip-filtered chunked datasets and
  uncompressed (contiguous) datasets; their nominal (uncompressed) sizes are drawn between
  ~10 MB and ~300 MB. Each file has a compound ``/hits`` table (int32 dom/channel ids, float64
  increasing times, float32 time-over-threshold, uint8 triggered flag), column datasets with
  float32 amplitudes, and a compound ``/events`` summary table.
* ``DIR/raw/noise.bin``: ``--blob-gib`` GiB of incompressible random bytes.

Everything comes from one seeded ``numpy.random.Generator`` per file, so the same parameters
and library versions give the same bytes. A stamp file ``DIR/.corpus-stamp.json`` records the
parameters; if it matches, the corpus is reused and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

STAMP = ".corpus-stamp.json"
CORPUS_VERSION = 1

MB = 1000 * 1000
MIN_FILE = 10 * MB
MAX_FILE = 300 * MB
ROWS_PER_SLAB = 1 << 20  # rows generated and written at a time (bounded memory)

HIT_DTYPE = np.dtype(
    [
        ("dom_id", "<i4"),
        ("channel_id", "<i4"),
        ("time", "<f8"),
        ("tot", "<f4"),
        ("triggered", "u1"),
    ]
)
EVENT_DTYPE = np.dtype(
    [
        ("event_id", "<i8"),
        ("frame_index", "<i4"),
        ("trigger_mask", "<u8"),
        ("first_hit", "<i8"),
        ("n_hits", "<i4"),
        ("t0", "<f8"),
        ("overlays", "<i4"),
    ]
)
# Bytes per hit row over all per-hit datasets: the compound row + amplitude (f4) + pmt_gain (f2).
ROW_BYTES = HIT_DTYPE.itemsize + 4 + 2
HITS_PER_EVENT = 64


def _dom_ids(rng: np.random.Generator, n: int = 115) -> np.ndarray:
    """KM3NeT DOM identifiers look like 806451572: 9-digit integers, fixed per detector."""
    return np.sort(rng.choice(np.arange(806_400_000, 809_600_000), size=n, replace=False)).astype(
        "<i4"
    )


def _hit_slab(
    rng: np.random.Generator, doms: np.ndarray, n: int, t_start: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    hits = np.empty(n, dtype=HIT_DTYPE)
    # Hits arrive in time slices; within a slice DOMs report in bursts, so dom ids repeat.
    burst = rng.integers(1, 12, size=n // 4 + 1)
    dom_seq = np.repeat(rng.integers(0, len(doms), size=len(burst)), burst)[:n]
    if len(dom_seq) < n:  # pragma: no cover - burst lengths average 6, so this never happens
        dom_seq = np.resize(dom_seq, n)
    hits["dom_id"] = doms[dom_seq]
    hits["channel_id"] = rng.integers(0, 31, size=n, dtype=np.int32)
    # Poisson background (~7 kHz per PMT, ~115 DOMs x 31 PMTs): exponential gaps in ns.
    times = t_start + np.cumsum(rng.exponential(40.0, size=n))
    # TDC resolution is 1 ns in the raw data; calibrated times keep a sub-ns offset per channel.
    hits["time"] = np.round(times) + 0.125 * (hits["channel_id"] % 8)
    # Time over threshold: integer ns, mostly ~26 ns single photo-electrons, a tail from muons.
    hits["tot"] = np.clip(np.round(rng.gamma(9.0, 3.0, size=n)), 1, 255).astype("<f4")
    hits["triggered"] = (rng.random(n) < 0.04).astype(np.uint8)
    amplitude = rng.normal(1.0, 0.35, size=n).astype("<f4")  # noisy, poorly compressible
    gain = (1.0 + 0.05 * np.sin(hits["channel_id"] / 5.0)).astype("<f2")
    return hits, amplitude, gain, float(times[-1])


def write_h5(path: Path, nominal: int, gzip: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows = max(nominal // ROW_BYTES, 1)
    doms = _dom_ids(rng)
    kw: dict[str, object] = {}
    if gzip:
        kw = {"compression": "gzip", "compression_opts": 4, "shuffle": False}
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", libver="latest", track_order=False) as f:
        f.attrs["detector"] = "ORCA-like, 115 DOMs"
        f.attrs["run_id"] = seed % 100_000
        f.attrs["generator"] = "capsa benchmarks/make_corpus.py"
        chunk_rows = min(n_rows, 65536)
        hits = f.create_dataset(
            "hits",
            shape=(n_rows,),
            dtype=HIT_DTYPE,
            chunks=(chunk_rows,) if gzip else None,
            **kw,
        )
        amp = f.create_dataset(
            "hit_columns/amplitude",
            shape=(n_rows,),
            dtype="<f4",
            chunks=(min(n_rows, 262144),) if gzip else None,
            **kw,
        )
        gain = f.create_dataset(
            "hit_columns/pmt_gain",
            shape=(n_rows,),
            dtype="<f2",
            chunks=(min(n_rows, 262144),) if gzip else None,
            **kw,
        )
        hits.attrs["units"] = json.dumps({"time": "ns", "tot": "ns"})
        t = 0.0
        for start in range(0, n_rows, ROWS_PER_SLAB):
            n = min(ROWS_PER_SLAB, n_rows - start)
            h, a, g, t = _hit_slab(rng, doms, n, t)
            hits[start : start + n] = h
            amp[start : start + n] = a
            gain[start : start + n] = g
        n_ev = max(n_rows // HITS_PER_EVENT, 1)
        ev = np.empty(n_ev, dtype=EVENT_DTYPE)
        ev["event_id"] = np.arange(n_ev, dtype=np.int64)
        ev["frame_index"] = np.arange(n_ev, dtype=np.int32) // 10
        ev["trigger_mask"] = rng.choice(np.array([1, 2, 4, 16, 18], dtype=np.uint64), size=n_ev)
        ev["first_hit"] = np.arange(n_ev, dtype=np.int64) * HITS_PER_EVENT
        ev["n_hits"] = HITS_PER_EVENT
        ev["t0"] = np.sort(rng.uniform(0, max(t, 1.0), size=n_ev))
        ev["overlays"] = rng.poisson(3, size=n_ev)
        f.create_dataset("events", data=ev, chunks=(min(n_ev, 65536),) if gzip else None, **kw)
        f.create_dataset("detector/dom_ids", data=doms)
    tmp.replace(path)


def write_noise(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        left = size
        while left:
            n = min(left, 64 << 20)
            f.write(rng.bytes(n))
            left -= n
    tmp.replace(path)


def nominal_sizes(seed: int, count_hint: int) -> list[int]:
    """A reproducible stream of nominal file sizes, log-uniform between MIN_FILE and MAX_FILE."""
    rng = np.random.default_rng(seed)
    lo, hi = np.log(MIN_FILE), np.log(MAX_FILE)
    return [int(np.exp(x)) for x in rng.uniform(lo, hi, size=count_hint)]


def params_of(args: argparse.Namespace) -> dict[str, object]:
    return {
        "corpus_version": CORPUS_VERSION,
        "size_gb": args.size_gb,
        "blob_gib": args.blob_gib,
        "seed": args.seed,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "numpy": np.__version__,
    }


def make_corpus(
    root: Path, size_gb: float, blob_gib: float, seed: int, quiet: bool = False
) -> dict:
    args = argparse.Namespace(size_gb=size_gb, blob_gib=blob_gib, seed=seed)
    params = params_of(args)
    stamp = root / STAMP
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text())
        except ValueError:
            old = {}
        if old.get("params") == params:
            if not quiet:
                print(f"corpus {root} exists with the same parameters; reusing it", file=sys.stderr)
            return old
        if not quiet:
            print(f"corpus {root} has other parameters; regenerating", file=sys.stderr)
    if stamp.exists():
        shutil.rmtree(root)
    elif root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists, is not empty and holds no {STAMP}: refusing to overwrite")
    (root / "hdf5").mkdir(parents=True)
    (root / "raw").mkdir()
    target = int(size_gb * 1000**3)
    t0 = time.perf_counter()
    on_disk = 0
    files = []
    sizes = nominal_sizes(seed, 10_000)
    i = 0
    while on_disk < target:
        gzip = i % 2 == 0
        nominal = sizes[i]
        if not gzip:  # do not overshoot much with an uncompressed file
            nominal = max(min(nominal, target - on_disk), MIN_FILE)
        name = f"run_{i:04d}_{'gzip' if gzip else 'plain'}.h5"
        path = root / "hdf5" / name
        write_h5(path, nominal, gzip, seed * 1000 + i)
        size = path.stat().st_size
        on_disk += size
        files.append({"path": f"hdf5/{name}", "size": size, "nominal": nominal, "gzip": gzip})
        if not quiet:
            print(
                f"  {name}: nominal {nominal / MB:7.1f} MB, on disk {size / MB:7.1f} MB "
                f"(total {on_disk / MB:8.1f} MB, {time.perf_counter() - t0:5.1f} s)",
                file=sys.stderr,
            )
        i += 1
    noise = root / "raw" / "noise.bin"
    blob = int(blob_gib * (1 << 30))
    write_noise(noise, blob, seed + 7)
    files.append({"path": "raw/noise.bin", "size": blob, "nominal": blob, "gzip": False})
    info = {
        "params": params,
        "files": files,
        "total_bytes": sum(f["size"] for f in files),
        "hdf5_bytes": on_disk,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    if not quiet:
        print(
            f"corpus written: {len(files)} files, {info['total_bytes'] / MB:.1f} MB "
            f"in {info['seconds']} s",
            file=sys.stderr,
        )
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--size-gb", type=float, default=2.0, help="HDF5 bytes on disk, GB (default 2)")
    ap.add_argument(
        "--blob-gib",
        type=float,
        default=1.0,
        help="size of the incompressible blob, GiB (default 1)",
    )
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    make_corpus(args.dir, args.size_gb, args.blob_gib, args.seed, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
