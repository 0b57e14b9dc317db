"""A scripted OpenAI-compatible `/v1/chat/completions` server on 127.0.0.1, for testing the LLM judge offline.

Each POST gets a `StubReply`: the first `rules` entry whose marker occurs in the request's message texts, else the
next of the scripted `replies` (in arrival order), else `default`. A reply is a chat completion carrying `content`
(good JSON, malformed JSON, JSON without a key: whatever the test writes), an HTTP error `status`, a raw `body`
that is not a chat completion, and/or a `delay` before answering (longer than the client's timeout). Every request
is recorded (`requests`: path, headers, parsed JSON body), so tests can check the Authorization header.
Use it as a context manager; `base_url` ends in "/v1" like the real API's.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class StubReply:
    """What the stub answers to one request (see the module docstring)."""

    content: str | None = None
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0


def json_reply(value: Any, delay: float = 0.0) -> StubReply:
    """A completion whose content is `value` as JSON."""
    return StubReply(content=json.dumps(value), delay=delay)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    text: str = ""  # the request's message contents, joined

    @property
    def authorization(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), None)


@dataclass
class StubOpenAI:
    """The stub server (see the module docstring)."""

    replies: Sequence[StubReply] = ()
    rules: Sequence[tuple[str, StubReply]] = ()
    default: StubReply | None = None
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[StubReply] = deque(self.replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("StubOpenAI: start() it first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> StubOpenAI:
        server = _Server(("127.0.0.1", 0), _handler_class(self))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="stub-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends delays early
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubOpenAI:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _choose(self, text: str) -> StubReply:
        with self._lock:
            for marker, reply in self.rules:
                if marker in text:
                    return reply
            if self._queue:
                return self._queue.popleft()
        return self.default if self.default is not None else StubReply(status=500)

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        messages = body.get("messages", []) if isinstance(body, dict) else []
        text = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        with self._lock:
            self.requests.append(RecordedRequest(handler.path, dict(handler.headers.items()), body, text))
        reply = self._choose(text)
        if reply.delay and self._stopping.wait(reply.delay):
            return
        if reply.body is not None or reply.status != 200:
            _send(handler, reply.status, reply.body if reply.body is not None else b'{"error": "stub"}')
            return
        completion = {
            "id": f"chatcmpl-stub-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model") if isinstance(body, dict) else None,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}
            ],
        }
        _send(handler, 200, json.dumps(completion).encode("utf-8"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still in its delay must not keep the test process alive
    request_queue_size = 64


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _handler_class(stub: StubOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                stub._respond(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
