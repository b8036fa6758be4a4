"""Bundles on S3, against moto in server mode on 127.0.0.1 through s3fs: reading commands,
request bounds, ETag checks on a replaced object, a missing object, missing credentials."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import capsa
from capsa.errors import ExitCode
from conftest import CliResult

NOTES = "analysis/nested/deeper/notes.txt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, bundle_path: Path) -> Any:
    """A bucket ``data`` holding ``ana/b.capsa``; credentials and endpoint in the environment,
    where botocore looks for them."""
    import boto3

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="data")
    client.put_object(Bucket="data", Key="ana/b.capsa", Body=bundle_path.read_bytes())
    yield client
    for obj in client.list_objects_v2(Bucket="data").get("Contents", []):
        client.delete_object(Bucket="data", Key=obj["Key"])
    client.delete_bucket(Bucket="data")


def test_reading_commands_take_an_s3_url(
    s3: Any, bundle_path: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    url = "s3://data/ana/b.capsa"
    remote, local = cli("ls", "--json", url), cli("ls", "--json", bundle_path)
    assert remote.rc == 0, remote.err
    a, b = json.loads(remote.out), json.loads(local.out)
    assert a.pop("bundle") == url and b.pop("bundle") == str(bundle_path)
    assert a == b
    r = cli("verify", url, "--deep")
    assert r.rc == 0, r.err
    r = cli("cat", url, NOTES)
    with capsa.open(bundle_path) as bundle:
        assert r.rc == 0 and r.out == bundle.open_member(NOTES).read()
    assert cli("extract", url, "-C", tmp_path / "out").rc == 0
    assert (tmp_path / "out" / NOTES).read_bytes() == r.out


def test_a_replaced_object_is_an_integrity_error(s3: Any, bundle_path: Path) -> None:
    with capsa.open("s3://data/ana/b.capsa") as b:
        s3.put_object(Bucket="data", Key="ana/b.capsa", Body=bundle_path.read_bytes() + b"x")
        with pytest.raises(capsa.IntegrityError, match="changed on the store"):
            b.open_member("analysis/signal.bin").read()


def test_missing_object_and_missing_credentials(
    s3: Any, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli("ls", "s3://data/nope.capsa")
    assert r.rc == ExitCode.NOT_FOUND
    assert r.err_lines == ["capsa: error: s3://data/nope.capsa: no such S3 object"]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    r = cli("ls", "s3://data/ana/b.capsa")
    assert r.rc == ExitCode.IO
    assert len(r.err_lines) == 1 and "no S3 credentials" in r.err, r.err
