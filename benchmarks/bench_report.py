#!/usr/bin/env python3
"""How long `capsa report` takes, and how long its page takes to render in a real browser, for a
synthetic production of N steps (default 1,000: ``align/call/stats[sample=…]`` and a merge).

    python benchmarks/bench_report.py [--steps 1000] [--repeat 3] [--workdir DIR] [--json OUT]

The bundle is made with capsa.pack and synthetic steps (tests/views/report_bundles.py), with a
replay report that marks every tenth ``stats`` output different. `capsa report` runs as its own
process (both layouts: Graphviz dot and the built-in one); each page is loaded in headless
Chromium over the DevTools protocol (tests/views/cdp_browser.py) and timed from Page.navigate to
the load event, plus the first contentful paint the browser reports. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "views"))
from cdp_browser import Browser  # noqa: E402
from report_bundles import production  # noqa: E402

import capsa  # noqa: E402


def replay_doc(bundle: Path) -> dict[str, object]:
    """A replay report of ``bundle``: identical everywhere but every tenth ``stats`` output."""
    with capsa.open(bundle) as b:
        steps = []
        for k, s in enumerate(b.manifest.steps):
            outs = []
            for o in s.outputs:
                bad = s.name.startswith("stats[") and k % 30 == 2
                detail = {"count": 7, "elements": 1000, "first": [[3], [250], [900]],
                          "max_abs": 0.25, "max_rel": 1e-3}  # fmt: skip
                outs.append({
                    "path": o.path, "verdict": "different" if bad else "identical",
                    "expected": o.digest, "found": o.digest, "policy": "hdf5",
                    "differences": [{"path": "/energy", "kind": "data", "detail": detail,
                                     "summary": "data /energy: 7 of 1000 elements differ"}]
                    if bad else [], "ignored": [], "note": "",
                })  # fmt: skip
            steps.append({"name": s.name, "status": "ok", "exit_code": 0, "outputs": outs})
        return {"bundle": str(bundle), "bundle_id": b.id, "runtime": "bwrap",
                "runtime_version": "0.8.0", "mode": "chain", "steps": steps}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="capsa-bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    samples = max(1, (args.steps - 1) // 3)
    t0 = time.monotonic()
    bundle = production(work, samples, title=f"synthetic production, {3 * samples + 1} steps")
    made = time.monotonic() - t0
    (work / "replay.json").write_text(json.dumps(replay_doc(bundle)))
    results: dict[str, object] = {"steps": 3 * samples + 1, "bundle_seconds": round(made, 2)}
    browser = Browser.start()
    try:
        for layout in ("dot", "builtin"):
            page = work / f"report-{layout}.html"
            times, loads, paints = [], [], []
            for _ in range(args.repeat):
                t0 = time.monotonic()
                subprocess.run(
                    [sys.executable, "-m", "capsa", "report", str(bundle), "-q", "--force",
                     "--replay", str(work / "replay.json"), "--layout", layout, "-o", str(page)],
                    check=True,
                )  # fmt: skip
                times.append(time.monotonic() - t0)
                load = browser.load(page)
                assert not load.console_errors, load.console_errors
                assert load.requests == [page.resolve().as_uri()], load.requests
                loads.append(load.seconds)
                fcp = browser.evaluate(
                    "(performance.getEntriesByName('first-contentful-paint')[0]||{}).startTime||0"
                )
                paints.append(float(fcp) / 1000)
            results[layout] = {
                "report_seconds": round(statistics.median(times), 2),
                "html_bytes": page.stat().st_size,
                "load_seconds": round(statistics.median(loads), 3),
                "first_contentful_paint_seconds": round(statistics.median(paints), 3),
                "nodes": browser.evaluate("document.querySelectorAll('svg.lineage .node').length"),
            }
    finally:
        browser.close()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"pages in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
