"""capsa.verify: structure and fixity levels (spec §10.2); every problem is reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import capsa
from capsa.errors import FormatError

if TYPE_CHECKING:
    from conftest import CliResult

SIGNAL = "analysis/signal.bin"  # zstd-seekable, 4 frames
NOISE = "analysis/noise.bin"  # identity


def blob_data_offset(bundle_path: Path, member: str) -> tuple[str, int, int]:
    """(digest, offset of the blob's first data byte in the file, stored size) of a member."""
    with capsa.open(bundle_path) as b:
        digest = b.manifest.files[member].digest
        _, entry = b.blob_entry(digest)
        return digest, entry.data_offset, entry.size


@pytest.mark.parametrize("level", ["structure", "fixity"])
def test_good_bundle_passes(bundle: capsa.Bundle, level: str) -> None:
    report = bundle.verify(level=level)  # type: ignore[arg-type]
    assert report.ok and report.problems == []
    assert report.level == level
    assert report.bundle_id == bundle.id
    assert report.blobs_checked == len(bundle.manifest.blobs)
    expected_bytes = sum(b.size for b in bundle.manifest.blobs.values()) if level == "fixity" else 0
    assert report.bytes_checked == expected_bytes


@pytest.mark.parametrize("level", ["structure", "fixity"])
def test_good_bundle_cli_exit_0(
    bundle_path: Path, cli: Callable[..., CliResult], level: str
) -> None:
    r = cli("verify", bundle_path, "--level", level)
    assert r.rc == 0
    assert r.err == ""
    assert f"OK at level {level}" in r.out.decode()


def test_unknown_level(bundle: capsa.Bundle) -> None:
    with pytest.raises(capsa.UsageError, match="unknown verification level"):
        bundle.verify(level="paranoid")  # type: ignore[arg-type]


@pytest.mark.parametrize("member", [SIGNAL, NOISE])
def test_one_flipped_byte_is_an_integrity_problem(
    bundle_copy: Path, flip: Callable[[Path, int], None], cli: Callable[..., CliResult], member: str
) -> None:
    digest, offset, size = blob_data_offset(bundle_copy, member)
    flip(bundle_copy, offset + min(100, size // 2))  # inside frame 0 / inside the identity data
    with capsa.open(bundle_copy) as b:
        assert b.verify(level="structure").ok  # headers and seek tables are intact
        report = b.verify(level="fixity")
    assert not report.ok
    assert len(report.problems) == 1
    (problem,) = report.problems
    assert problem.kind == "integrity"
    assert digest in problem.where
    assert report.blobs_checked == len(b.manifest.blobs) - 1
    assert cli("verify", bundle_copy, "--level", "structure").rc == 0
    r = cli("verify", bundle_copy)
    assert r.rc == 4
    assert [ln for ln in r.err_lines if "problem" in ln] == [
        f"capsa: integrity problem: {problem.where}: {problem.what}"
    ]
    assert "FAILED (1 problems)" in r.out.decode()


def test_corruption_in_two_blobs_reports_both(
    bundle_copy: Path, flip: Callable[[Path, int], None], cli: Callable[..., CliResult]
) -> None:
    d1, off1, _ = blob_data_offset(bundle_copy, SIGNAL)
    d2, off2, size2 = blob_data_offset(bundle_copy, NOISE)
    flip(bundle_copy, off1 + 50)
    flip(bundle_copy, off2 + size2 - 1)  # the identity blob's very last byte
    with capsa.open(bundle_copy) as b:
        report = b.verify(jobs=1)
    assert sorted(p.kind for p in report.problems) == ["integrity", "integrity"]
    assert any(d1 in p.where for p in report.problems)
    assert any(d2 in p.where for p in report.problems)
    r = cli("verify", bundle_copy, "--json")
    assert r.rc == 4
    doc = json.loads(r.out)
    assert doc["ok"] is False
    assert len(doc["problems"]) == 2


def test_seek_table_damage_is_a_structure_problem(
    bundle_copy: Path, flip: Callable[[Path, int], None], cli: Callable[..., CliResult]
) -> None:
    digest, offset, size = blob_data_offset(bundle_copy, SIGNAL)
    flip(bundle_copy, offset + size - 1)  # seekable magic, last byte of the entry
    with capsa.open(bundle_copy) as b:
        report = b.verify(level="structure")
    assert [(p.kind, digest in p.where) for p in report.problems] == [("format", True)]
    r = cli("verify", bundle_copy, "--level", "structure")
    assert r.rc == 3


def test_mixed_problems_exit_with_the_highest_code(
    bundle_copy: Path, flip: Callable[[Path, int], None], cli: Callable[..., CliResult]
) -> None:
    _, off1, size1 = blob_data_offset(bundle_copy, SIGNAL)
    _, off2, _ = blob_data_offset(bundle_copy, NOISE)
    flip(bundle_copy, off1 + size1 - 1)  # format problem
    flip(bundle_copy, off2 + 10)  # integrity problem
    r = cli("verify", bundle_copy)
    assert r.rc == 4
    assert len([ln for ln in r.err_lines if "problem" in ln]) == 2


def test_truncated_bundle(bundle_copy: Path, cli: Callable[..., CliResult]) -> None:
    data = bundle_copy.read_bytes()
    bundle_copy.write_bytes(data[: len(data) - 10])
    with pytest.raises(FormatError):
        capsa.open(bundle_copy)
    r = cli("verify", bundle_copy)
    assert r.rc == 3
    assert len(r.err_lines) == 1
    assert r.err_lines[0].startswith(f"capsa: error: {bundle_copy}: ")
    assert "Traceback" not in r.err
    assert r.out == b""
