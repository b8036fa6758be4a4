"""The report page in a real headless Chromium (Debian package chromium), driven over the DevTools
protocol: it loads from file:// with no console error and no network request, its key elements
are there and visible, it prints, and a hostile bundle's markup stays text. Skips with the reason
when Chromium cannot start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cdp_browser import Browser, BrowserUnavailable
from report_bundles import HOSTILE, differing, hostile_bundle, hostile_replay, production

from capsa.signing.keys import keygen

VISIBLE = """(sel) => {
  const el = document.querySelector(sel);
  if (!el) return 'missing';
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
    ? 'visible' : 'hidden';
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        b = Browser.start()
    except BrowserUnavailable as first:
        if "not installed" in str(first):
            pytest.skip(f"headless Chromium cannot start here: {first} (CI installs chromium)")
        try:  # a slow first start on a loaded machine: once more before giving up
            b = Browser.start()
        except BrowserUnavailable as e:
            pytest.skip(f"headless Chromium cannot start here: {e} (first try: {first})")
    try:
        yield b
    finally:
        b.close()


def visible(browser: Browser, selector: str) -> str:
    return str(browser.evaluate(f"({VISIBLE})({json.dumps(selector)})"))


def test_the_page_loads_offline_without_errors_and_shows_its_parts(
    browser: Browser,
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    priv, pub, keyid = keygen(tmp_path / "alice")
    bundle, doc = differing(tmp_path)
    import capsa

    capsa.sign_bundle(bundle, [capsa.load_private_key(priv)])
    (tmp_path / "replay.json").write_text(json.dumps(doc))
    page = tmp_path / "report.html"
    r = cli("report", bundle, "--key", pub, "--replay", tmp_path / "replay.json", "-o", page)
    assert r.rc == 0, r.err
    load = browser.load(page)
    assert load.console_errors == []
    assert load.requests == [page.resolve().as_uri()]  # the page itself, nothing else
    for sel in (
        "#title",
        "#signatures + table",
        ".banner",
        "svg.lineage",
        "svg.lineage .node",
        "#replay table",
        "svg.plot.bars",
        "svg.plot.series",
        "#step-0",
        "#image-0",
        "#reproduce pre",
    ):
        assert visible(browser, sel) == "visible", sel
    text = browser.evaluate("document.body.innerText")
    assert "valid, trusted" in text and keyid in text and "Not reproduced: 1 different" in text
    assert browser.evaluate("document.querySelectorAll('svg.lineage .node').length") == 3
    # A step node links to its card; the link is in the page, nothing to fetch.
    assert browser.evaluate("document.querySelector('svg.lineage a').getAttribute('href')") == (
        "#step-0"
    )
    shot = browser.screenshot(tmp_path / "report.png", full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    pdf = browser.print_pdf()
    assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page") >= 2


def test_a_hostile_bundle_renders_its_markup_as_text(
    browser: Browser,
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    b = hostile_bundle(tmp_path)
    (tmp_path / "replay.json").write_text(json.dumps(hostile_replay(b)))
    page = tmp_path / "hostile.html"
    assert cli("report", b, "--replay", tmp_path / "replay.json", "-o", page).rc == 0
    load = browser.load(page)
    assert load.console_errors == [] and load.requests == [page.resolve().as_uri()]
    assert browser.evaluate("document.querySelectorAll('script, img, iframe, object').length") == 0
    assert browser.evaluate("document.title") == f"{HOSTILE} — capsa report"  # not "pwned"
    assert browser.evaluate("document.getElementById('title').textContent") == HOSTILE
    with_handlers = browser.evaluate(
        "[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
        ".some(a => a.name.startsWith('on'))).length"
    )
    assert with_handlers == 0
    text = browser.evaluate("document.body.innerText")
    assert text.count("<script>") >= 8  # title, author, step name, argv, paths, replay strings…
    assert visible(browser, "svg.lineage .node") == "visible"


def test_the_harness_sees_script_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    """The two assertions above can fail: a page that throws and fetches is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><p>x</p><img src="missing.png"><script>throw new Error("boom")</script>'
    )
    load = browser.load(bad)
    assert any("boom" in e for e in load.console_errors)
    assert any(u.endswith("/missing.png") for u in load.requests)


def test_a_production_of_hundreds_of_steps_renders_folded(
    browser: Browser,
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    bundle = production(tmp_path, 100)  # 301 steps; benchmarks/bench_report.py times 1,000
    page = tmp_path / "big.html"
    assert cli("report", bundle, "-o", page).rc == 0
    load = browser.load(page)
    assert load.console_errors == [] and load.requests == [page.resolve().as_uri()]
    assert browser.evaluate("document.querySelectorAll('svg.lineage .node').length") == 9
    assert visible(browser, "#group-0") == "visible" and visible(browser, "#step-300") == "visible"
    assert browser.evaluate("document.querySelectorAll('tr[id^=step-]').length") == 300
