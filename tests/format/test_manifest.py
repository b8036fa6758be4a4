"""capsa.manifest: canonical JSON (§8), strict parsing, path rules (§2, §7.4), versions (§9)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capsa.errors import FormatError
from capsa.format import manifest as m

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def valid() -> dict[str, Any]:
    """A valid manifest as plain JSON data (every default written, as the writer does)."""
    man = m.Manifest(
        capsa=m.FORMAT_VERSION,
        bundle=m.BundleMeta(
            title="t",
            authors=(m.Author(name="A. Tester", orcid="0000-0002-1825-0097"),),
            created="2024-01-02T03:04:05Z",
        ),
        blobs={
            D1: m.Blob(size=5, stored_size=5, encoding="identity", media_type="text/plain"),
            D2: m.Blob(
                size=9000,
                stored_size=100,
                encoding="zstd-seekable",
                media_type="application/x-hdf5",
            ),
        },
        files={
            "data/a.txt": m.FileEntry(digest=D1, role="input"),
            "data/copy.txt": m.FileEntry(digest=D1, role="input"),
            "run.h5": m.FileEntry(digest=D2, role="output", mode="0755"),
        },
    )
    return man.model_dump(mode="json", exclude_none=True)


def enc(value: Any) -> bytes:
    """Canonical bytes of arbitrary JSON data (valid or not as a manifest)."""
    return m.canonical_json(value)


def reverse_keys(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: reverse_keys(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [reverse_keys(x) for x in v]
    return v


def with_files(*paths: str) -> bytes:
    v = valid()
    entry = v["files"]["data/a.txt"]
    v["files"] = {p: entry for p in paths}
    return enc(v)


# -- canonical JSON ----------------------------------------------------------------------------


def test_canonical_json_sorted_compact_utf8() -> None:
    assert enc({"b": 1, "a": {"d": [1, 2], "c": "x"}}) == b'{"a":{"c":"x","d":[1,2]},"b":1}'
    assert enc({"é": "ü→"}) == '{"é":"ü→"}'.encode()  # literal UTF-8, not \\u escapes
    assert enc({"s": 'q"\\\n\t\x01'}) == b'{"s":"q\\"\\\\\\n\\t\\u0001"}'
    assert enc({"z": True, "y": False}) == b'{"y":false,"z":true}'


def test_canonical_json_sorts_by_code_point() -> None:
    assert list(json.loads(enc({"b": 1, "B": 2, "é": 3, "a": 4}))) == ["B", "a", "b", "é"]


@pytest.mark.parametrize(
    "value", [1.0, 0.5, float("nan"), float("inf"), {"a": [1, 2.5]}, {"a": {"b": -0.0}}]
)
def test_canonical_json_rejects_floats(value: Any) -> None:
    with pytest.raises(ValueError, match="float"):
        enc(value)


def test_canonical_json_integer_range() -> None:
    assert enc({"n": 2**53}) == b'{"n":9007199254740992}'
    with pytest.raises(ValueError):
        enc({"n": 2**53 + 1})
    with pytest.raises(ValueError):
        enc([-(2**53) - 1])


def test_canonical_json_of_model_omits_none_and_keeps_defaults() -> None:
    data = m.canonical_json(m.Manifest(capsa="1.0"))
    assert data == (
        b'{"blobs":{},"bundle":{"authors":[],"description":"","identifiers":[],'
        b'"title":""},"capsa":"1.0","files":{},"steps":[]}'
    )
    assert b"null" not in data and b"created" not in data and b"license" not in data


def test_round_trip() -> None:
    data = enc(valid())
    man = m.parse_manifest(data)
    assert m.canonical_json(man) == data
    assert man.files["run.h5"].mode == "0755"
    assert man.blobs[D2].encoding == "zstd-seekable"
    assert man.bundle.authors[0].orcid == "0000-0002-1825-0097"


def test_models_are_frozen() -> None:
    man = m.parse_manifest(enc(valid()))
    with pytest.raises(Exception, match="frozen"):
        man.capsa = "2.0"  # type: ignore[misc]


# -- strict parsing ----------------------------------------------------------------------------


def test_rejects_duplicate_keys() -> None:
    data = enc(valid())
    v = m.FORMAT_VERSION.encode()
    dup = data.replace(b'"capsa":"' + v + b'"', b'"capsa":"' + v + b'","capsa":"' + v + b'"')
    assert dup != data
    with pytest.raises(FormatError, match="duplicate key"):
        m.parse_manifest(dup)


def test_rejects_duplicate_keys_nested() -> None:
    data = enc(valid())
    dup = data.replace(b'"title":"t"', b'"title":"t","title":"t"')
    with pytest.raises(FormatError, match="duplicate key"):
        m.parse_manifest(dup)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d + b"\n",
        lambda d: b" " + d,
        lambda d: d.replace(b'","', b'", "', 1),
        lambda d: d.replace(b'":', b'": ', 1),
        lambda d: json.dumps(json.loads(d), sort_keys=True, indent=1).encode(),
        lambda d: json.dumps(
            reverse_keys(json.loads(d)), separators=(",", ":"), ensure_ascii=False
        ).encode(),
        lambda d: json.dumps(json.loads(d), sort_keys=True, separators=(",", ":")).encode(),
        lambda d: b"\xef\xbb\xbf" + d,
    ],
    ids=[
        "trailing-newline",
        "leading-space",
        "space-after-comma",
        "space-after-colon",
        "indented",
        "unsorted",
        "ascii-escaped",
        "bom",
    ],
)
def test_rejects_non_canonical(mutate: Any) -> None:
    v = valid()
    v["bundle"]["title"] = "Müon"  # so that ensure_ascii makes a difference
    data = enc(v)
    bad = mutate(data)
    assert bad != data
    assert json.loads(bad.decode("utf-8-sig")) == json.loads(data)  # same content, other bytes
    with pytest.raises(FormatError):
        m.parse_manifest(bad)


def test_rejects_unsorted_keys_with_message() -> None:
    v = valid()
    data = json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()  # insertion order
    assert data != enc(v)
    with pytest.raises(FormatError, match="canonical"):
        m.parse_manifest(data)


@pytest.mark.parametrize("text", [b"[]", b'"x"', b"1", b"null", b"{", b"\xff\xfe", b""])
def test_rejects_not_an_object(text: bytes) -> None:
    with pytest.raises(FormatError):
        m.parse_manifest(text)


@pytest.mark.parametrize("number", [b"1.0", b"1e3", b"NaN", b"Infinity", b"-Infinity"])
def test_rejects_float_in_document(number: bytes) -> None:
    data = enc(valid()).replace(b'"size":5,', b'"size":' + number + b",", 1)
    with pytest.raises(FormatError, match=r"not allowed|not valid"):
        m.parse_manifest(data)


def test_rejects_integer_outside_canonical_range() -> None:
    v = valid()
    v["blobs"][D2]["size"] = 2**60
    data = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(FormatError):
        m.parse_manifest(data)


@pytest.mark.parametrize(
    "where",
    [
        lambda v: v,  # top level
        lambda v: v["bundle"],
        lambda v: v["blobs"][D1],
        lambda v: v["files"]["run.h5"],
        lambda v: v["bundle"]["authors"][0],
    ],
    ids=["top", "bundle", "blob", "file", "author"],
)
def test_rejects_unknown_fields(where: Any) -> None:
    v = valid()
    where(v)["x_extension"] = "hello"
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_missing_required_field() -> None:
    v = valid()
    del v["blobs"][D1]["media_type"]
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_wrong_types_strictly() -> None:
    v = valid()
    v["blobs"][D1]["size"] = "5"
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "1" * 63,
        "sha256:" + "1" * 65,
        "sha1:" + "1" * 40,
        "SHA256:" + "1" * 64,
        "1" * 64,
        "sha256:" + "g" * 64,
    ],
)
def test_rejects_bad_digest_pattern(digest: str) -> None:
    v = valid()
    v["blobs"][digest] = v["blobs"].pop(D1)
    for f in v["files"].values():
        if f["digest"] == D1:
            f["digest"] = digest
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_bad_digest_in_file_entry() -> None:
    v = valid()
    v["files"]["data/a.txt"]["digest"] = "sha256:" + "F" * 64
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_file_referring_to_unlisted_blob() -> None:
    v = valid()
    v["files"]["data/a.txt"]["digest"] = "sha256:" + "3" * 64
    with pytest.raises(FormatError, match="not listed"):
        m.parse_manifest(enc(v))


@pytest.mark.parametrize("field,value", [("role", "source"), ("mode", "0777"), ("mode", "644")])
def test_rejects_bad_enum_values(field: str, value: str) -> None:
    v = valid()
    v["files"]["run.h5"][field] = value
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_unknown_encoding() -> None:
    v = valid()
    v["blobs"][D2]["encoding"] = "gzip"
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(enc(v))


def test_rejects_oversized_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    data = enc(valid())
    monkeypatch.setattr(m, "MAX_MANIFEST", len(data) - 1)
    with pytest.raises(FormatError, match="larger than"):
        m.parse_manifest(data)


# -- logical paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../b",
        "a/..",
        "..",
        ".",
        "./a",
        "a/./b",
        "/abs",
        "/",
        "a//b",
        "a/",
        "",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
        "a\x1fb",
    ],
)
def test_rejects_unsafe_paths(path: str) -> None:
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(with_files(path))


@pytest.mark.parametrize(
    "path",
    [
        "a",
        ".hidden",
        "..dots",
        "...",
        "a.",
        "x/.git/config",
        "dir/file..txt",
        "ü/ñ é",
        "a b/c-d_e+f",
    ],
)
def test_accepts_ordinary_paths(path: str) -> None:
    assert path in m.parse_manifest(with_files(path)).files


def test_rejects_overlong_path() -> None:
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(with_files("a/" * 2048 + "b"))


@pytest.mark.parametrize(
    "paths",
    [
        ("a", "a/b"),
        ("a", "a/b/c"),
        ("x/a", "x/a/b"),
        ("a", "a.txt", "a/b"),
        ("a", "a-b", "a b", "a/b"),
        ("d/a", "d/a!", "d/a/z"),
    ],
    ids=lambda p: "+".join(p),
)
def test_rejects_file_dir_conflict(paths: tuple[str, ...]) -> None:
    with pytest.raises(FormatError, match="both a file and a directory"):
        m.parse_manifest(with_files(*paths))


def test_file_dir_conflict_helper() -> None:
    assert m.file_dir_conflict(["a", "a.txt", "a/b"]) == "a"
    assert m.file_dir_conflict(["ab", "a/b", "a.b"]) is None
    assert m.file_dir_conflict([]) is None


# -- versions ----------------------------------------------------------------------------------


def with_version(version: str) -> bytes:
    v = valid()
    v["capsa"] = version
    return enc(v)


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.0"])
def test_rejects_other_major_version(version: str) -> None:
    with pytest.raises(FormatError) as e:
        m.parse_manifest(with_version(version))
    msg = e.value.diagnostics()
    assert f"unknown major format version {version}" in msg
    assert "1.x" in msg
    assert e.value.exit_code == 3


def test_rejects_newer_minor_version_telling_to_upgrade() -> None:
    with pytest.raises(FormatError) as e:
        m.parse_manifest(with_version(f"1.{m.MINOR + 1}"))
    assert "newer than this capsa" in e.value.diagnostics()
    assert "upgrade capsa" in e.value.diagnostics()


@pytest.mark.parametrize("version", ["1", "1.0.0", "v1.0", ""])
def test_rejects_malformed_version(version: str) -> None:
    with pytest.raises(FormatError, match="invalid manifest"):
        m.parse_manifest(with_version(version))


def test_model_rejects_newer_version_directly() -> None:
    with pytest.raises(ValueError, match="not readable"):
        m.Manifest(capsa=f"1.{m.MINOR + 1}")


def test_steps_must_reference_listed_image() -> None:
    v = valid()
    v["steps"] = [
        {
            "name": "reco",
            "image": "sha256:" + "9" * 64,
            "argv": ["reco"],
            "runtime": {"name": "apptainer"},
        }
    ]
    with pytest.raises(FormatError, match="image is not in the bundle"):
        m.parse_manifest(enc(v))
