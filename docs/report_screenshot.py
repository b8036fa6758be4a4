#!/usr/bin/env python3
"""Make docs/report.png, the README's picture of `capsa report`: the top of the page the demo
writes (demo-out/km3net/report.html, made by `sh scripts/demo.sh`), rendered by headless Chromium
through the same DevTools client the browser tests use.

    python docs/report_screenshot.py [PAGE.html] [-o docs/report.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "views"))
from cdp_browser import Browser  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("page", nargs="?", type=Path, default=ROOT / "demo-out/km3net/report.html")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs/report.png")
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=1250)
    args = ap.parse_args()
    if not args.page.is_file():
        print(f"{args.page}: no such page (run sh scripts/demo.sh first)", file=sys.stderr)
        return 1
    browser = Browser.start(width=args.width, height=args.height)
    try:
        load = browser.load(args.page)
        if load.console_errors or load.requests != [args.page.resolve().as_uri()]:
            print(f"the page is not self-contained: {load}", file=sys.stderr)
            return 1
        browser.screenshot(args.output, max_height=args.height)
    finally:
        browser.close()
    print(f"{args.output}: {args.output.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
