"""Time and peak memory of reading a bundle with a very large manifest (spec/format.md §3.5).

    python benchmarks/large_manifest.py [--files 450000] [--blobs 1000] [--dir DIR]

Writes (once, reused) a bundle of FILES logical files sharing BLOBS small blobs — a production
of 10^5–10^6 files makes a manifest of tens of MiB — signs it, and runs `capsa ls`,
`capsa ls --json`, `capsa verify --key` and `capsa sign` on it as real processes under GNU time,
printing wall time and peak RSS for each. Only the public format pieces are used (the ZIP writer,
canonical JSON, DSSE), so the bundle is made in seconds rather than by packing 450k files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from capsa.format.canonical import canonical_json
from capsa.format.manifest import FORMAT_VERSION
from capsa.format.zip64 import ZipWriter
from capsa.signing.envelopes import envelope_for, signature_entry
from capsa.signing.keys import keygen, load_private_key


def make_bundle(out: Path, files: int, blobs: int, key_path: Path) -> int:
    contents = [f"content {i}\n".encode() * 8 for i in range(blobs)]
    digests = ["sha256:" + hashlib.sha256(c).hexdigest() for c in contents]
    manifest = {
        "capsa": FORMAT_VERSION,
        "bundle": {"title": "large manifest", "description": "", "authors": [], "identifiers": []},
        "blobs": {
            d: {
                "size": len(c),
                "stored_size": len(c),
                "encoding": "identity",
                "media_type": "application/x-hdf5",
            }
            for d, c in sorted(zip(digests, contents, strict=True))
        },
        "files": {
            f"run{i // 5000:03d}/det{i % 97:02d}/ev{i:07d}.h5": {
                "digest": digests[i % blobs],
                "role": "output",
                "mode": "0644",
            }
            for i in range(files)
        },
        "steps": [],
    }
    man = canonical_json(manifest)
    del manifest
    key = load_private_key(key_path)
    buf = io.BytesIO()
    z = ZipWriter(buf)
    z.add_bytes("mimetype", b"application/vnd.capsa.bundle+zip")
    for d, c in sorted(zip(digests, contents, strict=True)):
        name = "blobs/sha256/" + d[7:]
        z.begin_streamed(len(name))
        buf.write(c)
        z.end_streamed(name, len(c), zlib.crc32(c))
    z.add_bytes("manifest.json", man)
    z.add_bytes(signature_entry(key.keyid), envelope_for(man, key))
    z.close()
    out.write_bytes(buf.getvalue())
    return len(man)


def measure(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of ``python -m capsa ARGS`` under GNU time."""
    r = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "capsa", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    m = re.search(r"TIME ([0-9.]+) ([0-9]+)", r.stderr)
    assert m, r.stderr
    return float(m.group(1)), int(m.group(2)) / 1024, r.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=450_000)
    ap.add_argument("--blobs", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "capsa-large")
    a = ap.parse_args(argv)
    if not Path("/usr/bin/time").exists():
        print("needs GNU time (/usr/bin/time; Debian: time)", file=sys.stderr)
        return 2
    a.dir.mkdir(parents=True, exist_ok=True)
    bundle = a.dir / f"large-{a.files}-{a.blobs}.capsa"
    if not (a.dir / "k.key").exists():
        keygen(a.dir / "k")
    if not bundle.exists():
        size = make_bundle(bundle, a.files, a.blobs, a.dir / "k.key")
        print(f"wrote {bundle}: manifest {size / 2**20:.1f} MiB")
    signed = a.dir / "countersign.capsa"
    shutil.copyfile(bundle, signed)
    if not (a.dir / "k2.key").exists():
        keygen(a.dir / "k2")
    print(f"{'command':34} {'wall s':>7} {'peak RSS MiB':>13}")
    for label, args in [
        ("ls", ["ls", str(bundle)]),
        ("ls --json", ["ls", "--json", str(bundle)]),
        ("verify --key", ["verify", "-q", str(bundle), "--key", str(a.dir / "k.pub")]),
        ("sign (countersign)", ["sign", "-q", str(signed), "--key", str(a.dir / "k2.key")]),
    ]:
        wall, rss, rc = measure(args)
        print(f"{label:34} {wall:7.2f} {rss:13.0f}" + (f"  (exit {rc})" if rc else ""))
    signed.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
