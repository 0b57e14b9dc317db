"""A local HTTP server for the download tests: in-memory files on 127.0.0.1 with per-path failure modes.

Real image hosts fail in a few recurring ways; each `Route` reproduces one of them:

* missing: `status=404` (or any status; a path never added is a 404 too);
* flaky: `failures=k` — the first k requests get a 500, later ones the file;
* slow: `delay=s` — wait s seconds before answering (longer than the client's timeout); `stall=s` — pause s
  seconds in the middle of the body (a download in progress), or between each of `pieces` parts (trickling);
* aborted: `failures=k, failure="abort"` — send the headers with the full Content-Length, then half the body, then
  close the connection (a body cut short; `failures` large = always);
* HTML instead of a picture, or bytes other than the metadata's sha256: just the `body` a route is given.

`requests(path)` counts the requests a path received (resumption tests check that finished files are not fetched
again). The server runs in a thread; use it as a context manager. Delays end early when the server stops.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Moved</title></head><body>This image has moved.</body></html>"


@dataclass
class Route:
    """What one path serves, and how it fails."""

    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    delay: float = 0.0  # seconds before answering, on every request
    stall: float = 0.0  # seconds to pause between the `pieces` of the body (a download in progress)
    pieces: int = 2  # with `stall`: the body is sent in this many parts (many parts = a server trickling bytes)
    failures: int = 0  # the first `failures` requests fail as `failure` says
    failure: Literal["500", "abort"] = "500"


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving `Route`s; see the module docstring."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routes -----------------------------------------------------------------------------------------------------
    def add(self, path: str, route: Route) -> str:
        """Serve `route` at `path` (leading "/" optional); returns its full URL."""
        path = "/" + path.lstrip("/")
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def add_file(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        return self.add(path, Route(body=body, content_type=content_type))

    def add_html(self, path: str) -> str:
        """A web page where a picture was expected (a moved or expired image URL)."""
        return self.add(path, Route(body=HTML_PAGE, content_type="text/html; charset=utf-8"))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def requests(self, path: str) -> int:
        """How many requests `path` has received so far."""
        with self._lock:
            return self._counts["/" + path.lstrip("/")]

    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    # -- lifecycle --------------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHTTPServer: start() it first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalHTTPServer:
        server = _Server(("127.0.0.1", 0), _handler_class(self))
        self._server = server
        self._stopping.clear()
        # A short poll interval: stop() returns within 50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="local-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers in a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- request handling (called from handler threads) ---------------------------------------------------------------
    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        with self._lock:
            self._counts[path] += 1
            number = self._counts[path]
            route = self._routes.get(path)
        if route is None:
            _send(handler, 404, b"not found", "text/plain")
            return
        if route.delay and self._stopping.wait(route.delay):
            return  # the server is stopping: drop the connection
        if number <= route.failures:
            if route.failure == "500":
                _send(handler, 500, b"internal error", "text/plain")
            else:  # promise the whole body, deliver half, hang up
                handler.send_response(200)
                handler.send_header("Content-Type", route.content_type)
                handler.send_header("Content-Length", str(len(route.body)))
                handler.end_headers()
                handler.wfile.write(route.body[: len(route.body) // 2])
                handler.wfile.flush()
                handler.close_connection = True
            return
        if route.stall:
            _send_in_pieces(handler, route, self._stopping)
        else:
            _send(handler, route.status, route.body, route.content_type)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not keep the test process alive
    # The default listen backlog (5) drops the SYNs of a burst of parallel clients, which then look like timeouts.
    request_queue_size = 128


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _send_in_pieces(handler: BaseHTTPRequestHandler, route: Route, stopping: threading.Event) -> None:
    handler.send_response(route.status)
    handler.send_header("Content-Type", route.content_type)
    handler.send_header("Content-Length", str(len(route.body)))
    handler.end_headers()
    pieces = max(route.pieces, 2)
    bounds = [len(route.body) * k // pieces for k in range(pieces + 1)]
    for k in range(pieces):
        if k and stopping.wait(route.stall):
            return  # the server is stopping: drop the connection
        handler.wfile.write(route.body[bounds[k] : bounds[k + 1]])
        handler.wfile.flush()


def _handler_class(server: LocalHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                server._respond(self)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler
