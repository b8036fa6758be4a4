"""capsa.h5compare: canonical HDF5 content digest, semantic diff, replay verdicts, `capsa diff`.

Every file here is a real HDF5 file written by h5py; "same content" files really have different
bytes (asserted), so an implementation that hashed bytes would fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pytest

import capsa
from capsa.compare import hdf5 as h5compare
from capsa.compare.hdf5 import compare, content_digest, diff
from capsa.compare.hdf5 import limits as h5limits
from capsa.format.policy import compare_policy as ComparePolicy

if TYPE_CHECKING:
    from conftest import CliResult

Maker = Callable[..., Path]


def hdf5(**kw: Any) -> ComparePolicy:
    return ComparePolicy(method="hdf5", **kw)


def write_sample(
    path: Path,
    *,
    layout: str = "contiguous",
    libver: Any = None,
    track_order: bool = False,
    reverse: bool = False,
    track_times: bool = False,
    kid: str | None = None,
    mutate: Callable[[h5py.File], None] | None = None,
) -> Path:
    """A small analysis-like file; ``layout``, ``libver``, ``track_order`` and ``reverse``
    (creation order of links and attributes) change the bytes, never the content."""
    rng = np.random.default_rng(42)
    energy = rng.normal(100.0, 5.0, size=(300, 40))
    counts = rng.poisson(7, size=5000).astype(np.int32)
    events = np.zeros(200, dtype=[("id", "<i8"), ("e", "<f4"), ("tag", "S6"), ("pos", "<f8", (3,))])
    events["id"] = np.arange(200)
    events["e"] = rng.random(200)
    events["tag"] = [b"mu", b"e"] * 100
    events["pos"] = rng.random((200, 3))
    opts: dict[str, Any] = {
        "contiguous": {},
        "chunked": {"chunks": True},
        "gzip": {
            "chunks": True,
            "compression": "gzip",
            "compression_opts": 6,
            "shuffle": True,
            "fletcher32": True,
        },
        "odd-chunks": {"compression": "lzf"},
    }[layout]

    def kw(ndim: int) -> dict[str, Any]:
        return opts | ({"chunks": (7, 3)[:ndim]} if layout == "odd-chunks" else {})

    file_kw: dict[str, Any] = {"track_order": track_order}
    if libver is not None:
        file_kw["libver"] = libver
    with h5py.File(path, "w", **file_kw) as f:
        items: list[tuple[str, Callable[[], None]]] = [
            ("raw", lambda: f.create_group("raw", track_order=track_order)),
            (
                "energy",
                lambda: f.create_dataset(
                    "raw/energy", data=energy, track_times=track_times, **kw(2)
                ),
            ),
            (
                "counts",
                lambda: f.create_dataset(
                    "raw/counts", data=counts, track_times=track_times, **kw(1)
                ),
            ),
            (
                "events",
                lambda: f.create_dataset("events", data=events, track_times=track_times, **kw(1)),
            ),
            (
                "names",
                lambda: f.create_dataset(
                    "names",
                    data=["\u00e9t\u00e9", "beta", ""],
                    dtype=h5py.string_dtype(),
                    track_times=track_times,
                ),
            ),
            ("scalar", lambda: f.create_dataset("scalar", data=2.5, track_times=track_times)),
        ]
        for _, make in (items[:1] + items[1:][::-1]) if reverse else items:
            make()
        attrs = [
            ("title", "run 4711"),
            ("version", np.int16(3)),
            ("gains", np.arange(4.0)),
            ("units", np.bytes_(b"GeV")),
        ]
        for name, value in attrs[::-1] if reverse else attrs:
            f.attrs[name] = value
        f["raw/energy"].attrs["calibrated"] = True
        f["raw/energy"].attrs["scale"] = 1.25
        if kid is not None:
            f.attrs["kid"] = kid
            f["raw/energy"].attrs["kid"] = kid
        if mutate is not None:
            mutate(f)
    return path


@pytest.fixture
def make(tmp_path: Path) -> Maker:
    counter = iter(range(10_000))

    def _make(**kw: Any) -> Path:
        return write_sample(tmp_path / f"f{next(counter)}.h5", **kw)

    return _make


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


# -- digest: what is not content -------------------------------------------------------------------


def test_digest_ignores_object_times(make: Maker) -> None:
    a = make(track_times=True)
    time.sleep(1.1)  # HDF5 object times have one-second resolution
    b = make(track_times=True)
    assert not same_bytes(a, b), "the test needs files whose bytes differ by their timestamps"
    assert content_digest(a) == content_digest(b)
    result = compare(a, b)
    assert result.verdict == "equivalent" and result.diff.differences == []
    assert compare(a, a).verdict == "identical"


def test_bytes_policy_needs_identical_bytes(make: Maker) -> None:
    a, b = make(), make(layout="gzip")
    result = compare(a, b, ComparePolicy(method="bytes"))
    assert result.verdict == "different" and result.diff.differences == []
    assert "same HDF5 content" in result.note
    assert compare(a, a, ComparePolicy(method="bytes")).verdict == "identical"


@pytest.mark.parametrize("layout", ["chunked", "gzip", "odd-chunks"])
def test_digest_ignores_layout_and_filters(make: Maker, layout: str) -> None:
    a, b = make(), make(layout=layout)
    assert not same_bytes(a, b)
    assert content_digest(a) == content_digest(b)
    assert diff(a, b).differences == []


def test_digest_ignores_libver_and_creation_order(make: Maker) -> None:
    base = make(libver="earliest")
    variants = [
        make(libver="latest"),
        make(track_order=True),
        make(reverse=True, track_order=True),
        make(reverse=True, libver="latest"),
    ]
    for v in variants:
        assert not same_bytes(base, v)
        assert content_digest(v) == content_digest(base), v
        assert compare(v, base).verdict == "equivalent"


def test_digest_ignores_byte_order_signed_zero_and_nan_payload(tmp_path: Path) -> None:
    values = np.array([1.5, -0.0, np.nan, -2.0])
    other_nan = np.array([0x7FF8_0000_DEAD_BEEF], dtype="<u8").view("<f8")[0]
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = values.astype("<f8")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"] = np.array([1.5, 0.0, -other_nan, -2.0]).astype(">f8")
    assert content_digest(tmp_path / "a.h5") == content_digest(tmp_path / "b.h5")
    assert compare(tmp_path / "a.h5", tmp_path / "b.h5").verdict == "equivalent"


def test_digest_independent_of_block_size(make: Maker, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make(layout="odd-chunks")
    whole = content_digest(a)
    monkeypatch.setattr(h5limits, "BLOCK_BYTES", 512)
    monkeypatch.setattr(h5limits, "OBJECT_BLOCK", 2)
    assert content_digest(a) == whole


# -- digest: what is content -----------------------------------------------------------------------


def _set(path: str, index: Any, value: Any) -> Callable[[h5py.File], None]:
    def m(f: h5py.File) -> None:
        f[path][index] = value

    return m


def _replace(
    path: str,
    data: Callable[[np.ndarray[Any, Any]], Any],
    **kw: Any,
) -> Callable[[h5py.File], None]:
    def m(f: h5py.File) -> None:
        old = f[path][...]
        del f[path]
        f.create_dataset(path, data=data(old), **kw)

    return m


CONTENT_CHANGES: dict[str, Callable[[h5py.File], None]] = {
    "one value": _set("raw/energy", (123 // 40, 123 % 40), 0.0),
    "one compound field": _set("events", 5, (5, 0.5, b"mu", (0.0, 0.0, 0.0))),
    "one string": _set("names", 2, "x"),
    "f8 to f4": _replace("raw/energy", lambda x: x.astype("f4")),
    "shape": _replace("raw/energy", lambda x: x.reshape(-1)),
    "fixed-length string": _replace("names", lambda x: np.array(x, dtype="S8")),
    "attribute value": lambda f: f.attrs.modify("version", np.int16(4)),
    "attribute type": lambda f: (
        f.attrs.__delitem__("version"),
        f.attrs.create("version", 3, dtype="i4"),
    ),
    "extra attribute": lambda f: f["raw"].attrs.create("note", "x"),
    "extra group": lambda f: f.create_group("raw/empty"),
    "soft link": lambda f: f.__setitem__("latest", h5py.SoftLink("/raw/energy")),
    "hard link": lambda f: f.__setitem__("alias", f["raw/energy"]),
}


@pytest.mark.parametrize("change", list(CONTENT_CHANGES))
def test_digest_sees_content_changes(make: Maker, change: str) -> None:
    base = content_digest(make())
    changed = make(mutate=CONTENT_CHANGES[change])
    assert content_digest(changed) != base
    assert compare(changed, make()).verdict == "different"


def test_hard_links_hash_the_same_whatever_the_creation_order(tmp_path: Path) -> None:
    data = np.arange(10)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["a"] = data
        f["z/b"] = f["a"]
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["z/b"] = data
        f["a"] = f["z/b"]
    with h5py.File(tmp_path / "copy.h5", "w") as f:
        f["a"] = data
        f["z/b"] = data
    a, b, copy = (content_digest(tmp_path / n) for n in ("a.h5", "b.h5", "copy.h5"))
    assert a == b
    assert a != copy  # a second object is not a second name for the same object
    d = diff(tmp_path / "copy.h5", tmp_path / "a.h5")
    assert [(x.path, x.kind) for x in d.differences] == [("/z/b", "link")]
    assert "hard link to /a" in d.differences[0].summary


# -- policy: ignored attributes --------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["/@kid", "*@kid"])
def test_random_uuid_attribute_ignored_by_policy(make: Maker, rule: str) -> None:
    a, b = make(kid=str(uuid.uuid4())), make(kid=str(uuid.uuid4()))
    policy = hdf5(ignore_attrs=(rule, "/raw/energy@kid"))
    assert content_digest(a) != content_digest(b)
    assert content_digest(a, policy) == content_digest(b, policy)
    assert content_digest(a, policy) == content_digest(make(), policy)  # left out entirely
    result = compare(a, b, policy)
    assert result.verdict == "equivalent"
    ignored = {(d.path, d.detail["attribute"], d.detail["rule"]) for d in result.diff.ignored}
    assert ignored == {("/", "kid", rule), ("/raw/energy", "kid", "/raw/energy@kid")}
    line = next(d.summary for d in result.diff.ignored if d.path == "/")
    assert line.startswith("attribute /@kid: '") and " vs '" in line
    assert compare(a, b).verdict == "different"


def test_root_rule_does_not_cover_other_objects(make: Maker) -> None:
    a, b = make(kid="one"), make(kid="two")
    d = diff(a, b, hdf5(ignore_attrs=("/@kid",)))
    assert [(x.path, x.kind, x.detail["attribute"]) for x in d.differences] == [
        ("/raw/energy", "attribute", "kid")
    ]
    assert [x.path for x in d.ignored] == ["/"]


@pytest.mark.parametrize("rule", ["kid", "raw@kid", "/raw@", "@"])
def test_malformed_ignore_rule(make: Maker, rule: str) -> None:
    with pytest.raises(capsa.UsageError, match="OBJECT@NAME"):
        content_digest(make(), hdf5(ignore_attrs=(rule,)))


# -- diff: structure, attributes -------------------------------------------------------------------


def test_diff_reports_structure_and_attributes(make: Maker) -> None:
    def change(f: h5py.File) -> None:
        del f["raw"]  # a group with two datasets: reported once
        f.create_group("calib").create_dataset("gain", data=[1, 2])
        f.attrs.modify("title", "run 4712")
        del f.attrs["units"]
        f.attrs["gains"] = np.arange(4.0, dtype="f4")
        f.attrs["new"] = 1
        s = f["scalar"][()]
        del f["scalar"]
        f["scalar"] = np.float32(s)
        n = f["names"][...]
        del f["names"]
        f.create_dataset("names", data=[*n, b"z"], dtype=h5py.string_dtype())

    a, b = make(mutate=change), make()
    d = diff(a, b)
    got = {(x.kind, x.path, x.detail.get("attribute")): x for x in d.differences}
    assert set(got) == {
        ("missing", "/raw", None),
        ("extra", "/calib", None),
        ("dtype", "/scalar", None),
        ("shape", "/names", None),
        ("attribute", "/", "title"),
        ("attribute", "/", "units"),
        ("attribute", "/", "gains"),
        ("attribute", "/", "new"),
    }
    assert got["missing", "/raw", None].detail == {"object": "group", "objects_inside": 2}
    assert got["extra", "/calib", None].detail == {"object": "group", "objects_inside": 1}
    assert got["dtype", "/scalar", None].detail == {"a": "float32", "b": "float64"}
    assert got["shape", "/names", None].detail == {"a": "(4,)", "b": "(3,)"}
    title = got["attribute", "/", "title"]
    assert (title.detail["a"], title.detail["b"]) == ("'run 4712'", "'run 4711'")
    assert title.summary == "attribute /@title: 'run 4712' vs 'run 4711'"
    assert got["attribute", "/", "units"].detail["only_in"] == "b"
    assert got["attribute", "/", "new"].detail["only_in"] == "a"
    assert got["attribute", "/", "gains"].detail["dtypes"] == ["float32", "float64"]
    assert not d.ignored
    # b is the reference: swapping the files swaps missing and extra
    swapped = {(x.kind, x.path) for x in diff(b, a).differences}
    assert ("extra", "/raw") in swapped and ("missing", "/calib") in swapped
    json.dumps(d.as_dict(), allow_nan=False)


def test_diff_kind_and_link_changes(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = [1]
        f["g/y"] = [1]
        f["s"] = h5py.SoftLink("/x")
        f["e"] = h5py.ExternalLink("other.h5", "/d")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_group("x")
        f["g/y"] = [1]
        f["s"] = h5py.SoftLink("/g/y")
        f["e"] = h5py.ExternalLink("other.h5", "/d")
    d = diff(tmp_path / "a.h5", tmp_path / "b.h5")
    assert [(x.path, x.kind, x.detail) for x in d.differences] == [
        ("/s", "link", {"a": "soft link to /x", "b": "soft link to /g/y"}),
        ("/x", "kind", {"a": "dataset", "b": "group"}),
    ]


# -- diff: data, streamed block by block -----------------------------------------------------------


def _two_files(
    tmp_path: Path, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], **kw: Any
) -> tuple[Path, Path]:
    pa, pb = tmp_path / "a.h5", tmp_path / "b.h5"
    with h5py.File(pa, "w") as f:
        f.create_dataset("d", data=a, **kw)
    with h5py.File(pb, "w") as f:
        f.create_dataset("d", data=b)
    return pa, pb


def _expected(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> dict[str, Any]:
    ne = a != b
    d = np.abs(a - b)[ne]
    rel = d / np.abs(b[ne])
    return {
        "count": int(ne.sum()),
        "first": [tuple(int(i) for i in ix) for ix in np.argwhere(ne)],
        "max_abs": float(d.max()),
        "max_rel": float(rel.max()),
    }


@pytest.mark.parametrize(
    "shape,chunks", [((300, 200), None), ((300, 200), (7, 13)), ((3, 5, 4000), None)]
)
def test_data_differences_across_many_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], chunks: Any
) -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(10.0, 1.0, size=shape)
    a = b.copy()
    flat = a.reshape(-1)
    for i, delta in [(17, 0.5), (5_000, -0.25), (5_001, 3.0), (40_000, 1e-3), (59_999, 2.0)]:
        flat[i] += delta
    pa, pb = _two_files(tmp_path, a, b, chunks=chunks)
    monkeypatch.setattr(h5limits, "BLOCK_BYTES", 8 << 10)  # 8 KiB: hundreds of blocks
    limit = (8 << 10) // 4 // 8
    assert len(list(h5compare._selections(shape, limit, chunks))) > 50
    want = _expected(a, b)
    d = diff(pa, pb, max_indices=3)
    [x] = d.differences
    assert (x.path, x.kind) == ("/d", "data")
    assert x.detail["count"] == want["count"] == 5
    assert x.detail["elements"] == a.size
    assert x.detail["first"] == want["first"][:3]
    assert x.detail["max_abs"] == pytest.approx(want["max_abs"])
    assert x.detail["max_rel"] == pytest.approx(want["max_rel"])
    assert x.summary.startswith(f"data /d: 5 of {a.size} elements differ (first at ")
    assert diff(pa, pb, max_indices=10).differences[0].detail["first"] == want["first"]


def test_nan_equals_nan_at_the_same_position(tmp_path: Path) -> None:
    b = np.array([1.0, np.nan, 3.0, 4.0, np.inf])
    a = np.array([1.0, np.nan, np.nan, 4.0, np.inf])
    pa, pb = _two_files(tmp_path, a, b)
    [x] = diff(pa, pb).differences
    assert x.detail["count"] == 1 and x.detail["first"] == [(2,)] and x.detail["nan"] == 1
    assert "max_abs" not in x.detail  # no finite difference to report
    json.dumps(x.as_dict(), allow_nan=False)


# -- tolerances ------------------------------------------------------------------------------------


def test_float_tolerance_makes_small_differences_equivalent(tmp_path: Path) -> None:
    b = np.linspace(1.0, 2.0, 1000)
    a = b.copy()
    a[[10, 500]] *= 1 + 1e-9
    pa, pb = _two_files(tmp_path, a, b)
    assert compare(pa, pb).verdict == "different"
    result = compare(pa, pb, hdf5(rtol="1e-6"))
    assert result.verdict == "equivalent" and not result.diff.differences
    [ig] = result.diff.ignored
    assert (ig.path, ig.kind, ig.detail["count"]) == ("/d", "data", 2)
    assert ig.detail["within_tolerance"] is True
    assert 0 < ig.detail["max_rel"] <= 1.01e-9
    assert "within rtol 1e-06" in ig.summary
    assert compare(pa, pb, hdf5(atol="1e-6")).verdict == "equivalent"
    assert compare(pa, pb, hdf5(rtol="1e-12")).verdict == "different"
    a[700] += 1.0  # beyond tolerance: reported, while the small ones stay ignored
    pa, pb = _two_files(tmp_path, a, b)
    result = compare(pa, pb, hdf5(rtol="1e-6"))
    assert result.verdict == "different"
    assert result.diff.differences[0].detail["count"] == 1
    assert result.diff.differences[0].detail["first"] == [(700,)]
    assert result.diff.ignored[0].detail["count"] == 2


def test_integers_are_exact_unless_atol(tmp_path: Path) -> None:
    b = np.arange(100, dtype=np.int64) * 1000
    a = b.copy()
    a[3] += 1
    pa, pb = _two_files(tmp_path, a, b)
    assert compare(pa, pb, hdf5(rtol="0.5")).verdict == "different"
    result = compare(pa, pb, hdf5(atol="1"))
    assert result.verdict == "equivalent" and result.diff.ignored[0].detail["max_abs"] == 1.0
    assert compare(pa, pb, hdf5(atol="0.5")).verdict == "different"


def test_tolerance_applies_to_float_attributes(tmp_path: Path) -> None:
    for name, v in (("a.h5", 1.0), ("b.h5", 1.0 + 1e-12)):
        with h5py.File(tmp_path / name, "w") as f:
            f.attrs["mean"] = v
    pa, pb = tmp_path / "a.h5", tmp_path / "b.h5"
    assert compare(pa, pb).verdict == "different"
    result = compare(pa, pb, hdf5(rtol="1e-9"))
    assert result.verdict == "equivalent"
    assert result.diff.ignored[0].detail["attribute"] == "mean"


# -- compound and variable-length types ------------------------------------------------------------


def test_compound_fields_and_vlen_strings(tmp_path: Path) -> None:
    dt = np.dtype([("id", "<i4"), ("e", "<f8"), ("name", h5py.string_dtype()), ("v", "<f4", (2,))])
    rows = [(i, i * 0.5, f"ev{i}", (i, -i)) for i in range(50)]
    b = np.array(rows, dtype=dt)
    a = b.copy()
    a[7]["e"] += 1.0
    a[9]["name"] = "changed"
    a[9]["v"] = (9, 9)
    pa, pb = _two_files(tmp_path, a, b, chunks=(8,))
    [x] = diff(pa, pb).differences
    assert x.detail["count"] == 2 and x.detail["first"] == [(7,), (9,)]
    assert set(x.detail["fields"]) == {"e", "name", "v"}
    assert x.detail["fields"]["e"]["max_abs"] == 1.0
    assert x.detail["fields"]["name"] == {"count": 1}
    same_a, _ = _two_files(tmp_path, b, b, chunks=(8,))
    assert content_digest(same_a) == content_digest(pb)

    with h5py.File(tmp_path / "fixed.h5", "w") as f:
        f["d"] = np.array(
            [(r[0], r[1], r[2].encode(), r[3]) for r in rows],
            dtype=[("id", "<i4"), ("e", "<f8"), ("name", "S8"), ("v", "<f4", (2,))],
        )
    [y] = diff(tmp_path / "fixed.h5", pb).differences
    assert y.kind == "dtype"  # fixed-length vs variable-length strings


def test_vlen_sequences_and_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write(path: Path, last: int) -> Path:
        with h5py.File(path, "w") as f:
            f.create_dataset(
                "seq",
                data=np.array([np.arange(3.0), np.arange(last, dtype="f8")], dtype=object),
                dtype=h5py.vlen_dtype("f8"),
            )
            t = f.create_dataset("target", data=[1])
            f.create_dataset("refs", data=[t.ref, h5py.Reference()], dtype=h5py.ref_dtype)
        return path

    a, b = write(tmp_path / "a.h5", 5), write(tmp_path / "b.h5", 4)
    monkeypatch.setattr(h5limits, "OBJECT_BLOCK", 1)
    [x] = diff(a, b).differences
    assert (x.path, x.detail["count"], x.detail["first"]) == ("/seq", 1, [(1,)])
    assert content_digest(a) == content_digest(write(tmp_path / "c.h5", 5))


# -- sources ---------------------------------------------------------------------------------------


def test_bundle_members_and_file_objects(make: Maker, tmp_path: Path) -> None:
    a, b = make(), make(layout="gzip")
    out = capsa.pack(tmp_path / "x.capsa", [a]).path
    with capsa.open(out) as bundle, bundle.open_member(a.name) as member:
        assert content_digest(member) == content_digest(a)
        assert compare(member, a).verdict == "identical"
        assert compare(b, member).verdict == "equivalent"
    with a.open("rb") as fa, b.open("rb") as fb:
        assert compare(fa, fb).verdict == "equivalent"


def test_not_hdf5_and_missing(tmp_path: Path, make: Maker) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not HDF5\n")
    with pytest.raises(capsa.FormatError, match="not an HDF5 file"):
        content_digest(text)
    with pytest.raises(capsa.FormatError):
        diff(make(), text)
    with pytest.raises(capsa.NotFoundError):
        compare(tmp_path / "nope.h5", make())
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(make().read_bytes()[:3000])
    with pytest.raises(capsa.FormatError) as e:
        content_digest(truncated)
    assert "\n" not in str(e.value)


# -- bounded memory on big files -------------------------------------------------------------------


@pytest.mark.slow
def test_diff_of_400_mb_files_stays_in_bounded_memory(tmp_path: Path) -> None:
    rows, cols = 50_000, 1000  # 400 MB of float64 each
    diffs = [(123, 4), (25_000, 999), (49_999, 0)]
    for name, changed in (("a.h5", True), ("b.h5", False)):
        with h5py.File(tmp_path / name, "w") as f:
            d = f.create_dataset("hits", shape=(rows, cols), dtype="f8")
            step = 2500
            for start in range(0, rows, step):
                block = np.arange(start * cols, (start + step) * cols, dtype="f8").reshape(
                    step, cols
                )
                if changed:
                    for r, c in diffs:
                        if start <= r < start + step:
                            block[r - start, c] += 0.5
                d[start : start + step] = block
    child = textwrap.dedent("""
        import json, sys
        from capsa.compare import hdf5 as h5compare
        from capsa.cli.main import main
        rc = main(["diff", sys.argv[1], sys.argv[2], "--json"])
        print(json.dumps({"rc": rc, "digest": h5compare.content_digest(sys.argv[2])}))
    """)
    wrapper = textwrap.dedent("""
        import resource, subprocess, sys
        p = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], capture_output=True)
        sys.stdout.buffer.write(p.stdout)
        sys.stderr.buffer.write(p.stderr)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    r = subprocess.run(
        [sys.executable, "-c", wrapper, child, str(tmp_path / "a.h5"), str(tmp_path / "b.h5")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.stderr == ""
    *out, rss = r.stdout.strip().splitlines()
    report = json.loads("\n".join(out[:-1]))
    tail = json.loads(out[-1])
    assert tail["rc"] == 1 and report["verdict"] == "different"
    [x] = report["differences"]
    assert x["detail"]["count"] == 3 and x["detail"]["first"] == [list(rc) for rc in diffs]
    assert x["detail"]["max_abs"] == 0.5
    peak_mib = int(rss) / 1024  # ru_maxrss is in KiB on Linux
    assert peak_mib < 200, f"peak RSS {peak_mib:.0f} MiB"


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_verdicts_and_exit_codes(
    make: Maker, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    a, b = make(kid="1"), make(kid="1", layout="gzip")
    r = cli("diff", a, a)
    assert (r.rc, r.out, r.err) == (0, b"identical\n", "")
    r = cli("diff", a, b)
    assert (r.rc, r.out, r.err) == (0, b"equivalent\n", "")
    c = make(kid="2", mutate=_set("raw/energy", (2, 3), 0.0))
    r = cli("diff", c, a)
    assert r.rc == 1 and r.err == ""
    lines = r.out.decode().splitlines()
    assert lines[-1] == "different (3 differences)"
    assert any(
        x.startswith("data /raw/energy: 1 of 12000 elements differ (first at (2, 3)); max abs ")
        for x in lines
    )
    r = cli("diff", c, a, "--ignore-attr", "*@kid", "-q")
    assert (r.rc, r.out) == (1, b"")
    r = cli("diff", c, a, "--ignore-attr", "*@kid", "--json", "--max-indices", "0")
    doc = json.loads(r.out)
    assert r.rc == 1 and doc["verdict"] == "different" and doc["equal"] is False
    assert doc["a"] == str(c) and doc["b"] == str(a)
    [d] = doc["differences"]
    assert set(d) == {"path", "kind", "detail", "summary"}
    assert (d["path"], d["kind"], d["detail"]["count"], d["detail"]["first"]) == (
        "/raw/energy",
        "data",
        1,
        [],
    )
    assert {(i["path"], i["detail"]["attribute"]) for i in doc["ignored"]} == {
        ("/", "kid"),
        ("/raw/energy", "kid"),
    }
    out = cli("pack", "-o", tmp_path / "b.capsa", b, "-q")
    assert out.rc == 0
    r = cli("diff", f"{tmp_path / 'b.capsa'}:{b.name}", a)
    assert (r.rc, r.out) == (0, b"equivalent\n")


@pytest.mark.parametrize(
    "case,rc",
    [("text", 3), ("missing", 9), ("dir", 3), ("member", 9), ("bad-rtol", 2), ("bad-rule", 2)],
)
def test_cli_errors_are_one_line(
    make: Maker, tmp_path: Path, cli: Callable[..., CliResult], case: str, rc: int
) -> None:
    a = make()
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    capsa.pack(tmp_path / "x.capsa", [a])
    args = {
        "text": [a, text],
        "missing": [tmp_path / "nope.h5", a],
        "dir": [a, tmp_path],
        "member": [a, f"{tmp_path / 'x.capsa'}:nope.h5"],
        "bad-rtol": [a, a, "--rtol", "abc"],
        "bad-rule": [a, a, "--ignore-attr", "kid"],
    }[case]
    r = cli("diff", *args)
    assert r.rc == rc and r.out == b""
    assert len(r.err_lines) == 1 and r.err.startswith("capsa: error: ")
    assert "Traceback" not in r.err


def test_help_does_not_import_h5py() -> None:
    code = textwrap.dedent("""
        import sys
        import capsa.cli
        for argv in (["--help"], ["diff", "--help"]):
            try:
                capsa.cli.main(argv)
            except SystemExit:
                pass
        assert "h5py" not in sys.modules, "h5py imported"
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "1 different" in r.stdout and "BUNDLE.capsa:MEMBER" in r.stdout
