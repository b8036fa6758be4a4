"""Step 2 — derived quantities, written the way KM3NeT software writes HDF5.

km3pipe stamps every file with a random uuid4 root attribute `kid`, and PyTables/h5py with
track_times=True store object modification times: the bytes differ on every run while the
physics is identical. The step is recorded with `--compare hdf5 --ignore-attr /@kid`, so replay
reports it `equivalent` and names what it ignored.
Usage: python3 histogram.py events.h5 hist.h5
"""

import sys
import uuid

import h5py
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as f:
    ev = f["events"][:]
sel = ev[ev["selected"]]
log_e = np.log10(np.maximum(sel["reco_energy"], 1e-3))
e_counts, e_edges = np.histogram(log_e, bins=12, range=(0.0, 6.0))
cos_z = np.cos(sel["reco_zenith"])
z_counts, z_edges = np.histogram(cos_z, bins=10, range=(-1.0, 1.0))
ratio = np.where(sel["mc_energy"] > 0, sel["reco_energy"] / np.maximum(sel["mc_energy"], 1e-9), 0)

with h5py.File(dst, "w") as out:
    out.attrs["kid"] = str(uuid.uuid4())  # as km3pipe does: different on every run
    out.attrs["km3pipe"] = "capsa-example"
    g = out.create_group("energy")
    g.create_dataset("counts", data=e_counts, track_times=True)
    g.create_dataset("log10_edges", data=e_edges, track_times=True)
    g = out.create_group("zenith")
    g.create_dataset("counts", data=z_counts, track_times=True)
    g.create_dataset("cos_edges", data=z_edges, track_times=True)
    out.create_dataset(
        "energy_ratio_median", data=np.median(ratio) if len(ratio) else 0.0, track_times=True
    )
print(f"{len(sel)} selected events histogrammed")
