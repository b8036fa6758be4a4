"""Remote clients load only when a URL of theirs is opened: `capsa --help` and reading a local
bundle import none of fsspec, aiohttp, s3fs, botocore, fsspec-xrootd, XRootD."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CLIENTS = ("fsspec", "aiohttp", "s3fs", "botocore", "aiobotocore", "fsspec_xrootd", "XRootD")


def test_local_reading_and_help_import_no_remote_client(bundle_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, contextlib, io
        import capsa.cli
        for argv in (["--help"], ["ls", {str(bundle_path)!r}], ["verify", {str(bundle_path)!r}]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    capsa.cli.main(argv)
                except SystemExit as e:
                    assert e.code == 0, e.code
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({CLIENTS!r}))
        print(loaded)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_url_loads_only_its_own_client(bundle_path: Path, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        import capsa
        try:
            capsa.open("http://127.0.0.1:9/none.capsa")  # nothing listens on port 9
        except capsa.Error:
            pass
        print(sorted({{m.split(".")[0] for m in sys.modules}} & set({CLIENTS!r})))
    """)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['aiohttp', 'fsspec']"
