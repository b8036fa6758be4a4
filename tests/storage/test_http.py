"""Bundles over HTTP, against a real range server on 127.0.0.1 (tests/storage/rangeserver.py)
that counts requests and misbehaves on demand: every reading command takes the URL, opening
costs a bounded number of requests, an HDF5 slice reads a fraction of the file, and each kind
of bad server is one clear line with its exit code."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from rangeserver import RangeServer, replace

import capsa
from capsa.errors import ExitCode
from capsa.storage import allow_download
from capsa.storage.remote import BLOCK, RemoteSource
from conftest import CliResult, Corpus

NOTES = "analysis/nested/deeper/notes.txt"


@pytest.fixture
def served(bundle_path: Path, tmp_path: Path) -> Iterator[RangeServer]:
    """A range-capable HTTP server whose root holds ``b.capsa`` (a copy of the test bundle)."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copyfile(bundle_path, root / "b.capsa")
    with RangeServer(root) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("capsa.storage.remote.BACKOFF", 0.01)
    monkeypatch.setattr(RemoteSource.__init__, "__defaults__", (4, 0.01))


def test_reading_commands_take_a_url_and_say_what_they_say_locally(
    served: RangeServer, bundle_path: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    url = served.url("b.capsa")
    for args in (["ls", "--json"], ["show", "--json"]):
        remote, local = cli(args[0], url, *args[1:]), cli(args[0], bundle_path, *args[1:])
        assert remote.rc == local.rc == 0, remote.err
        a, b = json.loads(remote.out), json.loads(local.out)
        assert a.pop("bundle") == url and b.pop("bundle") == str(bundle_path)
        assert a == b
    r = cli("cat", url, NOTES)
    assert r.rc == 0, r.err
    with capsa.open(bundle_path) as b:
        assert r.out == b.open_member(NOTES).read()
    r = cli("verify", url, "--deep")
    assert r.rc == 0, r.err
    r = cli("extract", url, "-C", tmp_path / "out")
    assert r.rc == 0, r.err
    with capsa.open(bundle_path) as b:
        for m in b.members():
            assert (
                hashlib.sha256((tmp_path / "out" / m.path).read_bytes()).hexdigest()
                == (m.digest[7:])
            )
    r = cli("export", url, "--prov", tmp_path / "prov.json")
    assert r.rc == 0, r.err
    assert json.loads((tmp_path / "prov.json").read_text())
    r = cli("diff", f"{url}:analysis/run.h5", tmp_path / "out" / "analysis/run.h5")
    assert r.rc == 0, r.err


def test_opening_and_listing_cost_a_bounded_number_of_requests(
    served: RangeServer, cli: Callable[..., CliResult]
) -> None:
    assert cli("ls", served.url("b.capsa")).rc == 0
    assert served.requests <= 3, served.ranges
    served.reset()
    with capsa.open(served.url("b.capsa")) as b:
        before = served.requests
        b.manifest.blobs  # noqa: B018
        assert served.requests == before <= 3


def test_h5py_reads_a_slice_through_a_remote_bundle_without_the_whole_file(
    served: RangeServer, corpus: Corpus
) -> None:
    with capsa.open(served.url("b.capsa")) as b:
        member = b.open_member("analysis/run.h5")
        size = member.size
        opened = served.bytes_sent
        with h5py.File(member, "r") as f:
            got = f["raw/counts"][1000:2000]
        np.testing.assert_array_equal(got, corpus.arrays["raw/counts"][1000:2000])
    # A few blocks of the file, not all of it (the file is 4 zstd-or-identity MiB-sized reads).
    assert served.bytes_sent - opened < size
    assert served.requests <= 8, served.ranges


def test_transient_failures_are_retried(served: RangeServer) -> None:
    served.faults.fail = 2
    with capsa.open(served.url("b.capsa")) as b:
        served.faults.truncate = 1
        assert b.open_member(NOTES).read()
    assert served.requests >= 4


def test_a_server_that_keeps_failing_is_one_line(
    served: RangeServer, cli: Callable[..., CliResult]
) -> None:
    served.faults.fail = 100
    r = cli("ls", served.url("b.capsa"))
    assert r.rc == ExitCode.IO
    assert r.err_lines == [
        f"capsa: error: {served.url('b.capsa')}: opening failed after 5 tries: HTTP 503 "
        "(the server or the network is failing; try again later)"
    ]


def test_404_is_not_found(served: RangeServer, cli: Callable[..., CliResult]) -> None:
    r = cli("ls", served.url("nope.capsa"))
    assert r.rc == ExitCode.NOT_FOUND
    assert r.err_lines == [
        f"capsa: error: {served.url('nope.capsa')}: no such remote file (HTTP 404)"
    ]


def test_no_range_support_is_refused_or_downloaded(
    served: RangeServer, cli: Callable[..., CliResult]
) -> None:
    served.faults.no_ranges = True
    url = served.url("b.capsa")
    r = cli("ls", url)
    assert r.rc == ExitCode.IO
    assert r.err_lines == [
        f"capsa: error: {url}: the server does not support range requests "
        "(pass --download to copy the whole file to a temporary file first)"
    ]
    r = cli("ls", "--download", url)
    assert r.rc == 0, r.err
    assert NOTES.encode() in r.out
    try:
        allow_download()
        with capsa.open(url) as b:
            copy = b.source.local_extent()
            assert copy is not None and copy[0].is_file()
        assert not copy[0].exists()  # the temporary copy goes with the bundle
    finally:
        allow_download(False)


def test_a_bundle_that_changes_on_the_server_is_an_integrity_error(
    served: RangeServer, bundle_path: Path, corpus: Corpus, tmp_path: Path
) -> None:
    other = tmp_path / "other.capsa"
    capsa.pack(other, [corpus.root / "nested"])
    with capsa.open(served.url("b.capsa")) as b:
        replace(served.root / "b.capsa", bundle_path.read_bytes())  # same bytes, new ETag
        with pytest.raises(capsa.IntegrityError, match="changed on the server"):
            b.open_member("analysis/signal.bin").read()


def test_wrong_ranges_and_lying_lengths_are_caught(served: RangeServer) -> None:
    url = served.url("b.capsa")
    with capsa.open(url) as b:
        served.faults.wrong_range = True
        with pytest.raises(capsa.Error, match=r"returned bytes .* for a request of"):
            b.open_member("analysis/noise.bin").read()
    served.reset()
    with capsa.open(url) as b:
        served.faults.short_length = True
        with pytest.raises(capsa.Error, match=r"failed after 5 tries: .*bytes"):
            b.open_member("analysis/noise.bin").read()


def test_redirects_are_followed_within_one_host_only(
    served: RangeServer, cli: Callable[..., CliResult]
) -> None:
    served.faults.moved["/old/b.capsa"] = "/b.capsa"
    assert cli("ls", served.url("old/b.capsa")).rc == 0
    elsewhere = served.url("b.capsa", host="localhost")
    served.faults.moved["/away/b.capsa"] = elsewhere
    r = cli("ls", served.url("away/b.capsa"))
    assert r.rc == ExitCode.IO
    assert r.err_lines == [
        f"capsa: error: {served.url('away/b.capsa')}: the server redirects to another host "
        f"(it points to {elsewhere}; capsa follows redirects only within one host: use that "
        "URL if you trust it)"
    ]


def test_block_reads_are_cached(served: RangeServer) -> None:
    with capsa.open(served.url("b.capsa")) as b:
        src = b.source
        assert isinstance(src, RemoteSource)
        before = served.requests
        src.read_at(10, 100)
        src.read_at(200, 100)
        src.read_at(BLOCK - 10, 20)  # the next block: one more request
        assert served.requests - before <= 2


def test_sif_inspect_reads_an_image_inside_a_remote_bundle(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    sif = Path(__file__).resolve().parents[2] / "fixtures" / "sif" / "one-group.sif"
    (tmp_path / "www").mkdir()
    capsa.pack(tmp_path / "www" / "i.capsa", files={"images/one.sif": sif})
    local = cli("sif", "inspect", sif, "--json")
    with RangeServer(tmp_path / "www") as server:
        r = cli("sif", "inspect", server.url("i.capsa"), "--member", "images/one.sif", "--json")
    assert r.rc == local.rc == 0, r.err
    assert json.loads(r.out)["objects"] == json.loads(local.out)["objects"]


@pytest.mark.parametrize("status", [401, 403])
def test_access_denied_is_one_line_naming_where_credentials_come_from(
    served: RangeServer, cli: Callable[..., CliResult], status: int
) -> None:
    served.faults.status = status
    r = cli("cat", served.url("b.capsa"), NOTES)
    assert r.rc == ExitCode.IO and r.out == b""
    assert r.err_lines == [
        f"capsa: error: {served.url('b.capsa')}: access denied (HTTP {status}) (credentials for "
        "HTTP come from ~/.netrc (or a proxy from the environment))"
    ]


def test_a_damaged_local_header_is_caught_on_first_use_of_its_entry(
    served: RangeServer, cli: Callable[..., CliResult]
) -> None:
    """Remote opening leaves local headers for first use (reader.py): still never unchecked."""
    from capsa.format.source import LocalFile
    from capsa.format.zip64 import read_directory

    path = served.root / "b.capsa"
    with capsa.open(path) as b:
        digest = b.manifest.files[NOTES].digest
    src = LocalFile(path)
    entry = next(e for e in read_directory(src) if digest[7:] in e.name)
    src.close()
    data = bytearray(path.read_bytes())
    data[entry.header_offset + 14] ^= 0xFF  # the local header's CRC-32
    path.write_bytes(bytes(data))
    url = served.url("b.capsa")
    assert cli("ls", url).rc == 0
    for args in (("cat", url, NOTES), ("verify", url)):
        r = cli(*args)
        assert r.rc == ExitCode.FORMAT, r.err
        assert r.err_lines == [
            f"capsa: error: {url}: entry {entry.name!r}: local header disagrees with the "
            "central directory"
        ]


def test_history_of_a_remote_bundle(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    from capsa.format.digest import sha256_file
    from capsa.format.manifest import RuntimeInfo, Step, StepFile

    sif = Path(__file__).resolve().parents[2] / "fixtures" / "sif" / "one-group.sif"
    (tmp_path / "in.txt").write_text("raw\n")
    (tmp_path / "out.txt").write_text("RAW\n")
    step = Step(
        name="upper",
        image=sha256_file(sif),
        argv=("sh", "-c", "tr a-z A-Z < in.txt > out.txt"),
        inputs=(StepFile(path="in.txt", digest=sha256_file(tmp_path / "in.txt")),),
        outputs=(StepFile(path="out.txt", digest=sha256_file(tmp_path / "out.txt")),),
        runtime=RuntimeInfo(name="bwrap"),
    )
    (tmp_path / "www").mkdir()
    bundle = tmp_path / "www" / "h.capsa"
    files = {"images/one.sif": sif, "in.txt": tmp_path / "in.txt", "out.txt": tmp_path / "out.txt"}
    capsa.pack(bundle, files=files, roles=[("images/*", "image")], steps=[step])
    local = cli("history", bundle, "out.txt", "--json")
    with RangeServer(tmp_path / "www") as server:
        remote = cli("history", server.url("h.capsa"), "out.txt", "--json")
    assert remote.rc == local.rc == 0, remote.err
    a, b = json.loads(remote.out), json.loads(local.out)
    a.pop("source", None), b.pop("source", None)
    assert a == b


def test_listing_costs_the_same_requests_whatever_the_number_of_blobs(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    rng = np.random.default_rng(3)
    src = tmp_path / "many"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03d}.bin").write_bytes(rng.bytes(64 << 10))
    (tmp_path / "www").mkdir()
    capsa.pack(tmp_path / "www" / "m.capsa", [src])
    with RangeServer(tmp_path / "www") as server:
        r = cli("ls", server.url("m.capsa"))
        assert r.rc == 0 and r.out.count(b"many/f") == 200
        assert server.requests <= 3, server.ranges


def test_signing_a_url_is_refused_in_one_line(
    served: RangeServer, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    capsa.keygen(tmp_path / "k")
    r = cli("sign", served.url("b.capsa"), "--key", tmp_path / "k.key")
    assert r.rc == ExitCode.USAGE
    assert len(r.err_lines) == 1 and "cannot sign a bundle at a URL" in r.err
    assert served.requests == 0
