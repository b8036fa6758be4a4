"""Real test images for container tests: built once per machine by fixtures/images/build.py."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from capsa.errors import RuntimeError_

ROOT = Path(__file__).resolve().parents[1]
NEEDS = {
    "busybox": ["bwrap", "unsquashfs", "mksquashfs", "dpkg", "apt-get"],
    "analysis": ["bwrap", "unsquashfs", "tar2sqfs", "mmdebstrap"],
}


def _builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "capsa_build_images", ROOT / "fixtures/images/build.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def image(name: str) -> Path:
    """Path of test image ``name``, building it if needed; skips when the tools are missing."""
    missing = [t for t in NEEDS[name] if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"building the {name} test image needs {', '.join(missing)} "
            "(Debian: bubblewrap squashfs-tools mmdebstrap; CI installs them)"
        )
    try:
        return Path(_builder().build(name))
    except (subprocess.CalledProcessError, RuntimeError_) as e:
        pytest.skip(f"could not build the {name} test image (no Debian mirror?): {e}")
