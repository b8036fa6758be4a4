"""The committed test vectors (fixtures/bundles/, spec/format.md §12) against the reader and CLI.

* fixtures/generate.py reproduces every committed byte;
* every valid vector verifies, lists and extracts to the recorded digests;
* every invalid vector fails `capsa verify` with the recorded exit code and ONE stderr line
  containing the recorded message, in-process and as `python -m capsa`, without a traceback and
  at the recorded level; extracting it never writes outside the target directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import capsa
from capsa.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
BUNDLES = FIXTURES / "bundles"
EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (BUNDLES / "expected.json").read_text(encoding="utf-8")
)
VALID = sorted(f for f, e in EXPECTED.items() if e["valid"])
INVALID = sorted(f for f, e in EXPECTED.items() if not e["valid"])
TIMEOUT = 60  # a hang guard, not a timing assertion


def _generator() -> ModuleType:
    name = "capsa_fixtures_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "capsa", *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def _snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path under root (except `skip`'s subtree): type, size and, for files, content."""
    out: dict[str, tuple[int, int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if skip is not None:
            dirnames[:] = [n for n in dirnames if d / n != skip]
        for n in dirnames + filenames:
            p = d / n
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, data)
    return out


def _one_error_line(err: str, message: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got: {err!r}"
    assert lines[0].startswith("capsa: "), lines[0]
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- (a) the generator reproduces the committed bytes ------------------------------------------


def test_generator_reproduces_committed_vectors(tmp_path: Path) -> None:
    gen = _generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in BUNDLES.iterdir())
    assert made == committed, "run: python fixtures/generate.py"
    for name in made:
        assert (tmp_path / name).read_bytes() == (BUNDLES / name).read_bytes(), (
            f"{name} differs from what fixtures/generate.py makes; regenerate and review"
        )


def test_generator_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = _generator()
    assert gen.main(["--check"]) == 0
    assert gen.main(["--out", str(tmp_path)]) == 0
    victim = tmp_path / "valid_small.capsa"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    (tmp_path / "stray.capsa").write_bytes(b"")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "valid_small.capsa" in err and "stray.capsa" in err


def test_expected_json_lists_every_vector() -> None:
    on_disk = sorted(p.name for p in BUNDLES.glob("*.capsa"))
    assert on_disk == sorted(EXPECTED)
    readme = (BUNDLES / "README.md").read_text(encoding="utf-8")
    for name, e in EXPECTED.items():
        assert f"`{name}`" in readme
        if e["valid"]:
            assert e["exit_code"] == 0 and e["level"] is None
        else:
            assert e["exit_code"] in (3, 4) and e["message"]
            assert e["level"] in ("open", "structure", "fixity")


# -- (b) valid vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_valid_vector(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(BUNDLES / name)
    files = EXPECTED[name]["files"]
    for level in ("structure", "fixity"):
        code, out, err = _run_cli(capsys, "verify", "--level", level, path)
        assert (code, err) == (0, ""), err
        assert "OK" in out
    code, out, err = _run_cli(capsys, "ls", "--json", path)
    assert (code, err) == (0, "")
    listing = json.loads(out)
    assert listing["format"] in ("1.0", "1.1", "1.2", capsa.FORMAT_VERSION)
    assert {m["path"]: m["digest"] for m in listing["members"]} == files
    dest = tmp_path / "out"
    code, out, err = _run_cli(capsys, "extract", "-q", path, "-C", str(dest))
    assert (code, err) == (0, "")
    assert _hash_tree(dest) == files
    for m in listing["members"]:
        mode = stat.S_IMODE((dest / m["path"]).stat().st_mode)
        assert mode == int(m["mode"], 8)


@pytest.mark.parametrize("name", VALID)
def test_valid_vector_subprocess(name: str) -> None:
    r = _subprocess("verify", str(BUNDLES / name))
    assert (r.returncode, r.stderr) == (0, "")


def test_valid_small_reads_in_place() -> None:
    with capsa.open(BUNDLES / "valid_small.capsa") as b:
        with b.open_member("data/log.txt") as f:
            f.seek(20_000)
            chunk = f.read(100)
        whole = b.open_member("data/log.txt").read()
    assert chunk == whole[20_000:20_100]
    assert len(whole) == b.manifest.blobs[b.manifest.files["data/log.txt"].digest].size


def test_valid_multiframe_has_three_frames() -> None:
    with capsa.open(BUNDLES / "valid_multiframe.capsa") as b:
        digest = b.manifest.files["big/series.txt"].digest
        blob, entry = b.blob_entry(digest)
        index = b.seek_index(blob, entry, "test")
        assert index.frames == 3
        assert list(index.decomp) == [0, 1 << 20, 2 << 20, (5 << 20) // 2]
        f = b.open_member("big/series.txt")
        f.seek((1 << 20) - 3)  # a read across the frame 0 / frame 1 boundary
        across = f.read(6)
    assert across == b"ppp" + b"seg"  # segment 15 is a run of 'p', segment 16 starts frame 1


@pytest.mark.parametrize("name", ["valid_duplicate_blob.capsa", "valid_empty_file.capsa"])
def test_pack_reproduces_identity_only_vectors(name: str, tmp_path: Path) -> None:
    """capsa.pack writes these inputs to exactly the committed bytes (same container layout)."""
    with capsa.open(BUNDLES / name) as b:
        src = tmp_path / "src"
        b.extract(src)
        m = b.manifest
    out = tmp_path / "again.capsa"
    capsa.pack(
        out,
        files={p: src / p for p in m.files},
        title=m.bundle.title,
        description=m.bundle.description,
        created=m.bundle.created,
    )
    assert out.read_bytes() == (BUNDLES / name).read_bytes()


# -- (c) invalid vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_in_process(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    e = EXPECTED[name]
    path = str(BUNDLES / name)
    code, out, err = _run_cli(capsys, "verify", path)
    assert "Traceback" not in out + err
    assert code == e["exit_code"], err
    _one_error_line(err, e["message"])
    # The level says where the defect is first seen: only there and after.
    ls_code, _, ls_err = _run_cli(capsys, "ls", path)
    structure, _, s_err = _run_cli(capsys, "verify", "--level", "structure", path)
    if e["level"] == "open":
        assert ls_code == e["exit_code"]
        _one_error_line(ls_err, e["message"])
        assert structure == e["exit_code"]
    elif e["level"] == "structure":
        assert (ls_code, ls_err) == (0, "")
        assert structure == e["exit_code"]
        _one_error_line(s_err, e["message"])
    else:
        assert (ls_code, ls_err) == (0, "")
        assert (structure, s_err) == (0, "")


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_subprocess(name: str) -> None:
    e = EXPECTED[name]
    r = _subprocess("verify", str(BUNDLES / name))
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode == e["exit_code"], r.stderr
    _one_error_line(r.stderr, e["message"])


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_extract_stays_inside(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "parent"
    target = parent / "target"
    target.mkdir(parents=True)
    (parent / "sibling.txt").write_text("untouched\n")
    before = _snapshot(tmp_path, skip=target)
    evil = Path("/tmp/capsa-evil")
    evil_existed = evil.exists()
    code, out, err = _run_cli(capsys, "extract", "-q", str(BUNDLES / name), "-C", str(target))
    assert "Traceback" not in out + err
    assert code == EXPECTED[name]["exit_code"], err
    _one_error_line(err, EXPECTED[name]["message"])
    assert _snapshot(tmp_path, skip=target) == before
    assert evil.exists() == evil_existed
    # Whatever was written inside the target holds what the manifest says, nothing half-done.
    for p in target.rglob("*"):
        assert not p.name.endswith(".capsa-tmp"), p


def test_path_traversal_vectors_with_unzip_names() -> None:
    """The entry-name vectors really carry the hostile names (an unzip would honour them)."""
    import zipfile

    for name, hostile in [
        ("invalid_path_traversal_name.capsa", "blobs/../../evil"),
        ("invalid_absolute_entry_name.capsa", "/tmp/capsa-evil"),
    ]:
        with zipfile.ZipFile(BUNDLES / name) as z:
            assert hostile in z.namelist()
            assert z.testzip() is None  # otherwise a well-formed ZIP: only the name is wrong
