"""`capsa history` of a big production: one entry per rule (the grouping `capsa report` folds
its graph by), every step with --steps."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import capsa
from capsa.recording.graph import group_steps
from capsa.views.report import group_steps as report_group_steps
from conftest import CliResult


def _d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _production(tmp_path: Path, n: int) -> Path:
    img = tmp_path / "x.sif"
    img.write_bytes(b"not really a SIF")
    files: dict[str, Path] = {"images/x.sif": img}
    steps = []
    parts = []
    for i in range(n):
        (tmp_path / f"raw-{i}.txt").write_text(f"raw {i}")
        (tmp_path / f"part-{i}.txt").write_text(f"part {i}")
        files[f"raw-{i}.txt"] = tmp_path / f"raw-{i}.txt"
        files[f"part-{i}.txt"] = tmp_path / f"part-{i}.txt"
        raw = {"path": f"raw-{i}.txt", "digest": _d(f"raw {i}".encode())}
        part = {"path": f"part-{i}.txt", "digest": _d(f"part {i}".encode())}
        parts.append(part)
        steps.append(
            capsa.Step.model_validate(
                {
                    "name": f"align[run={i}]",
                    "image": _d(img.read_bytes()),
                    "argv": ("align", raw["path"]),
                    "runtime": {"name": "bwrap"},
                    "inputs": (raw,),
                    "outputs": (part,),
                }
            )
        )
    (tmp_path / "total.txt").write_text("total")
    files["total.txt"] = tmp_path / "total.txt"
    steps.append(
        capsa.Step.model_validate(
            {
                "name": "merge",
                "image": _d(img.read_bytes()),
                "argv": ("merge",),
                "runtime": {"name": "bwrap"},
                "inputs": tuple(parts),
                "outputs": ({"path": "total.txt", "digest": _d(b"total")},),
            }
        )
    )
    return capsa.pack(tmp_path / "p.capsa", files=files, steps=steps, progress=False).path


def test_history_of_a_big_production_is_one_entry_per_rule(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    bundle = _production(tmp_path, 60)
    r = cli("history", bundle, "total.txt")
    assert r.rc == 0, r.err
    out = r.out.decode().splitlines()
    assert len(out) < 25, out
    assert "  1. align: 60 steps (align[run=0] … align[run=59])" in out
    assert "       first: align raw-0.txt" in out
    assert any(line.startswith("  2. merge: merge") for line in out)
    assert "  … and 50 more origin files" in out
    assert out[-1] == "61 steps in 2 rules (--steps lists every step)"
    every = cli("history", bundle, "total.txt", "--steps").out.decode().splitlines()
    assert len(every) == 1 + 60 + 2 * 61
    # A small history is listed step by step, as before.
    (tmp_path / "small").mkdir()
    small = cli("history", _production(tmp_path / "small", 3), "total.txt").out.decode()
    assert "  1. align[run=0]: align raw-0.txt" in small and "rules" not in small


def test_history_and_the_report_group_steps_alike() -> None:
    assert report_group_steps is group_steps
