"""Dask workers on one node share the unpacked-image cache: processes that ask for the same
image at once unpack it once, and every one gets the complete root file system."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from images import image

pytestmark = pytest.mark.container  # the busybox test image, unsquashfs

UNPACK = textwrap.dedent("""
    import sys
    from pathlib import Path
    from capsa.containers.runtime.cache import ImageCache
    from capsa.containers.sif.reader import open_sif
    from capsa.format.digest import sha256_file
    sif = Path(sys.argv[1])
    img, close = open_sif(sif)
    try:
        print(ImageCache(Path(sys.argv[2])).rootfs(img, sha256_file(sif), extent=(sif, 0)))
    finally:
        close()
""")


def test_processes_unpacking_one_image_at_once_share_one_complete_entry(tmp_path: Path) -> None:
    busybox = image("busybox")
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UNPACK, str(busybox), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    roots = {out.strip() for out, _ in results}
    assert len(roots) == 1
    root = Path(roots.pop())
    assert (root / "bin" / "busybox").exists() or (root / "bin" / "sh").exists()
    entries = sorted(p.name for p in (cache / "images").iterdir())
    assert len(entries) == 1 and not entries[0].startswith(".")  # no half-unpacked leftovers
