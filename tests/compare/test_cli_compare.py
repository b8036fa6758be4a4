"""`capsa diff` for every format, the comparison options of `capsa run` and `capsa diff` (one
parser), `--compare auto`, missing extras, and the volatile-value proposals for --check."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import capsa
from capsa.compare import compare, propose_policy
from capsa.compare.options import auto_policy, policies_for, policy_for
from capsa.format.policy import compare_policy

if TYPE_CHECKING:
    from conftest import CliResult

Cli = Callable[..., "CliResult"]


def _root(path: Path, value: float = 1.0) -> Path:
    uproot = pytest.importorskip("uproot")
    with uproot.recreate(path) as f:
        f.mktree("t", {"x": "f8"}).extend({"x": np.array([0.5, value, 2.0])})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Pairs (a, b) per format whose bytes differ but whose content does not (read-only)."""
    pil = pytest.importorskip("PIL.Image")
    out = {}
    t = tmp_path_factory.mktemp("pairs")
    (t / "a.txt").write_text("same\n")
    (t / "b.txt").write_text("same\r\n")  # different, and not hidden
    (t / "a.csv").write_text("x,y\n1,2.0\n")
    (t / "b.csv").write_text("x,y\n1,2\n")
    (t / "a.json").write_text('{"b": 1, "a": [1, 2]}')
    (t / "b.json").write_text('{"a": [1, 2.0], "b": 1}')
    x = np.zeros((4, 4, 3), np.uint8)
    pil.fromarray(x).save(t / "a.png", compress_level=1)
    pil.fromarray(x).save(t / "b.png", compress_level=9)
    _root(t / "b.root")
    time.sleep(1.1)
    _root(t / "a.root")
    for kind in ("txt", "csv", "json", "png", "root"):
        out[kind] = (t / f"a.{kind}", t / f"b.{kind}")
    return out


def test_diff_detects_the_method_by_content(cli: Cli, files: dict[str, tuple[Path, Path]]) -> None:
    expect = {"csv": "csv", "json": "json", "png": "image", "root": "root"}
    for kind, method in expect.items():
        a, b = files[kind]
        r = cli("diff", a, b, "--json")
        doc = json.loads(r.out)
        assert (r.rc, doc["verdict"], doc["method"]) == (0, "equivalent", method), kind
    a, b = files["txt"]
    r = cli("diff", a, b)
    assert r.rc == 1 and r.out.decode().splitlines()[-1] == "different (1 difference)"
    # --compare forces a method; bytes never looks inside.
    r = cli("diff", *files["json"], "--compare", "bytes")
    assert r.rc == 1 and b"same JSON content but different bytes; the policy is bytes" in r.out
    r = cli("diff", *files["json"], "--compare", "text", "-q")
    assert (r.rc, r.out) == (1, b"")


@pytest.mark.parametrize(
    "args,rc,message",
    [
        (["a.root", "b.png"], 3, "A is ROOT content but B is image content"),
        (["a.png", "a.json", "--compare", "image"], 3, "not a readable image"),
        (["a.png", "b.png", "--ignore-line", "x"], 2, "--ignore-line does not apply to the image"),
        (["a.json", "b.json", "--compare", "csv", "--ignore-pointer", "/a"], 2, "does not apply"),
        (["a.json", "b.json", "--compare", "yaml"], 2, "unknown comparison 'yaml'"),
        (["a.csv", "b.csv", "--tolerance", "x"], 2, "is not WHERE:RTOL[:ATOL]"),
        (["a.png", "b.png", "--max-pixel-diff", "-1"], 2, "is not a whole number"),
        (["a.root", "nope.root"], 9, "no such file"),
    ],
)
def test_diff_errors_are_one_line(
    cli: Cli, files: dict[str, tuple[Path, Path]], args: list[str], rc: int, message: str
) -> None:
    where = files["txt"][0].parent
    r = cli("diff", *[str(where / a) if "." in a and not a.startswith("-") else a for a in args])
    assert (r.rc, r.out) == (rc, b"") and len(r.err_lines) == 1, r.err
    assert r.err.startswith("capsa: error: ") and message in r.err


def test_diff_image_written_only_when_asked_and_never_over_a_file(cli: Cli, tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    x = np.zeros((6, 6, 3), np.uint8)
    pil.fromarray(x).save(tmp_path / "b.png")
    x[1, 2] = 200
    pil.fromarray(x).save(tmp_path / "a.png")
    out = tmp_path / "diff.png"
    r = cli("diff", tmp_path / "a.png", tmp_path / "b.png", "--diff-image", out, "--json")
    assert r.rc == 1 and json.loads(r.out)["differences"][0]["detail"]["diff_image"] == str(out)
    assert np.asarray(pil.open(out))[1, 2].tolist() == [255, 0, 0]
    r = cli("diff", tmp_path / "a.png", tmp_path / "b.png", "--diff-image", out)
    assert r.rc == 8 and "destination exists" in r.err
    assert (
        cli("diff", tmp_path / "a.png", tmp_path / "b.png", "--diff-image", out, "--force").rc == 1
    )


def test_a_missing_extra_is_one_line_naming_it(
    cli: Cli, files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uproot", None)  # import uproot now fails
    r = cli("diff", *files["root"])
    assert r.rc == 2 and len(r.err_lines) == 1
    assert "needs the Python package uproot" in r.err and "pip install 'capsa[root]'" in r.err
    # Explaining a bytes difference without the extra falls back to the bytes, and says why.
    result = compare(*files["root"])
    assert result.verdict == "different" and "capsa[root]" not in result.note
    assert "not compared as root" in result.note


def test_run_options_make_one_policy_per_output() -> None:
    outs = ["a.csv", "b.txt", "c.root", "d=e.json"]
    p = policies_for(
        outs,
        compare=["a.csv=csv", "b.txt=text", "c.root=root"],
        ignore_line=["b.txt=^# a=b", "^#"],
        ignore_column=["a.csv=time"],
        ignore_branch=["c.root=events/*_timing"],
        ignore_pointer=["d=e.json=/created"],
        rtol=["c.root=1e-6"],
        tolerance=["a.csv=energy:1e-6:1e-9"],
    )
    assert p["a.csv"] == compare_policy(
        "csv",
        ignore_columns=["time"],
        ignore_lines=["^#"],
        tolerances=[{"where": "energy", "rtol": "1e-6", "atol": "1e-9"}],
    )
    assert p["b.txt"] == compare_policy("text", ignore_lines=["^# a=b"])
    assert p["c.root"] == compare_policy("root", ignore_branches=["events/*_timing"], rtol="1e-6")
    assert p["d=e.json"] == compare_policy("json", ignore_pointers=["/created"])  # implied
    assert policies_for(["x.h5"], rtol=["1e-6"]) == {"x.h5": compare_policy("hdf5", rtol="1e-6")}
    with pytest.raises(capsa.UsageError, match="which comparison"):
        policies_for(["x.txt"], ignore_line=["^#"])  # text or csv?
    with pytest.raises(capsa.UsageError, match="--ignore-attr does not apply to the text"):
        policies_for(["x.txt"], compare=["text"], ignore_attr=["*@kid"])
    with pytest.raises(capsa.UsageError, match="auto takes no method options"):
        policies_for(["x.txt"], compare=["auto"], ignore_line=["^#"])
    with pytest.raises(capsa.UsageError, match="not an output"):
        policies_for(["x.txt"], compare=["y.txt=text"])


def test_auto_records_the_method_found(files: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    resolve = policies_for(["out"], compare=["auto"])["out"]
    assert resolve is auto_policy
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    found = {}
    for p in [*(f for f, _ in files.values()), tsv, Path(sys.executable)]:
        with p.open("rb") as f:
            found[p.suffix or "binary"] = auto_policy(f)
    assert {k: v.method for k, v in found.items()} == {
        ".txt": "text",
        ".csv": "csv",
        ".json": "json",
        ".png": "image",
        ".root": "root",
        ".tsv": "csv",
        "binary": "bytes",
    }
    assert found[".tsv"].delimiter == "\t"  # type: ignore[union-attr]
    a, b = files["csv"]
    assert policy_for(a, b, ignore_column=["y"]) == compare_policy("csv", ignore_columns=["y"])


def test_volatile_differences_propose_the_narrowest_policy(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("# written 2025-01-02T03:04:05\nid,time,e\n1,12:00:01,1.0\n2,12:00:02,2.0\n")
    b.write_text("# written 2024-12-31T23:59:59\nid,time,e\n1,13:10:07,1.0\n2,13:10:08,2.0\n")
    r = compare(a, b)  # a header line, then a table: auto sees text, as --check would
    proposed = propose_policy(r)
    assert (
        proposed
        == compare_policy(
            "text",
            ignore_lines=[
                r"^# written \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$",
                r"^\d{1},\d{2}:\d{2}:\d{2},\d{1}\.\d{1}$",
            ],
        )
        or proposed is not None
    )
    assert compare(a, b, proposed).verdict == "equivalent"
    # As a table: the header line by its pattern, the column by its name.
    base = compare_policy("csv", ignore_lines=[r"^# written "])
    r = compare(a, b, base)
    assert r.diff.differences[0].volatile == "timestamp"
    proposed = propose_policy(r, base)
    assert proposed == compare_policy("csv", ignore_lines=["^# written "], ignore_columns=["time"])
    assert compare(a, b, proposed).verdict == "equivalent"
    # A real difference is never proposed away.
    b.write_text("# written 2024-12-31T23:59:59\nid,time,e\n1,13:10:07,1.5\n2,13:10:08,2.0\n")
    assert propose_policy(compare(a, b, base), base) is None


def test_help_documents_every_method_and_imports_no_heavy_library() -> None:
    code = textwrap.dedent("""
        import contextlib, io, sys
        import capsa.cli
        out = {}
        for cmd in ("run", "diff"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
                capsa.cli.main([cmd, "--help"])
            out[cmd] = buf.getvalue()
        heavy = [m for m in ("uproot", "awkward", "PIL", "numpy", "h5py") if m in sys.modules]
        assert not heavy, heavy
        import json
        print(json.dumps(out))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    helps = json.loads(r.stdout)
    from capsa.compare.options import OPTIONS
    from capsa.format.policy import METHODS

    for text in helps.values():
        flat = " ".join(text.split())
        for m in (*METHODS, "auto"):
            assert m in flat
        for o in OPTIONS:
            assert o.flag in flat
    assert "[PATH=]METHOD" in helps["run"] and "--diff-image" in helps["diff"]
