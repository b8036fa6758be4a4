"""A full or read-only file system is named in the one error line: which file, and the mount
point of its file system (issue 10 item 11). The small file system is a real tmpfs of 64 KiB,
mounted by bubblewrap around a real `capsa` process; nothing partial is left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _bwrap_or_skip() -> str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed (scripts/_install.sh installs it)")
    r = subprocess.run([bwrap, "--dev-bind", "/", "/", "true"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"bubblewrap cannot create namespaces here: {r.stderr.decode().strip()}")
    return bwrap


def _capsa_in(
    mounts: list[str], *args: str | Path, listing: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``capsa ARGS`` with ``mounts`` (bwrap options) laid over the host's own file system, and
    the files left in ``listing`` afterwards, seen inside the sandbox (where the tmpfs is)."""
    script = '"$@"; rc=$?; echo "--- files"; [ -z "$LIST" ] || find "$LIST" -type f; exit $rc'
    capsa = [sys.executable, "-W", "error", "-m", "capsa", *map(str, args)]
    r = subprocess.run(
        [_bwrap_or_skip(), "--dev-bind", "/", "/", *mounts, "--", "sh", "-c", script, "sh", *capsa],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LIST": str(listing or "")},
    )
    left = r.stdout.split("--- files\n", 1)[1].splitlines()
    return r, left


def _tiny(dest: Path) -> list[str]:
    dest.mkdir()
    return ["--size", str(64 << 10), "--tmpfs", str(dest)]


def test_pack_onto_a_full_file_system_names_the_bundle_and_the_mount(
    tmp_path: Path, corpus_copy
) -> None:  # type: ignore[no-untyped-def]
    small = tmp_path / "small"
    r, left = _capsa_in(
        _tiny(small), "pack", "-o", small / "out.capsa", corpus_copy.root, "-q", listing=small
    )
    assert r.returncode == 10, r.stderr
    assert r.stderr == (
        f"capsa: error: {small / 'out.capsa'}: No space left on device "
        f"(the file system mounted at {small} is full)\n"
    )
    assert left == [], "a partial bundle was left behind"


def test_extract_onto_a_full_file_system_names_the_file_and_the_mount(
    tmp_path: Path, bundle_path: Path
) -> None:
    small = tmp_path / "small"
    r, left = _capsa_in(
        _tiny(small), "extract", bundle_path, "-C", small / "out", "-q", listing=small
    )
    assert r.returncode == 10, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"capsa: error: {small / 'out'}/analysis/")
    assert line.endswith(f": No space left on device (the file system mounted at {small} is full)")
    assert left and not [p for p in left if "/.capsa-tmp." in p], left


def test_sign_on_a_read_only_file_system_names_it(tmp_path: Path, bundle_path: Path) -> None:
    from capsa.signing.keys import keygen

    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copyfile(bundle_path, ro / "b.capsa")
    priv, _, _ = keygen(tmp_path / "k")
    r, _ = _capsa_in(["--ro-bind", str(ro), str(ro)], "sign", ro / "b.capsa", "--key", priv)
    assert r.returncode == 10, r.stderr
    assert r.stderr == (
        f"capsa: error: {ro / 'b.capsa'}: Read-only file system "
        f"(the file system mounted at {ro} is read-only)\n"
    )
