"""The text, csv and json comparators on real files: what differs, what the policy ignores,
bad input, and streaming in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import capsa
from capsa.compare import compare, detect, detect_policy
from capsa.format.policy import compare_policy


def lines(n: int, header: str = "# written 2024-05-01T10:00:00", change: int | None = None) -> str:
    body = [f"event {i} energy {i * 1.5}" for i in range(n)]
    if change is not None:
        body[change] = "event changed"
    return "\n".join([header, *body]) + "\n"


# -- text ------------------------------------------------------------------------------------


def test_text_shows_a_unified_diff_and_ignores_lines(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(lines(100, "# written 2025-01-02T03:04:05", change=40))
    b.write_text(lines(100))
    assert detect(a, b) == "text"
    r = compare(a, b, compare_policy("text"))
    assert r.verdict == "different"
    [d] = r.diff.differences
    assert d.summary == "lines line 1: 2 of 101 lines differ (first at line 1)"
    assert d.excerpt[:3] == [
        "@@ -1,4 +1,4 @@",
        "-# written 2025-01-02T03:04:05",
        "+# written 2024-05-01T10:00:00",
    ]
    assert r.report()[1] == "    @@ -1,4 +1,4 @@"
    r = compare(a, b, compare_policy("text", ignore_lines=["^# written "]))
    [d] = r.diff.differences
    assert (d.detail["line_a"], d.detail["line_b"]) == (42, 42)
    assert "-event changed" in d.excerpt and "+event 40 energy 60.0" in d.excerpt
    [ig] = r.diff.ignored
    assert ig.detail["rule"] == "^# written " and ig.detail["first"][0]["line_a"] == 1
    a.write_text(lines(100, "# written 2025-01-02T03:04:05"))
    r = compare(a, b, compare_policy("text", ignore_lines=["^# written "]))
    assert r.verdict == "equivalent" and len(r.diff.ignored) == 1


def test_text_insertions_and_line_endings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    b.write_text("one\ntwo\nthree\n")
    a.write_text("one\ninserted\ntwo\nthree\n")
    [d] = compare(a, b, compare_policy("text")).diff.differences
    assert "a has 4 lines, b has 3" in d.summary and "+two" not in d.excerpt[:2]
    a.write_text("one\ntwo\nthree")
    [d] = compare(a, b, compare_policy("text")).diff.differences
    assert d.summary.endswith("no newline at the end of a")


@pytest.mark.slow
def test_a_huge_text_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 1 << 29  # sparse: 512 MiB of NUL bytes cost no disk; memory must not grow with it
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    for p in (a, b):
        with p.open("wb") as f:
            f.truncate(size)
    with b.open("r+b") as f:
        f.seek(size - 100)
        f.write(b"x")
    code = textwrap.dedent("""
        import sys
        from capsa.cli.main import main
        rc = main(["diff", "--compare", "text", sys.argv[1], sys.argv[2], "--json", "-q"])
        # VmHWM: this process's own peak (ru_maxrss would carry the forking parent's over exec)
        hwm = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:")).split()[1]
        print(rc, hwm)
    """)
    r = subprocess.run(
        [sys.executable, "-c", code, str(a), str(b)], capture_output=True, text=True, timeout=600
    )
    rc, rss = r.stdout.splitlines()[-1].split()
    assert rc == "1", r.stderr
    assert int(rss) / 1024 < 100, f"peak RSS {int(rss) / 1024:.0f} MiB"


# -- csv / tsv -------------------------------------------------------------------------------


def table(rows: int, sep: str = ",", time: str = "2024-01-01T00:00:00", bump: int = -1) -> str:
    out = [sep.join(["id", "energy", "time", "name"])]
    for i in range(rows):
        e = i * 1.5 + (1e-9 if i == bump else 0.0)
        out.append(sep.join([str(i), repr(e), time, f"n{i}"]))
    return "\n".join(out) + "\n"


def test_csv_cells_columns_and_tolerances(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(table(200, time="2025-06-01T12:00:00", bump=17))
    b.write_text(table(200))
    assert detect(a, b) == "csv"
    r = compare(a, b, compare_policy("csv"))
    by = {d.path: d for d in r.diff.differences}
    assert set(by) == {"energy", "time"}
    assert by["energy"].detail["first"] == [{"row": 18, "a": "25.500000001", "b": "25.5"}]
    assert by["time"].detail["count"] == 200 and by["time"].volatile == "timestamp"
    r = compare(a, b, compare_policy("csv", ignore_columns=["time"], rtol="1e-9"))
    assert r.verdict == "equivalent", r.report()
    assert {(d.path, bool(d.detail.get("rule"))) for d in r.diff.ignored} == {
        ("energy", False),
        ("time", True),
    }
    # A per-column tolerance, and the header: columns only in one file.
    r = compare(a, b, compare_policy("csv", tolerances=[{"where": "e*", "atol": "1e-6"}]))
    assert [d.path for d in r.diff.differences] == ["time"]
    a.write_text(table(200).replace("id,energy,time,name", "id,energy,time,label"))
    r = compare(a, b, compare_policy("csv"))
    [d] = r.diff.differences
    assert d.kind == "header" and "only in b: name" in d.summary and "only in a: label" in d.summary


def test_tsv_detected_with_its_delimiter_and_row_counts(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text(table(50, "\t"))
    b.write_text(table(52, "\t"))
    policy = detect_policy(a, b)
    assert policy is not None and policy.method == "csv" and policy.delimiter == "\t"
    [d] = compare(a, b, policy).diff.differences
    assert d.kind == "rows" and (d.detail["rows_a"], d.detail["rows_b"]) == (50, 52)


def test_csv_comment_header_ignored_and_ragged_rows(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("# generated 2025-01-01\n" + table(10))
    b.write_text("# generated 2024-01-01\n" + table(10))
    r = compare(a, b, compare_policy("csv", ignore_lines=["^# generated"]))
    assert r.verdict == "equivalent" and r.diff.ignored[0].detail["rule"] == "^# generated"
    b.write_text(table(10) + "10,15.0\n")
    with pytest.raises(capsa.FormatError, match=r"line 12: 2 fields where the header has 4"):
        compare(a, b, compare_policy("csv", ignore_lines=["^#"]))


# -- json ------------------------------------------------------------------------------------


def test_json_structure_pointers_ignores_and_tolerance(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ref = {
        "created": "2024-01-01T00:00:00Z",
        "values": [1, 2, 3.0, float("nan")],
        "n": {"x": 1, "a/b": 2},
        "runs": [{"host": "a", "e": 1.0}],
    }
    new = {
        "n": {"x": 1.0, "a/b": 3, "new": True},
        "created": "2025-01-01T00:00:00Z",
        "values": [1, 2, 3.5, float("nan")],
        "runs": [{"host": "b", "e": 1.0000001}],
    }
    b.write_text(json.dumps(ref))
    a.write_text(json.dumps(new, indent=2))
    assert detect(a, b) == "json"
    r = compare(a, b, compare_policy("json"))
    got = {(d.kind, d.path) for d in r.diff.differences}
    assert got == {
        ("extra", "/n/new"),
        ("value", "/n/a~1b"),
        ("value", "/created"),
        ("values", "/values"),
        ("value", "/runs/0/host"),
        ("value", "/runs/0/e"),
    }
    assert next(d for d in r.diff.differences if d.path == "/created").volatile == "timestamp"
    policy = compare_policy("json", ignore_pointers=["/runs/*/host", "/created", "/n"], rtol="1e-3")
    r = compare(a, b, policy)
    assert [(d.path, d.summary) for d in r.diff.differences] == [
        ("/values/2", "value /values/2: 3.5 vs 3.0")
    ]
    assert {d.path for d in r.diff.ignored} == {"/n", "/created", "/runs/0/host", "/runs/0/e"}


def test_json_lines_are_text_and_bad_json_is_one_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.json"
    a.write_text('{"a": 1}\n{"a": 2}\n')
    assert detect(a) == "text"
    b.write_text('{"a": 1}')
    with pytest.raises(capsa.FormatError, match=r"not JSON: Extra data at line 2 column 1"):
        compare(a, b, compare_policy("json"))
    b.write_text('{"a": [1, 2,')
    with pytest.raises(capsa.FormatError, match=r"not JSON: .* at line 1 column 13") as e:
        compare(b, a, compare_policy("json"))
    assert e.value.where == str(b)


def test_bad_input_under_the_bytes_policy_still_gives_a_verdict(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"a": [1, 2, 3]}')
    b.write_text('{"a": [1, 2, 4]}')
    r = compare(a, b)
    assert (r.verdict, r.method, r.explained_by) == ("different", "bytes", "json")
    assert r.diff.differences[0].summary.startswith("values /a: 1 of 3 items differ")
    os.truncate(a, 5)
    r = compare(a, b)  # a no longer sniffs as JSON: explained as the text both still are
    assert (r.verdict, r.explained_by) == ("different", "text")
    with pytest.raises(capsa.FormatError, match="not JSON"):
        compare(a, b, compare_policy("json"))  # the policy's method fails: one clear error
