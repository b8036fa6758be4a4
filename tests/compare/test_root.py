"""The root comparator on real ROOT files written here with uproot (and KM3NeT's own files
from km3net-testdata): what is content, what never is, and damaged files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import capsa
from capsa.compare import compare, same_bytes
from capsa.compare.root import RootComparator
from capsa.format.policy import compare_policy

uproot = pytest.importorskip("uproot", reason="the root extra (uproot) is not installed")
ak = pytest.importorskip("awkward", reason="the root extra (awkward) is not installed")
km3net_testdata = pytest.importorskip("km3net_testdata")

N = 500


def write_root(path: Path, change: dict[str, Any] | None = None) -> Path:
    """A tree with several branch types (two baskets each), an RNTuple, histograms in
    subdirectories, and a TObjString with two cycles. ``change`` edits the data first."""
    from uproot.writing.identify import to_TAxis, to_TH2x

    rng = np.random.default_rng(7)
    data: dict[str, Any] = {
        "i32": np.arange(N, dtype=np.int32),
        "i64": np.arange(N, dtype=np.int64) * 10**10,
        "f32": rng.normal(size=N).astype(np.float32),
        "energy": rng.normal(100, 5, size=N),
        "flag": np.arange(N) % 3 == 0,
        "fixed": rng.normal(size=(N, 3)),
        "hits": ak.Array([list(range(i % 5)) for i in range(N)]) * 1.5,
        "name": np.array([f"ev{i}" for i in range(N)]),
        "t_timing": rng.random(N),
    }
    data["energy"][7] = np.nan
    cnt = np.zeros((6, 5), np.float32)
    cnt[1:-1, 1:-1] = rng.integers(0, 9, (4, 3))
    note = "second cycle"
    for key, value in (change or {}).items():
        if key == "cnt":
            cnt[value] = 1.0
        elif key == "note":
            note = value
        else:
            value(data[key]) if callable(value) else data.__setitem__(key, value)
    with uproot.recreate(path) as f:
        t = f.mktree("events", data, title="events")
        t.extend(data)
        f["ntuple"] = {"x": data["energy"], "hits": data["hits"]}
        f["sub/deeper/h1"] = np.histogram(rng.normal(size=1000), bins=20, range=(-4, 4))
        f["sub/h2f"] = to_TH2x(
            "h2f", "a TH2F", cnt.T.ravel(), fEntries=float(cnt.sum()), fTsumw=float(cnt.sum()),
            fTsumw2=float(cnt.sum()), fTsumwx=0.0, fTsumwx2=0.0, fTsumwy=0.0, fTsumwy2=0.0,
            fTsumwxy=0.0, fSumw2=None, fXaxis=to_TAxis("xaxis", "", 4, 0.0, 1.0),
            fYaxis=to_TAxis("yaxis", "", 3, 0.0, 1.0),
        )  # fmt: skip
        f["META/JMeta"] = "program=capsa-test"
        f["note"] = "hello ROOT"
        f["note"] = note
    return path


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_root(tmp_path_factory.mktemp("root") / "ref.root")


def test_two_writes_differ_only_in_times_and_uuids(ref: Path, tmp_path: Path) -> None:
    time.sleep(1.1)  # a new second in every TDatime
    again = write_root(tmp_path / "again-with-a-longer-name.root")
    assert not same_bytes(again, ref), "the test needs files whose bytes differ"
    r = compare(again, ref, compare_policy("root"))
    assert r.verdict == "equivalent", r.report()
    [note] = r.diff.ignored
    assert note.kind == "bookkeeping"
    for what in ("file UUIDs", "directory times", "key times"):
        assert what in note.summary
    # Under the default bytes policy the content is said to be the same.
    r = compare(again, ref)
    assert r.verdict == "different" and r.explained_by == "root"
    assert "same ROOT content but different bytes" in r.note


def test_one_changed_value_names_branch_and_entry(ref: Path, tmp_path: Path) -> None:
    def bump(x: Any) -> None:
        x[321] += 1e-9

    changed = write_root(tmp_path / "changed.root", {"energy": bump})
    r = compare(changed, ref, compare_policy("root"))
    assert r.verdict == "different"
    by_path = {d.path: d for d in r.diff.differences}
    assert set(by_path) == {"events/energy", "ntuple/x"}
    d = by_path["events/energy"]
    assert d.kind == "branch" and d.detail["count"] == 2  # two baskets of the same data
    assert d.detail["first"] == [321, 821] and d.detail["entries"] == 2 * N
    assert d.summary.startswith(
        "branch events/energy: 2 of 1000 entries differ (first at entry 321"
    )
    assert d.detail["max_abs"] == pytest.approx(1e-9, rel=1e-3)
    # NaN at entry 7 equals NaN; a tolerance covers the change, and says so.
    r = compare(changed, ref, compare_policy("root", atol="1e-8"))
    assert r.verdict == "equivalent"
    assert {d.path for d in r.diff.ignored if d.detail.get("within_tolerance")} == set(by_path)
    # A per-branch tolerance covers only its branch.
    r = compare(
        changed, ref, compare_policy("root", tolerances=[{"where": "events/*", "atol": "1e-8"}])
    )
    assert [d.path for d in r.diff.differences] == ["ntuple/x"]


@pytest.mark.parametrize(
    "change,where,text",
    [
        ({"name": lambda x: x.__setitem__(3, "EV3")}, "events/name", "'EV3' vs 'ev3'"),
        ({"flag": lambda x: x.__setitem__(5, not x[5])}, "events/flag", "entry 5"),
        ({"fixed": lambda x: x.__setitem__((4, 2), np.nan)}, "events/fixed", "entry 4"),
        ({"i64": lambda x: x.__setitem__(9, 1)}, "events/i64", "entry 9"),
        ({"cnt": (0, 0)}, "sub/h2f", "bin contents"),  # an underflow bin only
        ({"note": "second cyclE"}, "note", "'second cyclE' vs 'second cycle'"),
    ],
)
def test_each_kind_of_change_is_found(
    ref: Path, tmp_path: Path, change: dict[str, Any], where: str, text: str
) -> None:
    r = compare(write_root(tmp_path / "c.root", change), ref, compare_policy("root"))
    assert r.verdict == "different"
    assert where in {d.path for d in r.diff.differences}, r.report()
    assert text in next(d.summary for d in r.diff.differences if d.path == where)


def test_jagged_change_and_ignored_branches(ref: Path, tmp_path: Path) -> None:
    hits = ak.Array([list(range(i % 5)) for i in range(N)]) * 1.5
    hits = ak.concatenate([hits[:10], [[9.0, 9.0]], hits[11:]])
    changed = write_root(tmp_path / "c.root", {"hits": hits, "t_timing": np.zeros(N)})
    r = compare(changed, ref, compare_policy("root"))
    paths = {d.path for d in r.diff.differences}
    assert {"events/hits", "events/nhits", "events/t_timing", "ntuple/hits"} <= paths
    policy = compare_policy("root", ignore_branches=["events/*_timing", "*/*hits"])
    r = compare(changed, ref, policy)
    assert r.verdict == "equivalent", r.report()
    assert {d.path for d in r.diff.ignored if d.detail.get("rule")} >= {"events/t_timing"}


def test_structure_missing_extra_class_and_ignore_keys(ref: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f["note"] = np.histogram(np.arange(3.0), bins=2)  # another class
        f["extra"] = "only here"
        f["META/JMeta"] = "program=capsa-test system=another host"
    r = compare(other, ref, compare_policy("root"))
    got = {(d.kind, d.path) for d in r.diff.differences}
    assert ("class", "note") in got and ("extra", "extra") in got
    assert ("missing", "events") in got and ("missing", "sub") in got
    assert not any(p.startswith("sub/") for _, p in got), "a missing directory is one difference"
    assert ("object", "META/JMeta") in got
    r = compare(other, ref, compare_policy("root", ignore_keys=["META/*"]))
    assert ("object", "META/JMeta") not in {(d.kind, d.path) for d in r.diff.differences}
    assert any(d.path == "META/JMeta" and d.detail["rule"] == "META/*" for d in r.diff.ignored)


def test_km3net_offline_file(tmp_path: Path) -> None:
    src = Path(km3net_testdata.data_path("offline/km3net_offline.root"))
    copy = tmp_path / "copy.root"
    data = bytearray(src.read_bytes())
    data[50] ^= 0xFF  # inside the file's UUID (header bytes 47..63)
    copy.write_bytes(bytes(data))
    r = compare(copy, src, compare_policy("root"))
    assert r.verdict == "equivalent", r.report()
    assert "file UUIDs" in r.diff.ignored[0].summary
    other = Path(km3net_testdata.data_path("offline/numucc.root"))
    r = compare(other, src, compare_policy("root"))
    assert r.verdict == "different"
    got = {(d.kind, d.path) for d in r.diff.differences}
    assert ("title", "E") in got and ("branch", "E/Evt/frame_index") in got, r.report()


def test_uninterpretable_branches_compare_by_their_bytes() -> None:
    # KM3NeT DAQ trees: branches uproot cannot interpret are compared entry by entry raw.
    src = Path(km3net_testdata.data_path("online/km3net_online.root"))
    d = RootComparator().diff(src, src, compare_policy("root"))
    assert d.differences == []


def test_damaged_files_are_one_clear_error(ref: Path, tmp_path: Path) -> None:
    data = ref.read_bytes()
    with uproot.open(ref) as f:
        b = f["events"]["energy"]
        seek, key = int(b.member("fBasketSeek")[0]), b.basket_key(0)
    flipped = bytearray(data)
    flipped[seek + key.fKeylen + (key.fNbytes - key.fKeylen) // 2] ^= 4
    cases = {
        "half.root": data[: len(data) // 2],
        "tiny.root": data[:100],
        "flip.root": bytes(flipped),
        "text.root": b"not ROOT\n",
    }
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        for a, b in ((bad, ref), (ref, bad)):
            with pytest.raises(capsa.FormatError) as e:
                compare(a, b, compare_policy("root"))
            assert e.value.where == str(bad) and "\n" not in str(e.value), name
        # Explaining a bytes difference is best effort: the first differing byte, and why.
        r = compare(bad, ref)
        assert r.verdict == "different" and r.diff.differences[0].kind == "bytes"
        assert ("not compared as root" in r.note) == content.startswith(b"root")


def test_bundle_member_is_read_in_place(ref: Path, tmp_path: Path) -> None:
    time.sleep(1.1)
    again = write_root(tmp_path / "again.root")
    shutil.copy(ref, tmp_path / "ref.root")
    bundle = capsa.pack(tmp_path / "x.capsa", [tmp_path / "ref.root"]).path
    with capsa.open(bundle) as b, b.open_member("ref.root") as member:
        assert compare(again, member, compare_policy("root")).verdict == "equivalent"
