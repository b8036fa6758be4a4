"""Write a small, realistic set of analysis files for the capsa demo (deterministic).

Usage: python examples/make_demo_data.py DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    n = 400_000
    hits = np.zeros(
        n,
        dtype=[
            ("dom_id", "<i4"),
            ("channel_id", "u1"),
            ("time", "<f8"),
            ("tot", "u1"),
            ("triggered", "?"),
        ],
    )
    hits["dom_id"] = rng.integers(806_451_572, 806_451_572 + 115, n)
    hits["channel_id"] = rng.integers(0, 31, n)
    hits["time"] = np.sort(rng.uniform(0, 1e8, n))
    hits["tot"] = rng.integers(1, 255, n)
    hits["triggered"] = rng.random(n) < 0.05
    with h5py.File(out / "raw.h5", "w") as f:  # uncompressed, as many DAQ dumps are
        f.create_dataset("hits", data=hits)
        f.attrs["detector"] = "ARCA-demo"
    with h5py.File(out / "reco.h5", "w") as f:  # gzip-filtered, already compressed
        tracks = rng.normal(size=(50_000, 6))
        f.create_dataset("tracks", data=tracks, chunks=(4096, 6), compression="gzip")
        f["tracks"].attrs["columns"] = "x y z dir_x dir_y dir_z"
    (out / "analysis.py").write_text("# the analysis script would live here\nprint('hello')\n")
    (out / "README.txt").write_text("Demo analysis made by examples/make_demo_data.py\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
