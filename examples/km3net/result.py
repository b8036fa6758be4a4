"""Step 3 — the final result file and a plot (PNG).

Fits the muon energy spectrum (slope of log10 counts vs log10 E) and writes result.h5 and a PNG of
the zenith distribution. The PNG is drawn with numpy and written with zlib (no plotting library,
no timestamps), so both outputs are byte-for-byte reproducible.
Usage: python3 result.py hist.h5 result.h5 zenith.png
"""

import struct
import sys
import zlib

import h5py
import numpy as np

src, dst, png = sys.argv[1], sys.argv[2], sys.argv[3]
with h5py.File(src, "r") as f:
    counts = f["energy/counts"][:]
    edges = f["energy/log10_edges"][:]
    z_counts = f["zenith/counts"][:]
centres = 0.5 * (edges[1:] + edges[:-1])
mask = counts > 0
slope, intercept = (
    np.polyfit(centres[mask], np.log10(counts[mask]), 1) if mask.sum() > 1 else (0.0, 0.0)
)

with h5py.File(dst, "w") as out:
    out.create_dataset("spectral_slope", data=slope)
    out.create_dataset("zenith_counts", data=z_counts)
    out.attrs["fit"] = "log10(counts) = slope * log10(E/GeV) + c"


def write_png(path, image):
    h, w = image.shape[:2]
    raw = b"".join(b"\0" + image[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    with open(path, "wb") as f:  # noqa: PTH123 - runs in the image, plain Python
        f.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


H, W, bar = 200, 320, 32
img = np.full((H, W, 3), 255, dtype=np.uint8)
peak = max(int(z_counts.max()), 1)
for i, c in enumerate(z_counts):
    top = H - 10 - int((H - 20) * c / peak)
    img[top : H - 10, i * bar + 2 : (i + 1) * bar - 2] = (40, 90, 200)
img[H - 10 : H - 9, :] = 0
write_png(png, img)
print(f"spectral slope {slope:.3f}")
