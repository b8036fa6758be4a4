"""A real headless Chromium driven over the Chrome DevTools Protocol (a websocket on 127.0.0.1),
for the report tests and benchmarks/bench_report.py: load a page, record every console message,
exception and network request, evaluate expressions, take screenshots, print to PDF.

Started with a fresh profile and everything that would reach the network switched off; stopped
(and its profile removed) by ``close``. ``Browser.start`` raises ``BrowserUnavailable`` with the
reason when Chromium or the websocket client is missing or does not come up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI; the page is our own file
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class BrowserUnavailable(Exception):
    """Chromium (or the websocket client) cannot be started here; the message says why."""


@dataclass
class PageLoad:
    url: str
    seconds: float
    """From Page.navigate to the load event, measured here."""
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """URL of every network request the page made (its own file:// URL included)."""


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], profile: Path, ws: Any) -> None:
        self.proc, self.profile, self.ws = proc, profile, ws
        self._id = 0
        self.events: list[dict[str, Any]] = []

    @classmethod
    def start(cls, width: int = 1200, height: int = 900, timeout: float = 90.0) -> Browser:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise BrowserUnavailable("chromium is not installed (Debian package chromium)")
        try:
            import websocket
        except ImportError as e:
            raise BrowserUnavailable("the websocket-client package is not installed") from e
        profile = Path(tempfile.mkdtemp(prefix="capsa-chromium-"))
        proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = cls._port(proc, profile, timeout)
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout)
        except BaseException as e:
            _stop(proc)
            shutil.rmtree(profile, ignore_errors=True)
            if isinstance(e, BrowserUnavailable):
                raise
            raise BrowserUnavailable(f"chromium did not come up: {e!r}") from e
        b = cls(proc, profile, ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.send(f"{domain}.enable")
        b.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return b

    @staticmethod
    def _port(proc: subprocess.Popen[bytes], profile: Path, timeout: float) -> int:
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrowserUnavailable(f"chromium exited with code {proc.returncode}")
            if marker.is_file():
                first = marker.read_text().splitlines()[:1]
                if first and first[0].isdigit():
                    return int(first[0])
            time.sleep(0.05)
        raise BrowserUnavailable(f"chromium did not open its DevTools port in {timeout} s")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method`` and return its result; events that arrive meanwhile are kept."""
        self._id += 1
        me = self._id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for k, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(k)
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return dict(msg)
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"no {method} within {timeout} s")

    def load(self, path: Path, timeout: float = 60.0) -> PageLoad:
        """Navigate to ``path`` (file://) and wait for its load event."""
        url = path.resolve().as_uri()
        self.events.clear()
        started = time.monotonic()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout)
        seconds = time.monotonic() - started
        self.evaluate("document.body.getBoundingClientRect().height")  # settle layout
        load = PageLoad(url, seconds)
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Network.requestWillBeSent":
                load.requests.append(p["request"]["url"])
            elif ev["method"] == "Runtime.exceptionThrown":
                load.console_errors.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in (
                "error",
                "assert",
            ):
                load.console_errors.append(json.dumps(p.get("args", []))[:500])
            elif ev["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                load.console_errors.append(p["entry"].get("text", "")[:500])
        return load

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, out: Path, *, full_page: bool = False, max_height: int = 0) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page or max_height:
            height = self.evaluate("document.documentElement.scrollHeight")
            width = self.evaluate("document.documentElement.clientWidth")
            if max_height:
                height = min(height, max_height)
            params |= {
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                "captureBeyondViewport": True,
            }
        out.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))
        return out

    def print_pdf(self) -> bytes:
        return base64.b64decode(self.send("Page.printToPDF", printBackground=True)["data"])

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            _stop(self.proc)
            shutil.rmtree(self.profile, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the browser we started, and its helpers (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
