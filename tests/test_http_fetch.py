"""`fetch_bytes` against the local test server: what is retried, what is not, and how long a dead URL can cost."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from theworld.data.http_fetch import (
    BAD_URL,
    CONNECTION_ERROR,
    INCOMPLETE_READ,
    SHA256_MISMATCH,
    TIMEOUT,
    TOO_LARGE,
    FetchError,
    fetch_bytes,
    fetch_to_file,
    final_name_of_temp,
    map_unordered,
    temp_path_for,
)
from theworld.data.skips import BadRecord
from theworld.testing.http_server import LocalHTTPServer, Route

BODY = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as running:
        yield running


def test_retries_a_500_then_succeeds(server: LocalHTTPServer) -> None:
    url = server.add("flaky.jpg", Route(body=BODY, failures=2))
    assert fetch_bytes(url, timeout=2, retries=3, backoff=0.01) == BODY
    assert server.requests("flaky.jpg") == 3


def test_gives_up_after_the_retries(server: LocalHTTPServer) -> None:
    url = server.add("broken.jpg", Route(body=BODY, failures=100))
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=2, retries=2, backoff=0.01)
    assert caught.value.reason == "http 500"
    assert server.requests("broken.jpg") == 3  # 1 + retries


@pytest.mark.parametrize("status", [404, 403])
def test_permanent_errors_are_not_retried(server: LocalHTTPServer, status: int) -> None:
    url = server.add("gone.jpg", Route(body=b"no", status=status))
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=2, retries=5, backoff=0.01)
    error = caught.value
    assert isinstance(error, BadRecord)
    assert error.reason == f"http {status}"
    assert server.requests("gone.jpg") == 1
    message = str(error)
    assert url in message and "\n" not in message


SLOW = {
    "headers": Route(body=BODY, delay=30),
    "body": Route(body=BODY, stall=30),
    "trickle": Route(body=BODY, stall=0.1, pieces=100),
}


@pytest.mark.parametrize("slow", list(SLOW.values()), ids=list(SLOW))
def test_a_slow_url_costs_about_timeout_times_attempts(server: LocalHTTPServer, slow: Route) -> None:
    url = server.add("slow.jpg", slow)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=0.3, retries=1, backoff=0.05)
    elapsed = time.monotonic() - started
    assert caught.value.reason == TIMEOUT
    assert server.requests("slow.jpg") == 2
    assert 0.6 <= elapsed < 2.0  # 2 attempts x 0.3 s + one short backoff, far below the 30 s delay


def test_an_aborted_body_is_retried(server: LocalHTTPServer) -> None:
    url = server.add("cut.jpg", Route(body=BODY, failures=1, failure="abort"))
    assert fetch_bytes(url, timeout=2, retries=2, backoff=0.01) == BODY
    assert server.requests("cut.jpg") == 2


def test_an_always_aborted_body_fails_as_incomplete(server: LocalHTTPServer) -> None:
    url = server.add("cut.jpg", Route(body=BODY, failures=100, failure="abort"))
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=2, retries=1, backoff=0.01)
    assert caught.value.reason == INCOMPLETE_READ
    assert server.requests("cut.jpg") == 2


def test_sha256_is_verified(server: LocalHTTPServer) -> None:
    url = server.add_file("pic.jpg", BODY)
    good = hashlib.sha256(BODY).hexdigest()
    assert fetch_bytes(url, timeout=2, retries=0, expected_sha256=good.upper()) == BODY
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=2, retries=3, backoff=0.01, expected_sha256=hashlib.sha256(b"other").hexdigest())
    assert caught.value.reason == SHA256_MISMATCH
    assert server.requests("pic.jpg") == 2  # a mismatch is not retried: the content itself changed


def test_max_bytes_refuses_a_huge_body(server: LocalHTTPServer) -> None:
    url = server.add_file("huge.jpg", BODY)
    with pytest.raises(FetchError) as caught:
        fetch_bytes(url, timeout=2, retries=2, max_bytes=1000)
    assert caught.value.reason == TOO_LARGE
    assert server.requests("huge.jpg") == 1


def test_refused_connection_and_bad_url() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        fetch_bytes(f"http://127.0.0.1:{port}/x.jpg", timeout=1, retries=1, backoff=0.01)
    assert caught.value.reason == CONNECTION_ERROR
    with pytest.raises(FetchError) as caught:
        fetch_bytes("not a url", timeout=1, retries=3)
    assert caught.value.reason == BAD_URL


def test_fetch_to_file_places_only_verified_files(server: LocalHTTPServer, tmp_path: Path) -> None:
    url = server.add_file("pic.jpg", BODY)
    final = fetch_to_file(url, tmp_path / "pic.jpg", timeout=2, retries=0)
    assert final.read_bytes() == BODY

    def refuse(path: Path) -> None:
        raise BadRecord("corrupt image", f"{path}: refused")

    with pytest.raises(BadRecord):
        fetch_to_file(url, tmp_path / "other.jpg", verify=refuse, timeout=2, retries=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.jpg"]  # no final name, no temp left behind
    assert final_name_of_temp(temp_path_for(tmp_path / "a.jpg").name) == "a.jpg"
    assert final_name_of_temp("a.jpg") is None


def slow_double(x: int) -> int:
    time.sleep(0.2)
    return 2 * x


def test_map_unordered_runs_in_parallel_and_stops_early() -> None:
    started = time.monotonic()
    results = {item: future.result() for item, future in map_unordered(slow_double, range(8), workers=8)}
    assert results == {i: 2 * i for i in range(8)}
    assert time.monotonic() - started < 1.0  # 8 x 0.2 s in parallel, not 1.6 s in a row
    consumed: list[int] = []

    def numbers() -> Iterator[int]:
        for i in range(10_000):
            consumed.append(i)
            yield i

    stream = map_unordered(lambda x: x, numbers(), workers=2, max_in_flight=4)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert len(first) == 3 and len(consumed) <= 8  # lazily consumed: bounded in flight
