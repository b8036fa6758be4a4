"""spec/manifest.schema.json is generated from the models; it must never be stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from capsa.format.manifest import FORMAT_VERSION, schema_text

SPEC = Path(__file__).resolve().parents[2] / "spec"


def test_committed_schema_matches_models() -> None:
    committed = (SPEC / "manifest.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m capsa.schema spec/manifest.schema.json"


def test_schema_command_writes_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-W", "error", "-m", "capsa.schema", str(out)], check=True)
    assert out.read_text(encoding="utf-8") == (SPEC / "manifest.schema.json").read_text(
        encoding="utf-8"
    )


def test_spec_states_the_implemented_version() -> None:
    assert f"version {FORMAT_VERSION}" in (SPEC / "format.md").read_text(encoding="utf-8")
    assert json.loads(schema_text())["$id"].endswith(f"manifest-{FORMAT_VERSION}.schema.json")
