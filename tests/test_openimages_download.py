"""The OpenImages downloader against a local server: killed mid-run, resumed, failures reported, no partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripts.openimages.download_openimages import main

from theworld.data.http_fetch import temp_path_for
from theworld.data.image_files import open_image_file
from theworld.data.openimages import ImageRef, download_images, parse_shard, read_id_list, shard_refs
from theworld.testing.bad_images import write_image_case
from theworld.testing.http_server import LocalHTTPServer, Route

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "openimages" / "download_openimages.py"


def image_id(number: int) -> str:
    return f"{number:016x}"


def jpeg(tmp_path: Path, seed: int, size: int = 64) -> bytes:
    return write_image_case(tmp_path / "src" / f"{seed}.jpg", "rgb_jpeg", seed=seed, size=size).read_bytes()


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as running:
        yield running


def decodes(path: Path) -> bool:
    try:
        open_image_file(path)
    except ValueError:
        return False
    return True


def test_killed_run_leaves_no_partial_file_and_a_rerun_resumes(server: LocalHTTPServer, tmp_path: Path) -> None:
    ids = [image_id(n) for n in range(1, 31)]
    missing = image_id(999)
    for number, key in enumerate(ids):
        # Each body pauses halfway: a kill lands mid-download, when a non-atomic writer would leave half a file.
        route = Route(body=jpeg(tmp_path, number, size=256), stall=0.15)
        if number == 3:
            route.failures, route.failure = 1, "abort"  # a body cut short once: retried
        server.add(f"train/{key}.jpg", route)
    id_list = tmp_path / "ids.txt"
    id_list.write_text("# OpenImages ids\n\n" + "".join(f"train/{key}\n" for key in ids) + f"validation/{missing}\n")
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(SCRIPT),
        "--id-list",
        str(id_list),
        "--out-dir",
        str(out),
        "--base-url",
        server.base_url,
        "--retries",
        "2",
        "--timeout",
        "5",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}

    run = subprocess.Popen(
        [*command, "--workers", "2"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 90
    while len(list(out.glob("*.jpg"))) < 6 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    present = sorted(p.stem for p in out.glob("*.jpg"))
    assert 6 <= len(present) < len(ids)  # killed mid-run
    assert all(decodes(out / f"{key}.jpg") for key in present)  # no file under its final name is partial

    stale = temp_path_for(out / f"{ids[-1]}.jpg")
    stale.write_bytes(b"\xff\xd8 half a picture")  # what a killed run leaves behind
    foreign = temp_path_for(out / f"{image_id(5000)}.jpg")
    foreign.write_bytes(b"another shard is writing this")
    counts = {key: server.requests(f"train/{key}.jpg") for key in present}

    rerun = subprocess.run(
        [*command, "--workers", "4"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 1, rerun.stderr  # one picture is missing for good
    assert {key: server.requests(f"train/{key}.jpg") for key in present} == counts  # finished files: no request
    assert all(decodes(out / f"{key}.jpg") for key in ids)
    assert not (out / f"{missing}.jpg").exists()
    assert not stale.exists() and foreign.exists()  # our stale temp removed, another shard's left alone
    assert server.requests(f"validation/{missing}.jpg") == 1  # a 404 is not retried
    summary = json.loads((out / "openimages_summary.0of1.json").read_text())
    assert summary["failures_by_reason"] == {"http 404": 1}
    assert summary["first_failures"][0]["id"] == missing
    assert summary["already_present"] == len(present) and summary["downloaded"] == len(ids) - len(present)
    assert "http 404" in rerun.stdout and missing in rerun.stdout


def test_state_file_is_honoured_and_failures_are_retried(server: LocalHTTPServer, tmp_path: Path) -> None:
    a, b, c, d, e = (image_id(n) for n in (1, 2, 3, 4, 5))
    for key in (a, b, e):
        server.add_file(f"train/{key}.jpg", jpeg(tmp_path, int(key, 16)))
    server.add_html(f"train/{d}.jpg")  # a web page where the picture should be
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{e}.jpg").write_bytes(jpeg(tmp_path, 5))  # on disk already (an earlier run without a state file)
    state = tmp_path / "state.jsonl"
    state.write_text(json.dumps({"id": a, "status": "ok"}) + '\n{"id": "cut by a ki')  # a killed run's last line

    summary = download_images(
        [a, f"train/{b}", c, d, e],
        out,
        base_url=server.base_url,
        workers=2,
        retries=1,
        timeout=2,
        state_file=state,
        progress=False,
        backoff=0.01,
    )
    assert server.requests(f"train/{a}.jpg") == 0  # finished according to the state: not fetched, not checked
    assert server.requests(f"train/{e}.jpg") == 0  # a file under its final name is done
    assert (out / f"{b}.jpg").is_file()
    assert summary.by_reason() == {"http 404": 1, "corrupt image": 1}
    assert not summary.ok and summary.downloaded == 1 and summary.already_present == 2
    assert not (out / f"{d}.jpg").exists() and not list(out.glob(".*.part"))  # refused before the rename

    server.add_file(f"train/{c}.jpg", jpeg(tmp_path, 3))  # the 404 comes back
    again = download_images(
        [a, b, c, d],
        out,
        base_url=server.base_url,
        workers=2,
        retries=1,
        timeout=2,
        state_file=state,
        progress=False,
        backoff=0.01,
    )
    assert server.requests(f"train/{b}.jpg") == 1 and server.requests(f"train/{c}.jpg") == 2
    assert again.downloaded == 1 and list(again.failures) == [d]
    entries = [json.loads(line) for line in state.read_text().splitlines()[2:]]  # after the cut line
    assert [entry["status"] for entry in entries if entry["id"] == c] == ["failed", "ok"]
    assert [entry["status"] for entry in entries if entry["id"] == e] == ["ok"]  # recorded once found on disk


def test_script_exit_codes_and_one_line_errors(
    server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = image_id(7)
    server.add_file(f"validation/{key}.jpg", jpeg(tmp_path, 7))
    good = tmp_path / "good.txt"
    good.write_text(f"validation/{key}\n")
    out = tmp_path / "out"
    common = ["--out-dir", str(out), "--base-url", server.base_url, "--no-progress", "--timeout", "2"]
    assert main(["--id-list", str(good), *common]) == 0
    assert decodes(out / f"{key}.jpg")
    assert main(["--id-list", str(good), *common]) == 0 and server.requests(f"validation/{key}.jpg") == 1

    bad = tmp_path / "bad.txt"
    bad.write_text(f"train/{key}\n\nvalidation/not-hex!\n")
    capsys.readouterr()
    assert main(["--id-list", str(bad), *common]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{bad}:3:" in error and "not-hex!" in error
    assert main(["--id-list", str(tmp_path / "absent.txt"), *common]) == 2
    assert "no such id list" in capsys.readouterr().err
    assert main(["--id-list", str(good), "--shard", "2/2", *common]) == 2


def test_id_lists_and_shards(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(
        "# comment\ntrain/000a1249af2bc5f0\n\n000a1249af2bc5f1\ntest/000a1249af2bc5f2\ntrain/000a1249af2bc5f0\n"
    )
    refs = read_id_list(ids)
    assert refs == [
        ImageRef("train", "000a1249af2bc5f0"),
        ImageRef("train", "000a1249af2bc5f1"),
        ImageRef("test", "000a1249af2bc5f2"),
    ]  # bare ids get the default split; duplicates dropped
    many = [ImageRef("train", image_id(n)) for n in range(10)]
    shards = [shard_refs(many, *parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(ref for shard in shards for ref in shard) == sorted(many)
    assert sum(len(shard) for shard in shards) == len(many)
    for text in ("3/3", "1", "-1/2", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(text)
    ids.write_text("train/../../etc/passwd\n")
    with pytest.raises(ValueError, match=r"ids.txt:1: expected"):
        read_id_list(ids)
