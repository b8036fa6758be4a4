"""`capsa replay URL` on a machine that has only the bundle's URL: the bundle is read over
HTTP, its image read through the remote source, and the step's input, sealed by reference, is
fetched from its own URL into the verified store. Real bwrap, real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rangeserver import RangeServer

import capsa
from capsa.format.digest import sha256_file
from capsa.format.manifest import RuntimeInfo, Step, StepFile
from conftest import CliResult


@pytest.mark.container
def test_replay_of_a_url_fetches_the_external_input(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from images import image

    busybox = image("busybox")
    www = tmp_path / "www"
    (www / "raw").mkdir(parents=True)
    (www / "raw" / "data.txt").write_text("four hits in run 42\n")
    (tmp_path / "out.txt").write_text("FOUR HITS IN RUN 42\n")
    # In the bundle, used by no step: replaying a URL must not fetch it.
    (tmp_path / "unused.bin").write_bytes(os.urandom(8 << 20))
    step = Step(
        name="upper",
        image=sha256_file(busybox),
        argv=("sh", "-c", "tr a-z A-Z < data.txt > out.txt"),
        env={"PATH": "/bin"},
        inputs=(StepFile(path="data.txt", digest=sha256_file(www / "raw" / "data.txt")),),
        outputs=(StepFile(path="out.txt", digest=sha256_file(tmp_path / "out.txt")),),
        runtime=RuntimeInfo(name="bwrap"),
    )
    with RangeServer(www) as server:
        capsa.pack(
            www / "ana.capsa",
            files={
                "images/b.sif": busybox,
                "data.txt": www / "raw" / "data.txt",
                "out.txt": tmp_path / "out.txt",
                "unused.bin": tmp_path / "unused.bin",
            },
            roles=[("images/*", "image"), ("data.txt", "input")],
            steps=[step],
            external=[("data.txt", server.url("raw/"))],
        )
        monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
        r = cli(
            "replay", server.url("ana.capsa"), "--allow-unsigned", "--runtime", "bwrap", "--json"
        )
        assert r.rc == 0, r.err
        doc = json.loads(r.out)
        assert [o["verdict"] for s in doc["steps"] for o in s["outputs"]] == ["identical"]
        assert "/raw/data.txt" in server.paths  # the input, fetched from where it lives
        bundle_size = (www / "ana.capsa").stat().st_size
        # Everything but the unused blob may have been read (the image twice: checked, copied).
        assert server.bytes_sent < 2 * (bundle_size - (8 << 20)) + (2 << 20)
        with capsa.open(www / "ana.capsa") as b:
            _, e = b.blob_entry(b.manifest.files["unused.bin"].digest)
        for rng in server.ranges:
            if rng.startswith("bytes=") and not rng.startswith("bytes=-"):
                a, z = (int(x) for x in rng[6:].split("-"))
                assert z < e.data_offset + (1 << 20) or a >= e.data_offset + e.size - (1 << 20)
    assert (tmp_path / "cache/blobs/sha256" / step.inputs[0].digest[7:]).is_file()
