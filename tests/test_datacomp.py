"""`DataCompDataset` on DataComp-format parquet whose URLs point at a local server with failing, slow and bad paths."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torch.utils.data import DataLoader

from theworld.data.datacomp import DEFAULT_PROMPT, DataCompDataset, materialize_datacomp
from theworld.data.skips import EMPTY_CONVERSATION
from theworld.testing.datacomp_fixtures import CASES, write_datacomp_fixture
from theworld.testing.http_server import LocalHTTPServer

FAST = {"timeout": 0.5, "retries": 1, "backoff": 0.01}  # a dead URL costs ~1 s, not DataComp's defaults
GOOD = ["rgb_jpeg", "grayscale", "cmyk_jpeg", "rgba_png", "palette_png", "gray16_png"]


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as running:
        yield running


def captions(examples: list[dict[str, Any]]) -> list[str]:
    return [example["messages"][1]["content"] for example in examples]


def test_serves_only_good_rows_and_counts_every_skip_by_reason(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path, server, [*CASES, "large_jpeg", "missing"], slow_delay=30)
    dataset = DataCompDataset(fixture.parquet, fetch_workers=8, **FAST)
    started = time.monotonic()
    examples = list(dataset)
    elapsed = time.monotonic() - started

    assert sorted(captions(examples)) == sorted(fixture.served_captions)
    assert dataset.skip_log.counts == fixture.expected_skips
    for reason in (
        "http 404",
        "timeout",
        "html page, not an image",
        "corrupt image",
        "sha256 mismatch",
        EMPTY_CONVERSATION,
        "incomplete read",
        "image too large",
    ):
        assert dataset.skip_log.counts[reason] >= 1, reason
    for example in examples:
        assert example["image"].mode == "RGB" and max(example["image"].size) <= 2048
        assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
        assert example["messages"][0]["content"] == DEFAULT_PROMPT
        assert "<image>" not in example["messages"][1]["content"]
    empty = next(row for row in fixture.rows if not row["text"])
    assert server.requests(fixture.paths[empty["uid"]]) == 0  # no request for a row that cannot be served
    # The slow URL answers after 30 s; the stream pays ~2 x 0.5 s for it, in parallel with the other fetches.
    assert elapsed < 6.0


def test_image_cache_is_reused_without_requests(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path / "meta", server, GOOD)
    cache = tmp_path / "cache"
    first = list(DataCompDataset(fixture.parquet, image_cache_dir=cache, **FAST))
    requests = server.total_requests()
    assert requests == len(GOOD)
    cached = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert cached == sorted(row["uid"] for row in fixture.rows)  # named by uid, no temp files left

    second = list(DataCompDataset(fixture.parquet, image_cache_dir=cache, **FAST))
    assert server.total_requests() == requests  # the second pass made no request at all
    assert sorted(captions(second)) == sorted(captions(first))
    sizes = {c: e["image"].size for c, e in zip(captions(first), first, strict=True)}
    assert all(sizes[c] == e["image"].size for c, e in zip(captions(second), second, strict=True))


def test_num_samples_stops_the_stream(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path, server, ["rgb_jpeg"] * 20)
    examples = list(DataCompDataset(fixture.parquet, num_samples=4, fetch_workers=1, **FAST))
    assert len(examples) == 4
    assert server.total_requests() <= 4 + 2  # stops fetching: at most the in-flight window beyond what it served
    # Over shards the total is split: 2 ranks serve 3 + 2 = 5.
    per_rank = [
        len(list(DataCompDataset(fixture.parquet, num_samples=5, rank=rank, world_size=2, **FAST))) for rank in (0, 1)
    ]
    assert per_rank == [3, 2]


def _identity(example: Any) -> Any:
    return example


def test_ranks_and_workers_cover_every_row_exactly_once(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path, server, ["rgb_jpeg"] * 13 + ["empty_caption"])
    served: list[str] = []
    for rank in range(2):
        dataset = DataCompDataset(fixture.parquet, rank=rank, world_size=2, fetch_workers=2, **FAST)
        loader = DataLoader(dataset, batch_size=None, num_workers=2, collate_fn=_identity)
        served += captions(list(loader))
    assert len(served) == len(set(served))  # nothing twice
    assert set(served) == fixture.served_captions  # nothing missing
    assert all(server.requests(path) <= 1 for path in fixture.paths.values())  # each row fetched by one shard only


def test_materialized_map_style_dataset(server: LocalHTTPServer, tmp_path: Path, caplog: Any) -> None:
    fixture = write_datacomp_fixture(tmp_path, server, ["rgb_jpeg", "missing", "cmyk_jpeg", "html", "grayscale"])
    dataset = materialize_datacomp(fixture.parquet, num_samples=2, prompt="Caption this.", **FAST)
    assert len(dataset) == 2
    assert {dataset[i]["messages"][0]["content"] for i in range(2)} == {"Caption this."}
    assert set(captions([dataset[i] for i in range(2)])) <= fixture.served_captions
    with caplog.at_level(logging.WARNING):
        everything = materialize_datacomp(fixture.parquet, num_samples=50, **FAST)
    assert len(everything) == 3 and everything.skip_log.counts == Counter({"http 404": 1, "html page, not an image": 1})
    assert "only 3 of 50" in caplog.text


def test_a_dead_source_is_one_clear_error(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path / "dead", server, ["missing"] * 6)
    with pytest.raises(ValueError, match="no picture"):
        materialize_datacomp(fixture.parquet, num_samples=3, **FAST)
    with pytest.raises(RuntimeError, match="4 pictures in a row") as caught:
        list(DataCompDataset(fixture.parquet, max_consecutive_failures=4, **FAST))
    assert "\n" not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="no such metadata file"):
        DataCompDataset(tmp_path / "absent.parquet").__iter__().__next__()
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"uid": ["a"], "caption": ["x"]}), bad)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['url', 'text'\]"):
        next(iter(DataCompDataset(bad)))


def test_a_local_dataset_folder_is_a_source(server: LocalHTTPServer, tmp_path: Path) -> None:
    fixture = write_datacomp_fixture(tmp_path / "datacomp_small", server, ["rgb_jpeg", "palette_png"])
    examples = list(DataCompDataset(tmp_path / "datacomp_small", **FAST))
    assert sorted(captions(examples)) == sorted(fixture.served_captions)
