"""Step 1 — select events and write a per-event summary table.

Reads a KM3NeT offline HDF5 file (km3pipe/PyTables layout: /hits, /mc_tracks, /reco/tracks,
/event_info) and writes events.h5 with one row per event. Written with h5py's defaults, which
store no object modification times, so this output is byte-for-byte reproducible.
Usage: python3 select_events.py INPUT.h5 events.h5
"""

import sys

import h5py
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as f:
    info = f["event_info"][:]
    idx = f["hits/_indices"][:]
    triggered = f["hits/triggered"][:]
    tot = f["hits/tot"][:]
    mc = f["mc_tracks"][:]
    reco = f["reco/tracks"][:]

n = len(info)
n_hits = idx["n_items"].astype(np.int64)
starts = idx["index"].astype(np.int64)
spans = list(zip(starts, n_hits, strict=True))
n_trig = np.array([int(triggered[s : s + k].astype(bool).sum()) for s, k in spans])
sum_tot = np.array([int(tot[s : s + k].sum()) for s, k in spans], dtype=np.int64)

# The first reconstructed track of each event (group_id = event index) is its best fit.
best = {}
for row in reco:
    best.setdefault(int(row["group_id"]), row)
mc_energy = np.zeros(n)
np.add.at(mc_energy, mc["group_id"].astype(np.int64), mc["energy"])

rows = np.zeros(
    n,
    dtype=[
        ("event_id", "<i8"),
        ("n_hits", "<i8"),
        ("n_triggered", "<i8"),
        ("sum_tot", "<i8"),
        ("mc_energy", "<f8"),
        ("reco_energy", "<f8"),
        ("reco_zenith", "<f8"),
        ("selected", "?"),
    ],
)
rows["event_id"] = info["event_id"]
rows["n_hits"], rows["n_triggered"], rows["sum_tot"] = n_hits, n_trig, sum_tot
rows["mc_energy"] = mc_energy
for i in range(n):
    t = best.get(i)
    if t is not None:
        rows["reco_energy"][i] = t["E"]
        rows["reco_zenith"][i] = np.arccos(np.clip(-t["dir_z"], -1.0, 1.0))
rows["selected"] = (rows["n_triggered"] >= 20) & (rows["reco_energy"] > 0)

with h5py.File(dst, "w") as out:
    out.create_dataset("events", data=rows)
    out.attrs["source"] = src
    out.attrs["selection"] = "n_triggered >= 20 and a reconstructed track"
print(f"{n} events, {int(rows['selected'].sum())} selected")
