"""Fetch pictures over HTTP without ever hanging or crashing a loader: bounded time, bounded retries, one-line errors.

`fetch_bytes(url, ...)` downloads one body with stdlib `urllib`: a per-attempt time budget (`timeout`), a size guard
(`max_bytes`), optional sha256 verification, and retries with exponential backoff on what may pass (timeouts, refused
or reset connections, 5xx/429, bodies cut short) but not on what will not (404/403/410, DNS names that do not exist,
bad URLs, sha mismatches). Every failure is a `FetchError` (a `BadRecord`) whose `reason` is short and countable
("http 404", "timeout", ...) and whose message is one line naming the URL.

`fetch_to_file` places a fetched body under its final name atomically, after an optional check (e.g. a full decode);
`map_unordered` runs fetches on a thread pool with a bounded number in flight, so one dead URL's timeout does not
stall the others and a 1.7M-item list never becomes 1.7M futures.

[Contract] a file under its final name is complete and was verified: bodies are written to a temporary file in the
same folder (`.<name>.<random>.part`), fsync'ed, verified, then `os.replace`d — a killed process leaves only temps.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import os
import random
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from theworld.data.skips import DOWNLOAD_FAILED, BadRecord

# Reasons (besides f"http {status}"); DataComp skip counts and OpenImages summaries are keyed by them.
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"
DNS_ERROR = "dns error"
INCOMPLETE_READ = "incomplete read"
TOO_LARGE = "too large"
SHA256_MISMATCH = "sha256 mismatch"
BAD_URL = "bad url"

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # far above any real photo; stops a misconfigured server streaming forever
TEMP_SUFFIX = ".part"
_CHUNK = 64 * 1024
_MAX_BACKOFF = 30.0
# Status codes worth another try: the server is overloaded or briefly broken, not saying the file is gone.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("theworld")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    # Some image hosts refuse urllib's default "Python-urllib/3.x"; name the client honestly instead.
    return f"theworld/{version} (image data loader; Python urllib)"


USER_AGENT = _user_agent()


class FetchError(BadRecord):
    """A URL that could not be fetched; `reason` is short ("http 404", "timeout", ...), the message one line."""

    def __init__(self, reason: str, message: str, url: str = "") -> None:
        super().__init__(reason, message)
        self.url = url


class _Attempt(Exception):
    """One failed attempt: `reason`, `detail`, and whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retry: bool) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry = retry


def _read_body(response: http.client.HTTPResponse, deadline: float, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    expected = int(declared) if declared and declared.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise _Attempt(TOO_LARGE, f"Content-Length {expected} exceeds max_bytes={max_bytes}", retry=False)
    parts: list[bytes] = []
    size = 0
    while True:
        # Socket reads time out after `timeout` each; the deadline also bounds a server that trickles bytes.
        if time.monotonic() > deadline:
            raise _Attempt(TIMEOUT, "the body took longer than the timeout", retry=True)
        chunk = response.read1(_CHUNK)  # read1: one socket read, so the deadline is checked between them
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise _Attempt(TOO_LARGE, f"the body exceeds max_bytes={max_bytes}", retry=False)
        parts.append(chunk)
    # http.client's chunked read(amt) does not raise when the connection closes early: compare with the header.
    if expected is not None and size != expected:
        raise _Attempt(INCOMPLETE_READ, f"got {size} of {expected} bytes", retry=True)
    return b"".join(parts)


def _classify_url_error(error: urllib.error.URLError) -> _Attempt:
    cause = error.reason
    if isinstance(cause, TimeoutError):
        return _Attempt(TIMEOUT, f"no answer within the timeout ({cause})", retry=True)
    if isinstance(cause, socket.gaierror):
        # A name that does not resolve is a dead domain (common in web-scraped lists); EAI_AGAIN is a DNS hiccup.
        return _Attempt(DNS_ERROR, f"cannot resolve the host ({cause})", retry=cause.errno == socket.EAI_AGAIN)
    if isinstance(cause, OSError):
        return _Attempt(CONNECTION_ERROR, f"cannot connect ({cause})", retry=True)
    return _Attempt(DOWNLOAD_FAILED, str(cause), retry=False)  # e.g. an unsupported redirect or TLS setup error


def _attempt(url: str, timeout: float, max_bytes: int) -> bytes:
    deadline = time.monotonic() + timeout
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _read_body(response, deadline, max_bytes)
    except urllib.error.HTTPError as error:  # before URLError: it is a subclass
        return_code = error.code
        error.close()
        raise _Attempt(
            f"http {return_code}", f"HTTP {return_code} {error.reason}", retry=return_code in _RETRY_STATUS
        ) from None
    except urllib.error.URLError as error:
        raise _classify_url_error(error) from None
    except TimeoutError as error:
        raise _Attempt(TIMEOUT, f"no data within the timeout ({error})", retry=True) from None
    except http.client.IncompleteRead as error:
        raise _Attempt(INCOMPLETE_READ, f"the connection closed early ({error!r})", retry=True) from None
    except (http.client.HTTPException, ConnectionError) as error:
        raise _Attempt(CONNECTION_ERROR, f"{type(error).__name__}: {error}", retry=True) from None
    except OSError as error:  # e.g. a TLS error during the read
        raise _Attempt(CONNECTION_ERROR, f"{type(error).__name__}: {error}", retry=True) from None
    except ValueError as error:  # "unknown url type", malformed URL
        raise _Attempt(BAD_URL, str(error), retry=False) from None


def fetch_bytes(
    url: str,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expected_sha256: str | None = None,
) -> bytes:
    """The body of `url`, or `FetchError`. At most `retries + 1` attempts.

    An attempt gives up after `timeout` s without data, and once `timeout` s have passed since its request (checked
    between reads), so one lasts at most about 2 x `timeout` even against a server that trickles bytes. Waits
    `backoff * 2**k` s (jittered, capped at 30 s) before retry k + 1. With `expected_sha256` (hex), a body whose
    digest differs is refused with reason `SHA256_MISMATCH` (not retried: the content itself changed).
    """
    if timeout <= 0 or retries < 0 or backoff < 0:
        raise ValueError(
            f"fetch_bytes: expected timeout > 0, retries >= 0, backoff >= 0; got {timeout}, {retries}, {backoff}"
        )
    attempts = retries + 1
    for attempt in range(attempts):
        try:
            data = _attempt(url, timeout, max_bytes)
        except _Attempt as failure:
            if not failure.retry or attempt + 1 == attempts:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                detail = " ".join(failure.detail.split())  # one line, whatever the server or OS said
                raise FetchError(failure.reason, f"{url}: {detail}{tries}", url) from None
            # Jitter keeps many workers that failed together from retrying in lockstep.
            time.sleep(min(backoff * 2**attempt, _MAX_BACKOFF) * random.uniform(0.75, 1.0))
            continue
        if expected_sha256:
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected_sha256.strip().lower():
                raise FetchError(SHA256_MISMATCH, f"{url}: sha256 {digest} != expected {expected_sha256}", url)
        return data
    raise AssertionError("unreachable")  # the loop returns or raises


def temp_path_for(final: Path) -> Path:
    """A fresh temporary name beside `final`: `.<name>.<random>.part` (hidden, never matching `*.jpg`)."""
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def final_name_of_temp(name: str) -> str | None:
    """The final file name a `temp_path_for` name belongs to, or None for any other name."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    stem = name[1 : -len(TEMP_SUFFIX)]
    final, dot, token = stem.rpartition(".")
    return final if dot and final and len(token) == 8 else None


def write_atomic(final: Path, data: bytes, verify: Callable[[Path], object] | None = None) -> Path:
    """Write `data` to a temp file beside `final`, fsync, run `verify(temp)` (raising to refuse), then rename.

    The temp file is removed on any failure, so `final` either does not exist or holds verified `data`.
    """
    temp = temp_path_for(final)
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes reach the disk before the name does
        if verify is not None:
            verify(temp)
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)  # a no-op after the rename
    return final


def fetch_to_file(
    url: str,
    final: Path,
    verify: Callable[[Path], object] | None = None,
    *,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expected_sha256: str | None = None,
) -> Path:
    """`fetch_bytes(url, ...)` then `write_atomic(final, body, verify)`; returns `final`."""
    data = fetch_bytes(url, timeout, retries, backoff, max_bytes, expected_sha256)
    return write_atomic(final, data, verify)


T = TypeVar("T")
R = TypeVar("R")


def map_unordered(
    fn: Callable[[T], R], items: Iterable[T], workers: int, max_in_flight: int | None = None
) -> Generator[tuple[T, Future[R]], None, None]:
    """Run `fn(item)` on `workers` threads; yield `(item, finished future)` in completion order.

    At most `max_in_flight` (default 2 x workers) calls are queued or running; `items` is consumed lazily. Closing
    the generator early cancels what has not started and does not wait for running calls (each is bounded by its
    own timeout), so a consumer that stops at `num_samples` is not held up by a slow URL.
    """
    if workers < 1:
        raise ValueError(f"map_unordered: workers must be >= 1, got {workers}")
    limit = max(max_in_flight or 2 * workers, 1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    pending: dict[Future[R], T] = {}
    try:
        for item in items:
            if len(pending) >= limit:
                yield from _take_done(pending)
            pending[pool.submit(fn, item)] = item
        while pending:
            yield from _take_done(pending)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _take_done(pending: dict[Future[R], T]) -> Iterator[tuple[T, Future[R]]]:
    """Wait for at least one of `pending` to finish; remove and yield the finished ones."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        yield pending.pop(future), future
