"""OpenSpatialDataset (Spatial-RGPT) on files in the exact real format: ingest, cache, images-first, bad input."""

from __future__ import annotations

import http.server
import random
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import huggingface_hub
import numpy as np
import pytest
from PIL import Image

import theworld.data.openspatial as openspatial
from tests.helpers import labelled_spans, one_line_error
from theworld import TheWorld
from theworld.constants import GEMMA_END_OF_TURN
from theworld.data.collator import TheWorldCollator
from theworld.data.image_index import scan_image_folder
from theworld.data.openspatial import OpenSpatialDataset, fetch_openspatial_json, ingest_openspatial
from theworld.data.skips import BAD_FIELD, CORRUPT_IMAGE, EMPTY_CONVERSATION, IMAGE_TOO_LARGE, MISSING_IMAGE
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, write_image_case
from theworld.testing.openspatial_fixtures import (
    OpenSpatialFixture,
    make_image_ids,
    make_record,
    write_openspatial,
    write_openspatial_json,
    write_picture,
)

REGION = re.compile(r"Region \[(\d+)\]")


@pytest.fixture
def data(tmp_path: Path) -> OpenSpatialFixture:
    return write_openspatial(tmp_path / "data", num_records=40, num_images=12, seed=1)


def _open(data: OpenSpatialFixture, tmp_path: Path, **kwargs: Any) -> OpenSpatialDataset:
    return OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache", **kwargs)


def _rows(rows: datasets.Dataset) -> list[dict[str, Any]]:
    return [rows[i] for i in range(len(rows))]


def _served(dataset: OpenSpatialDataset) -> list[int]:
    return [row["index"] for row in _rows(dataset.rows)]


# ---- images first ----


def test_only_records_with_a_picture_are_served(data: OpenSpatialFixture, tmp_path: Path) -> None:
    dataset = _open(data, tmp_path)
    pictured = set(data.image_ids)
    expected = [i for i, record in enumerate(data.records) if record["filename"] in pictured]
    assert 0 < len(expected) < len(data.records)
    assert _served(dataset) == expected and len(dataset) == len(expected)
    assert dataset.missing_images == len(data.records) - len(expected)
    for position in range(len(dataset)):
        example = dataset[position]
        record = data.records[expected[position]]
        messages = example["messages"]
        assert example["image"].mode == "RGB" and example["image"].size == tuple(reversed(record["rle"][0]["size"]))
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(record["conversations"]) // 2)
        assert [m["content"] for m in messages[1::2]] == [t["value"] for t in record["conversations"][1::2]]
        asked = [int(n) for m in messages[0::2] for n in REGION.findall(m["content"])]
        assert asked == list(range(len(record["bbox"])))  # Region [i] ↔ bbox[i], counted across turns
        assert not any(token in m["content"] for m in messages for token in ("<mask>", "<depth>", "<image>"))
    assert dataset.skip_log.total == 0
    report = dataset.ingest_report()
    assert "\n" not in report and f"{len(data.records)} records in JSON" in report
    assert f"{MISSING_IMAGE} {dataset.missing_images}" in report and f"serving {len(dataset)}" in report


def test_num_samples_keeps_the_first_records(data: OpenSpatialFixture, tmp_path: Path) -> None:
    full = _served(_open(data, tmp_path))
    assert _served(_open(data, tmp_path, num_samples=3)) == full[:3]
    assert _served(_open(data, tmp_path, num_samples=10_000)) == full
    with pytest.raises(ValueError, match="num_samples must be positive"):
        _open(data, tmp_path, num_samples=0)


def test_rescan_serves_pictures_downloaded_meanwhile(data: OpenSpatialFixture, tmp_path: Path) -> None:
    dataset = _open(data, tmp_path)
    replica = _open(data, tmp_path)  # another DDP rank, whose scan ran before the new pictures landed
    before = len(dataset)
    dataset._bad.add(0)
    assert dataset.rescan() == 0 and dataset._bad == set()
    without_picture = [i for i in data.ids if i not in set(data.image_ids)]
    new, partial = without_picture[:5], without_picture[5]
    for image_id in new:
        write_picture(data.image_folder / "validation" / f"{image_id}.jpg", image_id)
    (data.image_folder / "validation" / f"{partial}.jpg.part").write_bytes(b"\xff\xd8")  # still downloading
    added = dataset.rescan()
    gained = sum(record["filename"] in set(new) for record in data.records)
    assert added == gained > 0 and len(dataset) == before + gained
    served = {row["filename"] for row in _rows(dataset.rows)}
    assert set(new) <= served and partial not in served
    assert replica.set_images(dataset.images) == gained and _served(replica) == _served(dataset)  # rank 0's scan
    for position, row in enumerate(_rows(dataset.rows)):
        if row["filename"] in set(new):
            assert dataset[position]["image"].size == tuple(reversed(data.records[row["index"]]["rle"][0]["size"]))


def test_empty_image_folder_and_missing_paths_fail_in_one_line(data: OpenSpatialFixture, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"image_folder .*empty: no picture of the 40 usable records") as error:
        OpenSpatialDataset(data.json_path, empty, cache_dir=tmp_path / "cache")
    one_line_error(error)
    with pytest.raises(FileNotFoundError, match=r"image_folder .*nowhere does not exist") as error:
        OpenSpatialDataset(data.json_path, tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=r"train_dataset_path .*missing.json does not exist"):
        OpenSpatialDataset(tmp_path / "missing.json", data.image_folder, cache_dir=tmp_path / "cache")


# ---- cache ----


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(handle: Any) -> Iterator[Any]:
        raise AssertionError("the JSON was parsed again")

    monkeypatch.setattr(openspatial, "_items", fail)


def test_second_start_reads_the_cache_without_parsing(
    data: OpenSpatialFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _open(data, tmp_path)
    assert not first.stats.cache_hit
    _forbid_parsing(monkeypatch)
    parses = openspatial.parse_count
    second = _open(data, tmp_path)
    assert second.stats.cache_hit and openspatial.parse_count == parses
    assert second.stats.records == len(data.records) and _served(second) == _served(first)
    assert second[0]["messages"] == first[0]["messages"]
    assert "cache hit" in second.ingest_report()


def test_cache_is_keyed_by_content_not_path(
    data: OpenSpatialFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _open(data, tmp_path)
    elsewhere = tmp_path / "fresh-tmpdir" / data.json_path.name  # a new job re-downloads the same file
    elsewhere.parent.mkdir()
    shutil.copy(data.json_path, elsewhere)
    with monkeypatch.context() as patch:
        _forbid_parsing(patch)
        hit = OpenSpatialDataset(elsewhere, data.image_folder, cache_dir=tmp_path / "cache")
    assert hit.stats.cache_hit
    other = write_openspatial(tmp_path / "other", num_records=40, num_images=5, seed=2)  # same name, other content
    shutil.copy(other.json_path, elsewhere)
    changed = OpenSpatialDataset(elsewhere, other.image_folder, cache_dir=tmp_path / "cache")
    assert not changed.stats.cache_hit and changed.stats.cache_key != hit.stats.cache_key
    assert {row["filename"] for row in _rows(changed.records)} == set(other.ids)


# ---- train/eval split ----


def _names(rows: datasets.Dataset) -> set[str]:
    return {row["filename"] for row in _rows(rows)}


def test_eval_split_shares_no_picture_and_is_stable(tmp_path: Path) -> None:
    data = write_openspatial(tmp_path / "data", num_records=60, num_images=20, seed=4, num_ids=30)
    dataset = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache")
    train, held = dataset.split_eval(8)
    assert 0 < len(held) <= 8 and not _names(train.rows) & _names(held.rows)
    assert set(_served(train)) | set(_served(held)) <= set(_served(dataset))
    assert held.skip_log.name != train.skip_log.name and held[0]["image"] is not None
    again = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache", holdout=("eval", 8))
    assert _served(again) == _served(held)  # the same split in a new process
    trained_before, evaluated_before = _names(train.rows), _names(held.rows)
    for image_id in set(data.ids) - set(data.image_ids):  # the download finishes
        write_picture(data.image_folder / "train" / f"{image_id}.jpg", image_id)
    train.rescan()
    held.rescan()
    assert len(held) == 8 and not _names(train.rows) & _names(held.rows)
    assert trained_before <= _names(train.rows) and not trained_before & _names(held.rows)  # never evaluated later
    assert not evaluated_before & _names(train.rows)  # ... nor trained on later
    everything = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache")
    assert len(train) + len(held) <= len(everything) <= len(train) + len(held) + 3  # the boundary picture's extras


# ---- bad input ----


def test_truncated_json_fails_in_one_line_and_leaves_no_cache(data: OpenSpatialFixture, tmp_path: Path) -> None:
    raw = data.json_path.read_bytes()
    data.json_path.write_bytes(raw[: len(raw) // 2])
    message = ""
    for _ in range(2):  # the second start must not take a half-written cache for a complete one
        with pytest.raises(ValueError, match=r"invalid JSON, parsing stopped at byte \d+ of \d+") as error:
            _open(data, tmp_path)
        message = one_line_error(error)
        assert str(data.json_path) in message and f"of {len(raw) // 2} " in message and "premature EOF" in message
    assert not list((tmp_path / "cache").rglob("dataset_info.json"))
    offset = re.search(r"at byte (\d+)", message)
    assert offset is not None and 0 < int(offset.group(1)) <= len(raw) // 2


def test_corruption_mid_file_reports_where_parsing_stopped(tmp_path: Path) -> None:
    data = write_openspatial(tmp_path / "data", num_records=600, num_images=1, seed=7, rle_chars=(400, 800))
    raw = bytearray(data.json_path.read_bytes())
    fault = raw.index(b'"bbox": [[', len(raw) // 3) + len(b'"bbox": ')  # a box list (not inside an RLE string)
    raw[fault : fault + 2] = b"]]"
    data.json_path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"invalid JSON, parsing stopped at byte (\d+)") as error:
        _open(data, tmp_path)
    offset = re.search(r"at byte (\d+)", one_line_error(error))
    assert offset is not None and fault < int(offset.group(1)) <= fault + 65536 < len(raw)  # ijson reads 64 KiB


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"filename": "a", "conversations": []}', r"expected a JSON array of records starting with '\[', found '\{'"),
        (b"", r"expected a JSON array of records starting with '\[', found an empty file"),
        (b"[1, 2, null]", r"none of its 3 records is usable \(skipped: non-dict record 3\)"),
        (b"[]", r"none of its 0 records is usable"),
        (
            b'[{"filename": "a"}, {"filename": "b",]',
            r"invalid JSON, parsing stopped at byte \d+ of 38 \(parse error: invalid",
        ),
        (b'[{"filename": "a", "conversations": "\xff\xfe"}]', r"invalid JSON, parsing stopped at byte"),
    ],
)
def test_invalid_json_files_fail_in_one_line(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "result_10_depth_convs.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as error:
        ingest_openspatial(path, tmp_path / "cache")
    assert str(path) in one_line_error(error)


def test_unusable_records_are_skipped_and_counted(data: OpenSpatialFixture, tmp_path: Path) -> None:
    good = next(record for record in data.records if record["filename"] in set(data.image_ids))
    turns = good["conversations"]
    bad: list[tuple[Any, str]] = [
        ({**good, "conversations": []}, EMPTY_CONVERSATION),
        ({key: value for key, value in good.items() if key != "conversations"}, EMPTY_CONVERSATION),
        ({**good, "conversations": [turns[0]]}, openspatial.NO_GPT_TURN),
        ({**good, "conversations": "human: hi"}, BAD_FIELD),
        ({**good, "conversations": [{"from": "human", "value": 3}, turns[1]]}, BAD_FIELD),
        ({**good, "bbox": good["bbox"][:-1]}, openspatial.MASK_MISMATCH),
        ({**good, "bbox": [[1, 2, 3]] * len(good["bbox"])}, BAD_FIELD),
        ({key: value for key, value in good.items() if key != "filename"}, openspatial.MISSING_FILENAME),
        ({**good, "filename": 12}, openspatial.MISSING_FILENAME),
        ("not a record", openspatial.NOT_A_DICT),
        (None, openspatial.NOT_A_DICT),
    ]
    extra = {**good, "id": 7, "meta": {"source": "x"}, "conversations": [{**turn, "weight": 1} for turn in turns]}
    records = [*data.records, *(record for record, _ in bad), extra]
    write_openspatial_json(data.json_path, records)
    dataset = _open(data, tmp_path)
    expected = Counter(reason for _, reason in bad)
    assert dataset.stats.records == len(records) and dataset.stats.skipped == expected
    assert dataset.stats.usable == len(data.records) + 1 == len(dataset.records)
    served_extra = dataset[_served(dataset).index(len(records) - 1)]  # unexpected extra fields are ignored
    assert served_extra["messages"] == dataset[_served(dataset).index(data.records.index(good))]["messages"]
    hit = _open(data, tmp_path)  # the counts survive a cache hit
    assert hit.stats.cache_hit and hit.stats.skipped == expected
    assert all(f"{reason} {count}" in hit.ingest_report() for reason, count in expected.items())


def test_bad_pictures_are_skipped_with_reasons(tmp_path: Path) -> None:
    rng = random.Random(0)
    ids = make_image_ids(len(GOOD_CASES) + len(BAD_CASES) + 1, seed=9)
    records = [make_record(rng, image_id, "0123456789abcdefghij" * 50, (20, 60)) for image_id in ids]
    json_path = tmp_path / "result_10_depth_convs.json"
    write_openspatial_json(json_path, records)
    folder = tmp_path / "openimages"
    cases = [*GOOD_CASES, *BAD_CASES]
    for image_id, case in zip(ids, cases, strict=False):
        write_image_case(folder / "train" / f"{image_id}.jpg", case)
    deleted = folder / "train" / f"{ids[-1]}.jpg"
    write_picture(deleted, ids[-1])
    dataset = OpenSpatialDataset(json_path, folder, cache_dir=tmp_path / "cache", draw_bboxes=True)
    assert len(dataset) == len(records)
    deleted.unlink()  # removed after the scan: missing at access time
    served = [dataset[i] for i in range(len(dataset))]  # the whole dataset: no crash
    assert all(example["image"].mode == "RGB" and max(example["image"].size) <= 2048 for example in served)
    expected = Counter(BAD_CASE_REASONS[case] for case in BAD_CASES)
    expected[MISSING_IMAGE] += 1
    assert dataset.skip_log.counts == expected
    assert expected[CORRUPT_IMAGE] == 3 and expected[IMAGE_TOO_LARGE] == 1
    good_names = {ids[i] for i in range(len(GOOD_CASES))}
    assert {dataset.rows[i]["filename"] for i in range(len(dataset)) if i not in dataset._bad} == good_names


def test_boxes_are_drawn_at_the_served_picture_scale(tmp_path: Path) -> None:
    data = write_openspatial(tmp_path / "data", num_records=4, num_images=4, seed=5, num_ids=4)
    for image_id in data.image_ids:  # the downloader stored pictures at half the annotated size
        path = data.image_folder / "train" / f"{image_id}.jpg"
        write_picture(path, image_id)
        with Image.open(path) as picture:
            picture.resize((picture.width // 2, picture.height // 2)).save(path, quality=95)
    plain = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache")
    drawn = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache", draw_bboxes=True)
    for position in range(len(plain)):
        before = np.asarray(plain[position]["image"], dtype=np.int16)
        after = np.asarray(drawn[position]["image"], dtype=np.int16)
        changed = np.any(before != after, axis=2)
        inside = np.zeros_like(changed)
        for x1, y1, x2, y2 in data.records[plain.rows[position]["index"]]["bbox"]:
            inside[round(y1 / 2) : round(y2 / 2) + 1, round(x1 / 2) : round(x2 / 2) + 1] = True
        assert changed.any() and not changed[~inside].any()


# ---- image folder scan ----


def test_scan_image_folder(tmp_path: Path) -> None:
    for name in (
        "train/a1.jpg",
        "train/sub/b2.JPEG",
        "validation/c3.png",
        "d4.webp",
        "train/e5.jpg.part",
        "train/f6.part.jpg",
        "train/.g7.jpg.Xy12",
        ".hidden/h8.jpg",
        "train/i9.txt",
        "z/a1.jpg",
        "a1.jpg",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = scan_image_folder(tmp_path)
    assert found == {"a1": "a1.jpg", "b2": "train/sub/b2.JPEG", "c3": "validation/c3.png", "d4": "d4.webp"}
    assert scan_image_folder(tmp_path, extensions=(".png",)) == {"c3": "validation/c3.png"}
    with pytest.raises(FileNotFoundError, match=r"^image_folder .*nope does not exist") as error:
        scan_image_folder(tmp_path / "nope")
    one_line_error(error)


# ---- download ----


def test_fetch_uses_an_existing_file_and_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "have" / "result_10_depth_convs.json"
    existing.parent.mkdir()
    existing.write_text("[]")
    monkeypatch.setattr(openspatial, "hf_hub_download", lambda *a, **k: pytest.fail("no download expected"))
    assert fetch_openspatial_json(existing.parent) == existing
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError) as error:  # HF_HUB_OFFLINE=1 in the tests
        fetch_openspatial_json(tmp_path / "offline")
    message = one_line_error(error)
    assert "a8cheng/OpenSpatialDataset" in message and "result_10_depth_convs.json" in message
    assert "offline mode is enabled" in message and "set train_dataset_path" in message


def test_fetch_reports_a_404_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        with pytest.raises(FileNotFoundError, match=r"from the Hub dataset someone/missing") as error:
            fetch_openspatial_json(
                tmp_path, repo_id="someone/missing", endpoint=f"http://127.0.0.1:{server.server_port}"
            )
    finally:
        server.shutdown()
    message = one_line_error(error)
    assert "404 Not Found" in message and "set train_dataset_path" in message


# ---- collator ----


def test_examples_collate_with_labels_only_on_answers(tmp_path: Path, world_model: TheWorld) -> None:
    data = write_openspatial(tmp_path / "data", num_records=6, num_images=6, seed=6, num_ids=6)
    dataset = OpenSpatialDataset(data.json_path, data.image_folder, cache_dir=tmp_path / "cache", draw_bboxes=True)
    examples = [dataset[i] for i in range(4)]
    processor = world_model.processor
    batch = TheWorldCollator(processor)(examples)
    assert batch["pixel_values"].shape[0] == 4 and batch["world_pixel_values"].shape[0] == 4
    for row, example in enumerate(examples):
        answers = [m["content"] for m in example["messages"] if m["role"] == "assistant"]
        decoded = [processor.tokenizer.decode(span) for span in labelled_spans(batch["labels"][row])]
        assert decoded == [answer + GEMMA_END_OF_TURN for answer in answers]
        text = processor.tokenizer.decode(batch["input_ids"][row])
        assert "Region [0]" in text and "<mask>" not in text
