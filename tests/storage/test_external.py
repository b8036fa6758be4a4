"""Data sealed by reference (format 1.3): `capsa pack --external` records files by digest,
size and URL; extract, fetch and h5py read them through a verified local store; `verify
--external` checks every reference; a missing or altered reference is a clear per-file
failure that leaves nothing half-written. Real HTTP server on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from rangeserver import RangeServer

import capsa
from capsa.errors import ExitCode
from conftest import CliResult, Corpus


@pytest.fixture
def world(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> Iterator[tuple[RangeServer, Path]]:
    """A server holding copies of analysis/run.h5 and analysis/noise.bin under /run42/, and
    a bundle of the corpus that has them by reference (the .bin one with a dead mirror first)."""
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    www = tmp_path / "www"
    (www / "run42").mkdir(parents=True)
    for name in ("run.h5", "noise.bin"):
        shutil.copyfile(corpus.root / name, www / "run42" / name)
    with RangeServer(www) as server:
        bundle = tmp_path / "ext.capsa"
        r = cli(
            "pack",
            "-o",
            bundle,
            corpus.root,
            "--external",
            f"analysis/*.bin={server.url('gone/')}",
            "--external",
            f"analysis/*.bin={server.url('run42/')}",
            "--external",
            f"analysis/run.h5={server.url('run42/')}",
        )
        assert r.rc == 0, r.err
        server.reset()
        yield server, bundle


def test_external_files_are_recorded_not_stored(
    world: tuple[RangeServer, Path], corpus: Corpus
) -> None:
    server, bundle = world
    with capsa.open(bundle) as b:
        m = b.manifest
        noise = m.blobs[m.files["analysis/noise.bin"].digest]
        assert noise.encoding == "external" and noise.stored_size == 0
        assert noise.urls == (server.url("gone/noise.bin"), server.url("run42/noise.bin"))
        assert m.blobs[m.files["analysis/run.h5"].digest].urls == (server.url("run42/run.h5"),)
        # signal.bin matches the glob too, but is on no server: recorded all the same.
        assert m.blobs[m.files["analysis/signal.bin"].digest].encoding == "external"
        assert m.blobs[m.files["analysis/empty.dat"].digest].encoding == "identity"
    assert bundle.stat().st_size < corpus.files["analysis/noise.bin"].stat().st_size
    assert server.requests == 0  # packing never asks the server


def test_extract_and_fetch_go_through_the_verified_store(
    world: tuple[RangeServer, Path], corpus: Corpus, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    server, bundle = world
    r = cli("fetch", bundle, "analysis/noise.bin", "analysis/run.h5", "-C", tmp_path / "f")
    assert r.rc == 0, r.err
    for name in ("noise.bin", "run.h5"):
        assert (tmp_path / "f/analysis" / name).read_bytes() == corpus.data(f"analysis/{name}")
    assert sorted(p.name for p in (tmp_path / "f/analysis").iterdir()) == ["noise.bin", "run.h5"]
    with capsa.open(bundle) as b:
        digest = b.manifest.files["analysis/noise.bin"].digest
    assert (tmp_path / "cache/blobs/sha256" / digest[7:]).read_bytes() == corpus.data(
        "analysis/noise.bin"
    )
    before = server.requests
    with capsa.open(bundle) as b, h5py.File(b.open_member("analysis/run.h5")) as f:
        got = f["raw/counts"][1000:2000]
    np.testing.assert_array_equal(got, corpus.arrays["raw/counts"][1000:2000])
    assert server.requests == before  # from the store
    r = cli("extract", bundle, "analysis/nested", "analysis/run.h5", "-C", tmp_path / "x")
    assert r.rc == 0, r.err
    assert (tmp_path / "x/analysis/run.h5").read_bytes() == corpus.data("analysis/run.h5")


def test_verify_external_checks_every_reference(
    world: tuple[RangeServer, Path], cli: Callable[..., CliResult]
) -> None:
    server, bundle = world
    r = cli("verify", bundle)
    assert r.rc == 0 and b"3 external blobs were not checked" in r.out
    r = cli("verify", "--external", bundle)
    assert r.rc == ExitCode.NOT_FOUND
    assert sorted(r.err_lines) == [
        f"capsa: external problem: {bundle}: analysis/noise.bin ({server.url('gone/noise.bin')}):"
        " no such remote file (HTTP 404)",
        f"capsa: external problem: {bundle}: analysis/signal.bin ({server.url('gone/signal.bin')}"
        "): no such remote file (HTTP 404)",
        f"capsa: external problem: {bundle}: analysis/signal.bin ({server.url('run42/signal.bin')}"
        "): no such remote file (HTTP 404)",
    ]
    (server.root / "run42/signal.bin").write_bytes(b"not the signal")
    r = cli("verify", "--external", bundle)
    assert r.rc == ExitCode.NOT_FOUND  # the highest code of all problems: the dead mirror's
    assert any("analysis/signal.bin" in x and "the manifest says" in x for x in r.err_lines)


def test_an_altered_reference_fails_that_file_and_writes_nothing(
    world: tuple[RangeServer, Path], corpus: Corpus, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    server, bundle = world
    good = corpus.data("analysis/run.h5")
    (server.root / "run42/run.h5").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size
    r = cli("verify", "--external", "--deep", bundle)
    assert r.rc == ExitCode.NOT_FOUND  # the dead mirror; the altered file is an integrity problem
    assert any("analysis/run.h5" in x and "digest mismatch" in x for x in r.err_lines), r.err
    r = cli("extract", bundle, "analysis/run.h5", "-C", tmp_path / "x")
    assert r.rc == ExitCode.INTEGRITY
    assert r.err_lines == [
        f"capsa: error: {bundle}: analysis/run.h5: external file could not be fetched: "
        f"{server.url('run42/run.h5')}: digest mismatch: the file at this URL is not the one "
        "sealed (`capsa verify --external` checks every reference)"
    ]
    assert not [p for p in tmp_path.joinpath("x").rglob("*") if p.is_file()]
    assert not [p for p in tmp_path.joinpath("cache").rglob("*") if p.is_file()]


def test_bad_external_rules_are_usage_errors(
    corpus: Corpus, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    for rule in (
        "analysis/*.bin",
        "analysis/*.bin=file:///data/",
        "=https://x.org/",
        "analysis/*.bin=https://user:secret@x.org/",  # credentials never go into a bundle
    ):
        r = cli("pack", "-o", tmp_path / "b.capsa", corpus.root, "--external", rule)
        assert r.rc == ExitCode.USAGE, r.err
        assert len(r.err_lines) == 1 and "GLOB=URL_PREFIX" in r.err
    assert not (tmp_path / "b.capsa").exists()
