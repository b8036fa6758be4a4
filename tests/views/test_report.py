"""`capsa report` (and `show --html`, `replay --html`): one self-contained page with identity,
signatures as verified now, the lineage graph (folded by rule for big productions; Graphviz dot or
the built-in layout), each step, the replay verdicts with what differs, and how to reproduce.
The page itself is parsed here; tests/views/test_report_browser.py loads it in Chromium."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
from pathlib import Path

import pytest
from report_bundles import HOSTILE, differing, hostile_bundle, hostile_replay, production

import capsa
from capsa.format.manifest import RuntimeInfo, Step, StepFile
from capsa.signing.keys import keygen
from capsa.views.report import group_steps, load_replay, rule_of
from capsa.views.report.graph import build_graph
from capsa.views.report.layout import layered_layout, place
from conftest import CliResult

# Every attribute the page's own markup uses (HTML and SVG).
ALLOWED_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "id", "class", "href", "title",
    "xmlns", "viewbox", "width", "height", "role", "aria-label", "x", "y", "rx", "d",
    "marker-end", "refx", "refy", "markerwidth", "markerheight", "orient", "x1", "x2", "y1",
    "y2", "points", "style",
}  # fmt: skip


class Page(html.parser.HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self) -> set[str]:
        return {a["id"] or "" for _, a in self.tags if "id" in a}

    def all_text(self) -> str:
        return "".join(self.text)


def test_a_hostile_bundle_and_replay_report_render_as_text_only(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    priv, pub, _ = keygen(tmp_path / "k")
    b = hostile_bundle(tmp_path, priv)
    (tmp_path / "replay.json").write_text(json.dumps(hostile_replay(b)))
    r = cli(
        "report", b, "--key", pub, "--replay", tmp_path / "replay.json", "-o", tmp_path / "r.html"
    )
    assert r.rc == 0, r.err
    text = (tmp_path / "r.html").read_text()
    page = Page(text)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "img" not in tags
    # A string that broke out of an attribute would add attributes (onerror, src) of its own.
    names = {name for _, attrs in page.tags for name in attrs}
    assert names <= ALLOWED_ATTRIBUTES, names - ALLOWED_ATTRIBUTES
    assert HOSTILE in page.all_text()  # shown, as text
    assert page.all_text().count(HOSTILE) >= 10
    assert "&lt;script&gt;" in text and "<script" not in text
    # Class names never come from the report: an unknown verdict gets the neutral class.
    classes = " ".join(a.get("class") or "" for _, a in page.tags)
    assert "pwned" not in classes and "s-none" in classes
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_identity_signatures_steps_images_and_reproduce(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    priv, pub, keyid = keygen(tmp_path / "alice")
    _, other, _ = keygen(tmp_path / "bob")
    bundle, _ = differing(tmp_path / "d")
    capsa.sign_bundle(bundle, [capsa.load_private_key(priv)])
    r = cli("report", bundle, "--key", pub, "-o", tmp_path / "r.html")
    assert r.rc == 0 and "report written to" in r.out.decode()
    page = Page((tmp_path / "r.html").read_text())
    text = page.all_text()
    with capsa.open(bundle) as b:
        assert b.id in text
    assert {"identity", "title", "signatures", "replay", "lineage", "images", "steps"} <= page.ids()
    assert {"files", "reproduce", "step-0", "image-0"} <= page.ids()
    assert keyid in text and "valid, trusted" in text
    assert "energy spectrum" in text and f"capsa bundle format {capsa.FORMAT_VERSION}" in text
    # The image: source reference, OS and key packages from its labels and SBOM.
    assert "ana:1" in text and "debian 12" in text and "python3-numpy 1:1.24.2-1" in text
    assert "libzstd1" not in text  # not a key package
    # The step: command, sizes and digests, compare policy.
    assert "python3 spectrum.py events.h5 spectrum.h5" in text
    assert "hdf5: ignore attrs /@kid" in text
    assert f"capsa verify {bundle} --key {pub}" in text
    assert f"capsa replay {bundle} --key {pub} --json > replay.json" in text
    # Verified now, at level full: every blob hashed.
    assert "at level full" in text and "3 blobs" in text
    # Only the structure: no blob hashed, the signatures still checked.
    r = cli("report", bundle, "--key", pub, "--level", "structure", "-o", tmp_path / "r3.html")
    text = Page((tmp_path / "r3.html").read_text()).all_text()
    assert "container, manifest and seek tables" in text and "valid, trusted" in text
    assert "blobs, " not in text  # nothing hashed
    # A directory of trusted keys is given back as such in the commands.
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(pub, keys)
    r = cli("report", bundle, "--trusted-keys", keys, "-o", tmp_path / "r4.html")
    text = Page((tmp_path / "r4.html").read_text()).all_text()
    assert f"capsa verify {bundle} --trusted-keys {keys}" in text and "valid, trusted" in text
    # Another key: the signature is there but unknown.
    r = cli("report", bundle, "--key", other, "-o", tmp_path / "r2.html")
    assert r.rc == 0 and "unknown-key" in Page((tmp_path / "r2.html").read_text()).all_text()


def test_replay_verdicts_with_differences_bars_and_sampled_series(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, doc = differing(tmp_path)
    (tmp_path / "replay.json").write_text(json.dumps(doc))
    r = cli("report", bundle, "--replay", tmp_path / "replay.json", "-o", tmp_path / "r.html")
    assert r.rc == 0, r.err
    text = (tmp_path / "r.html").read_text()
    page = Page(text)
    words = page.all_text()
    assert "Not reproduced: 1 different" in words
    assert "data /energy: 4 of 2000 elements differ" in words
    assert "ignored: attribute /@kid" in words  # every ignored difference, named
    svgs = [a.get("class") for t, a in page.tags if t == "svg"]
    assert "plot bars" in svgs and svgs.count("plot series") == 2  # /energy and /hits field t
    assert "4 of 2,000 elements (0.20%)" in words
    assert "/hits field t" in words
    # The replayed files are gone (no --keep): the summaries are still plotted, not the values.
    shutil.rmtree(tmp_path / "replay-root")
    r = cli(
        "report", bundle, "--replay", tmp_path / "replay.json", "-o", tmp_path / "r.html", "--force"
    )
    svgs = [a.get("class") for t, a in Page((tmp_path / "r.html").read_text()).tags if t == "svg"]
    assert r.rc == 0 and "plot bars" in svgs and "plot series" not in svgs


def test_bad_replay_reports_and_destinations_are_one_line_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, doc = differing(tmp_path)
    out = tmp_path / "r.html"

    def report(replay: Path) -> CliResult:
        return cli("report", bundle, "--replay", replay, "-o", out)

    r = report(tmp_path / "absent.json")
    assert r.rc == 9 and len(r.err_lines) == 1 and "no such replay report" in r.err
    (tmp_path / "bad.json").write_text("{not json")
    r = report(tmp_path / "bad.json")
    assert r.rc == 3 and len(r.err_lines) == 1 and "not JSON" in r.err
    (tmp_path / "bad.json").write_text(json.dumps(doc | {"steps": [{"name": 3}]}))
    r = report(tmp_path / "bad.json")
    assert r.rc == 3 and "steps.0" in r.err and len(r.err_lines) == 1
    (tmp_path / "other.json").write_text(json.dumps(doc | {"bundle_id": "sha256:" + "0" * 64}))
    r = report(tmp_path / "other.json")
    assert r.rc == 2 and "another bundle" in r.err
    assert not out.exists() and not list(tmp_path.glob(".r.html.*"))
    assert cli("report", bundle, "-o", out).rc == 0
    r = cli("report", bundle, "-o", out)
    assert r.rc == 8 and "--force" in r.err
    r = cli("report", bundle, "-o", tmp_path / "no" / "dir" / "r.html")
    assert r.rc == 9
    r = cli("report", bundle, "-o", out, "--force", "--json")
    doc_out = json.loads(r.out)
    assert r.rc == 0 and doc_out["path"] == str(out) and doc_out["verified_ok"] is True
    assert load_replay(tmp_path / "other.json").steps  # valid, only for another bundle


def test_show_html_writes_the_same_page(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle, _ = differing(tmp_path)
    r = cli("show", bundle, "--html", tmp_path / "s.html")
    assert (
        r.rc == 0 and "report written to" in r.out.decode() and "energy spectrum" in r.out.decode()
    )
    assert 'id="lineage"' in (tmp_path / "s.html").read_text()
    assert cli("show", bundle, "--html", tmp_path / "s.html").rc == 8


def test_rules_group_fan_outs() -> None:
    assert rule_of("align[sample=A]") == "align" and rule_of("align") == "align"
    assert rule_of("[x]") == "[x]" and rule_of("a[b]c") == "a[b]c"
    rt = RuntimeInfo(name="bwrap")
    img = "sha256:" + "a" * 64

    def steps(names: list[str]) -> list[Step]:
        return [Step(name=n, image=img, argv=("true",), runtime=rt) for n in names]

    groups = group_steps(steps(["a[1]", "b", "a[2]", "c[x=1]"]))
    assert groups == {"a": [0, 2], "b": [1], "c": [3]}
    # Too many distinct names: runs of digits fold as well.
    many = group_steps(steps([f"job-{i:03d}" for i in range(100)] + ["merge"]))
    assert list(many) == ["job-#", "merge"] and len(many["job-#"]) == 100


def test_a_big_production_is_folded_into_a_readable_graph(tmp_path: Path) -> None:
    bundle = production(tmp_path, 20)  # 61 steps
    with capsa.open(bundle) as b:
        steps = list(b.manifest.steps)
    g = build_graph(steps, {steps[0].image: ("pipeline.sif", 0)})
    assert g.grouped
    labels = sorted((n.kind, n.label, n.sub) for n in g.nodes)
    assert ("step", "align", "\u00d720 steps") in labels and ("step", "merge", "") in labels
    assert ("origin", "20 files", "e.g. raw/S0000.dat") in labels
    assert [lab for k, lab, _ in labels if k == "result"] == ["summary.h5"]
    assert len(g.nodes) == 9 and len(g.edges) == 8
    detailed = build_graph(steps, {}, detail=True)
    assert not detailed.grouped and sum(n.kind == "step" for n in detailed.nodes) == 61


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("engine", ["builtin", "dot"])
def test_layouts_place_every_node_left_to_right_without_overlap(
    tmp_path: Path, engine: str
) -> None:
    if engine == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed (Debian package graphviz)")
    with capsa.open(production(tmp_path, 4)) as b:
        g = build_graph(list(b.manifest.steps), {}, detail=True)  # 13 steps, 17 files
    placed = layered_layout(g) if engine == "builtin" else place(g, "dot")
    assert placed.engine.startswith("Graphviz dot" if engine == "dot" else "built-in")
    assert len(placed.boxes) == len(g.nodes) and len(placed.paths) == len(g.edges)
    for i, a in enumerate(placed.boxes):
        assert a[0] >= 0 and a[1] >= 0 and a[0] + a[2] <= placed.width + 1
        assert a[1] + a[3] <= placed.height + 1
        for b2 in placed.boxes[i + 1 :]:
            assert not _overlap(a, b2)
    for (s, t), path in zip(g.edges, placed.paths, strict=True):
        assert placed.boxes[s][0] < placed.boxes[t][0]  # flows left to right
        assert path.startswith("M") and "C" in path


def test_auto_layout_falls_back_when_dot_is_missing(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    bundle, _ = differing(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = cli("report", bundle, "-o", tmp_path / "r.html")
    assert r.rc == 0 and "layout: built-in layered layout" in r.out.decode()
    r = cli("report", bundle, "-o", tmp_path / "r2.html", "--layout", "dot")
    assert r.rc == 2 and "Graphviz dot" in r.err and len(r.err_lines) == 1
    assert not (tmp_path / "r2.html").exists()


def test_dot_never_sees_a_bundle_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed (Debian package graphviz)")
    seen = tmp_path / "seen.dot"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dot").write_text(f'#!/bin/sh\ntee -a {seen} | {shutil.which("dot")} "$@"\n')
    (fake / "dot").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    from capsa.views.report import dot

    dot.dot_version.cache_clear()
    b = hostile_bundle(tmp_path)
    with capsa.open(b) as bundle:
        g = build_graph(list(bundle.manifest.steps), {})
        placed = place(g, "dot")
    source = seen.read_text()
    assert placed.engine.startswith("Graphviz dot") and "n0 -> n" in source
    assert "script" not in source and "img" not in source and "raw.h5" not in source


@pytest.mark.container
def test_replay_html_writes_the_page_with_its_verdicts(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from capsa.format.digest import sha256_file
    from images import image

    busybox = image("busybox")
    (tmp_path / "out.txt").write_text("recorded\n")
    step = Step(
        name="echo[n=1]",
        image=sha256_file(busybox),
        argv=("sh", "-c", "echo replayed > out.txt"),
        env={"PATH": "/bin"},
        outputs=(StepFile(path="out.txt", digest=sha256_file(tmp_path / "out.txt")),),
        runtime=RuntimeInfo(name="bwrap"),
    )
    b = capsa.pack(
        tmp_path / "e.capsa",
        files={"images/b.sif": busybox, "out.txt": tmp_path / "out.txt"},
        roles=[("images/*", "image")],
        steps=[step],
    ).path
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    page = tmp_path / "replay.html"
    page.write_text("an older page")
    args = ("replay", b, "--allow-unsigned", "--runtime", "bwrap", "--html", page)
    r = cli(*args)
    assert r.rc == 8 and page.read_text() == "an older page"  # refused before replaying
    r = cli(*args, "--force")
    assert r.rc == 1 and f"report written to {page}" in r.out.decode()
    text = Page(page.read_text()).all_text()
    assert "Not reproduced: 1 different" in text and "echo replayed > out.txt" in text
    assert "b.sif" in text and "different" in text


def test_image_details_read_what_the_sif_holds_and_nothing_else(tmp_path: Path) -> None:
    from report_bundles import sif_image

    from capsa.views.report.images import image_details

    spdx = {
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {"name": "debian", "versionInfo": "12.8", "primaryPackagePurpose": "OPERATING-SYSTEM"},
            {"name": "numpy", "versionInfo": "2.1.0"},
            {"name": "zlib1g", "versionInfo": "1:1.2.13"},
        ],
    }
    syft = {"artifacts": [{"name": "h5py", "version": "3.12"}], "distro": {"prettyName": "Alma 9"}}
    images = {
        "spdx.sif": sif_image(tmp_path / "spdx.sif", sbom=spdx),
        "syft.sif": sif_image(tmp_path / "syft.sif", sbom=syft),
        "damaged.sif": sif_image(tmp_path / "damaged.sif", labels={}, sbom=b"{not json"),
        "plain.sif": sif_image(tmp_path / "plain.sif", sbom={"packages": [{"name": "tool"}]}),
    }
    (tmp_path / "not-a-sif").write_bytes(b"hello")
    b = capsa.pack(
        tmp_path / "i.capsa",
        files={**{k: str(v) for k, v in images.items()}, "not-a-sif": str(tmp_path / "not-a-sif")},
        roles=[("*", "image")],
    ).path
    with capsa.open(b) as bundle:
        got = {p: image_details(bundle, f.digest, [p]) for p, f in bundle.manifest.files.items()}
    assert got["spdx.sif"].os == "debian 12.8" and got["spdx.sif"].packages == [("numpy", "2.1.0")]
    assert got["spdx.sif"].package_count == 2 and got["spdx.sif"].image_from == "debian:bookworm"
    assert got["syft.sif"].os == "Alma 9" and got["syft.sif"].packages == [("h5py", "3.12")]
    assert got["damaged.sif"].packages == [] and got["damaged.sif"].sbom_format == "cyclonedx-json"
    assert got["damaged.sif"].arch == "amd64"  # the identity is still read
    assert got["plain.sif"].packages == [("tool", "")]  # no key package: the first few
    assert not got["not-a-sif"].readable and got["not-a-sif"].label == "not-a-sif"


def test_a_damaged_bundle_gets_its_page_listing_the_problem_and_a_failing_exit(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle, _ = differing(tmp_path)
    raw = bundle.read_bytes()
    assert raw.count(b"recorded input") == 1  # the tiny input is stored as is
    bundle.write_bytes(raw.replace(b"recorded input", b"recorded Input"))
    r = cli("report", bundle, "-o", tmp_path / "r.html")
    assert r.rc == 4 and len(r.err_lines) == 1 and "listed in" in r.err
    text = Page((tmp_path / "r.html").read_text()).all_text()
    assert "PROBLEMS" in text and "digest" in text
    r = cli("show", bundle, "--html", tmp_path / "s.html", "--json")
    assert r.rc == 4 and json.loads(r.out)["id"]
