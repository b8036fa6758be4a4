"""A small threaded HTTP/1.1 file server on 127.0.0.1 that does range requests the way nginx
does (one range, ETag and Last-Modified from the file's mtime and size, If-Match) and can be
told to misbehave: 503s, truncated bodies, no range support, a wrong range, a lying
Content-Length, a redirect to another host. It counts requests and body bytes. Used by the
tests (tests/storage/) and benchmarks/bench_remote.py."""

from __future__ import annotations

import email.utils
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Faults:
    fail: int = 0  # answer the next N requests with 503
    truncate: int = 0  # cut the next N bodies short (Content-Length stays the full length)
    no_ranges: bool = False  # ignore Range, answer 200 with the whole file
    wrong_range: bool = False  # serve one byte later than asked, saying so in Content-Range
    short_length: bool = False  # Content-Length and body one byte short of the range
    moved: dict[str, str] = field(default_factory=dict)  # path → Location of a 302
    status: int | None = None  # answer every request with this status and no body


class RangeServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.requests = 0
        self.bytes_sent = 0
        self.ranges: list[str] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, *, head: bool) -> None:
                try:
                    self._answer(head=head)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client hung up (as it should, on a 200)

            def _answer(self, *, head: bool) -> None:
                f = server.faults
                with server._lock:
                    server.requests += 1
                    server.ranges.append(self.headers.get("Range", ""))
                    server.paths.append(self.path)
                    fail = f.fail > 0
                    f.fail -= fail
                    truncate = f.truncate > 0 and not fail
                    f.truncate -= truncate
                if fail:
                    return self._empty(503)
                if f.status is not None:
                    return self._empty(f.status)
                if self.path in f.moved:
                    self.send_response(302)
                    self.send_header("Location", f.moved[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                path = server.root / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    return self._empty(404)
                st = path.stat()
                etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
                if (m := self.headers.get("If-Match")) and m != etag:
                    return self._empty(412)
                size = st.st_size
                start, end, status = 0, size - 1, 200
                rng = _RANGE.match(self.headers.get("Range", ""))
                if rng and not f.no_ranges:
                    a, b = rng.groups()
                    if a == "":
                        start, end = max(size - int(b), 0), size - 1
                    else:
                        start, end = int(a), min(int(b) if b else size - 1, size - 1)
                    if start > end or start >= size:
                        return self._empty(416)
                    status = 206
                if f.wrong_range and status == 206 and end + 1 < size:
                    start, end = start + 1, end + 1
                length = end - start + 1
                self.send_response(status)
                self.send_header("Accept-Ranges", "none" if f.no_ranges else "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                declared = length - 1 if f.short_length else length
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                if head:
                    return None
                todo = declared // 2 if truncate else declared
                with path.open("rb") as fh:
                    fh.seek(start)
                    while todo > 0:
                        chunk = fh.read(min(todo, 1 << 20))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        todo -= len(chunk)
                        with server._lock:
                            server.bytes_sent += len(chunk)
                if truncate:
                    self.close_connection = True
                return None

            def _empty(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{name}"

    def reset(self) -> None:
        with self._lock:
            self.requests, self.bytes_sent, self.ranges, self.paths = 0, 0, [], []
            self.faults = Faults()

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


def replace(path: Path, data: bytes) -> None:
    """New content with a new mtime (so a new ETag), as an upload would leave it."""
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
