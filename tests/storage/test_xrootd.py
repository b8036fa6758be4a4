"""Bundles on XRootD, against Debian's xrootd server started on a loopback port with a
temporary export directory, read through fsspec-xrootd."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

import capsa
from capsa.errors import ExitCode
from conftest import CliResult, Corpus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def xrootd(bundle_path: Path) -> Iterator[str]:
    """``root://127.0.0.1:PORT/`` exporting a directory that holds ``b.capsa``."""
    pytest.importorskip("XRootD.client", reason="the XRootD Python bindings (PyPI xrootd)")
    pytest.importorskip("fsspec_xrootd", reason="fsspec-xrootd is not installed")
    exe = shutil.which("xrootd")
    if exe is None:
        pytest.skip("no xrootd server (Debian: xrootd-server)")
    # The server will not run as root; as nobody it needs a tree it can read and write.
    base = Path(tempfile.mkdtemp(prefix="capsa-xrootd-"))
    data, run = base / "data", base / "run"
    data.mkdir()
    run.mkdir()
    shutil.copyfile(bundle_path, data / "b.capsa")
    port = _free_port()
    (base / "cfg").write_text(
        f"all.export /\nxrd.port {port}\noss.localroot {data}\n"
        f"all.adminpath {run}\nall.pidpath {run}\n"
    )
    for p in (base, data, run, data / "b.capsa", base / "cfg"):
        p.chmod(0o777 if p.is_dir() else 0o666)
    argv = [exe, "-c", str(base / "cfg"), "-n", "capsatest", "-l", str(run / "log")]
    if os.geteuid() == 0:
        argv[1:1] = ["-R", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.skip(f"the xrootd server did not start: {out[-300:]}")
                time.sleep(0.1)
        yield f"root://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(base, ignore_errors=True)


def test_reading_commands_take_a_root_url(
    xrootd: str, bundle_path: Path, corpus: Corpus, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    url = xrootd + "/b.capsa"
    remote, local = cli("ls", "--json", url), cli("ls", "--json", bundle_path)
    assert remote.rc == 0, remote.err
    a, b = json.loads(remote.out), json.loads(local.out)
    assert a.pop("bundle") == url and b.pop("bundle") == str(bundle_path)
    assert a == b
    r = cli("verify", url, "--deep")
    assert r.rc == 0, r.err
    assert cli("extract", url, "-C", tmp_path / "out").rc == 0
    for logical, path in corpus.files.items():
        assert (tmp_path / "out" / logical).read_bytes() == path.read_bytes()
    with capsa.open(url) as bundle, h5py.File(bundle.open_member("analysis/run.h5")) as f:
        got = f["raw/counts"][1000:2000]
    np.testing.assert_array_equal(got, corpus.arrays["raw/counts"][1000:2000])


def test_a_missing_file_is_not_found(xrootd: str, cli: Callable[..., CliResult]) -> None:
    r = cli("ls", xrootd + "/nope.capsa")
    assert r.rc == ExitCode.NOT_FOUND
    assert r.err_lines == [f"capsa: error: {xrootd}/nope.capsa: no such remote file (XRootD)"]
