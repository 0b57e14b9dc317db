"""The LLaVA-Pretrain loader on files in the exact `blip_laion_cc_sbu_558k.json` format, good and bad."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import datasets
import datasets.config
import huggingface_hub.constants
import pytest

from tests.helpers import labelled_spans
from theworld import TheWorld
from theworld.data.collator import TheWorldCollator
from theworld.data.image_files import DEFAULT_MAX_SIDE
from theworld.data.llava_pretrain import (
    LLAVA_PRETRAIN_FILE,
    LLAVA_PRETRAIN_REPO,
    LlavaPretrainDataset,
    fetch_llava_pretrain_json,
)
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, MISSING_IMAGE, SkipLog
from theworld.testing import TinyCheckpoints
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, write_image_case
from theworld.testing.vsr_llava_fixtures import LLAVA_INSTRUCTIONS, write_json, write_llava_pretrain


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow caches of the datasets library go under tmp_path, not the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def _caption(record: dict[str, Any]) -> str:
    return record["conversations"][1]["value"]


def _check_example(example: dict[str, Any]) -> None:
    assert example["image"].mode == "RGB" and max(example["image"].size) <= DEFAULT_MAX_SIDE
    assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
    assert example["messages"][1]["content"].strip()


def test_records_become_picture_to_caption_examples(tmp_path: Path) -> None:
    fixture = write_llava_pretrain(tmp_path, count=6)
    assert len({Path(r["image"]).parent.name for r in fixture.records}) > 1  # pictures in several 00xxx/ folders
    dataset = LlavaPretrainDataset(fixture.json_path, fixture.image_folder, cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 6
    for i, record in enumerate(fixture.records):
        example = dataset[i]
        _check_example(example)
        assert example["messages"] == [
            {"role": "user", "content": ""},  # the picture alone is the prompt
            {"role": "assistant", "content": _caption(record)},
        ]
    assert dataset.skip_log.total == 0
    assert len(LlavaPretrainDataset(fixture.json_path, fixture.image_folder, num_samples=4)) == 4


def test_keep_instruction_drops_the_image_marker_before_or_after_it(tmp_path: Path) -> None:
    fixture = write_llava_pretrain(tmp_path, count=4)
    prompts = [r["conversations"][0]["value"] for r in fixture.records]
    assert prompts[0].startswith("<image>") and prompts[1].endswith("<image>")  # both real placements
    dataset = LlavaPretrainDataset(fixture.json_path, fixture.image_folder, keep_instruction=True)
    for i in range(4):
        assert dataset[i]["messages"][0] == {"role": "user", "content": LLAVA_INSTRUCTIONS[i]}
        assert dataset[i]["messages"][1]["content"] == _caption(fixture.records[i])


def test_the_collator_trains_on_the_caption_only(tmp_path: Path, tiny: TinyCheckpoints) -> None:
    fixture = write_llava_pretrain(tmp_path, count=2, picture_size=64)
    dataset = LlavaPretrainDataset(fixture.json_path, fixture.image_folder)
    processor = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64).processor
    batch = TheWorldCollator(processor)([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape[0] == 2 and batch["world_pixel_values"].shape[0] == 2
    for row in range(2):
        spans = labelled_spans(batch["labels"][row])
        assert len(spans) == 1  # one answer; nothing of the (empty) user turn
        text = processor.tokenizer.decode(spans[0])
        assert text == _caption(fixture.records[row]) + "<end_of_turn>"
        types = batch["token_type_ids"][row]
        assert int(types.sum()) > 0 and bool((batch["labels"][row][types == 1] == -100).all())


def test_every_bad_record_is_a_counted_skip_and_the_epoch_completes(tmp_path: Path) -> None:
    fixture = write_llava_pretrain(tmp_path, count=26)
    records = fixture.records
    human, gpt = records[0]["conversations"]
    edits: list[tuple[dict[str, Any], str | None]] = [
        ({"conversations": []}, EMPTY_CONVERSATION),
        ({"conversations": [human]}, EMPTY_CONVERSATION),  # no caption
        ({"conversations": None}, EMPTY_CONVERSATION),
        ({"conversations": [human, {"from": "gpt", "value": " "}]}, EMPTY_CONVERSATION),
        ({"conversations": "a caption"}, BAD_FIELD),
        ({"conversations": [human, {"from": "gpt", "value": 7}]}, BAD_FIELD),
        ({"conversations": [gpt, human]}, BAD_FIELD),
        ({"conversations": [{"from": "human", "value": "<image>"}, gpt]}, None),  # the picture alone: fine
        ({"image": 5}, BAD_FIELD),
        ({"image": None}, BAD_FIELD),
        ({"id": 4539375, "source": "laion", "meta": {"w": 1}}, None),  # wrong id type, extra fields: fine
        ({"image": "00999/missing.jpg"}, MISSING_IMAGE),
    ]
    expected: Counter[str] = Counter()
    for record, (edit, reason) in zip(records, edits, strict=False):
        record.update(edit)
        if reason:
            expected[reason] += 1
    for record, case in zip(records[len(edits) :], [*BAD_CASES, *GOOD_CASES], strict=False):
        write_image_case(fixture.image_folder / record["image"], case)
        if case in BAD_CASE_REASONS:
            expected[BAD_CASE_REASONS[case]] += 1
    write_json(fixture.json_path, records)
    log = SkipLog("llava_pretrain")
    dataset = LlavaPretrainDataset(fixture.json_path, fixture.image_folder, skip_log=log)
    for i in range(len(dataset)):
        _check_example(dataset[i])
    assert log.counts == expected
    assert dataset[7]["messages"][0]["content"] == ""
    assert dataset[10]["messages"][1]["content"] == _caption(records[10])


def test_a_truncated_json_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    fixture = write_llava_pretrain(tmp_path, count=4)
    data = fixture.json_path.read_bytes()
    fixture.json_path.write_bytes(data[: len(data) * 2 // 3])  # a download cut mid-array
    with pytest.raises(ValueError, match=f"{LLAVA_PRETRAIN_FILE}: cannot read it as a JSON array") as caught:
        LlavaPretrainDataset(fixture.json_path, fixture.image_folder)
    assert "\n" not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        LlavaPretrainDataset(tmp_path / "nope.json", fixture.image_folder)
    with pytest.raises(FileNotFoundError, match="image_folder"):
        LlavaPretrainDataset(fixture.json_path, tmp_path / "no_images")


def test_fetch_offline_names_the_repo_file_and_config_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        fetch_llava_pretrain_json(tmp_path / "downloads")  # the tests run with HF_HUB_OFFLINE=1
    message = str(caught.value)
    assert LLAVA_PRETRAIN_REPO in message and LLAVA_PRETRAIN_FILE in message and "train_dataset_path" in message
    assert "\n" not in message
    present = write_json(tmp_path / "downloads" / LLAVA_PRETRAIN_FILE, [])
    assert fetch_llava_pretrain_json(tmp_path / "downloads") == present  # already there: no network


class _FakeHub(BaseHTTPRequestHandler):
    """Serves one file the way the Hub's resolve endpoint does (commit and etag headers)."""

    body = b""

    def _headers(self) -> None:
        expected = f"/datasets/{LLAVA_PRETRAIN_REPO}/resolve/main/{LLAVA_PRETRAIN_FILE}"
        if self.path != expected:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", '"' + hashlib.sha1(self.body).hexdigest() + '"')
        self.send_header("X-Repo-Commit", "0" * 40)
        self.end_headers()

    def do_HEAD(self) -> None:
        self._headers()

    def do_GET(self) -> None:
        self._headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_downloads_the_json_from_the_hub(tmp_path: Path, fake_hub: str) -> None:
    fixture = write_llava_pretrain(tmp_path / "source", count=3)
    _FakeHub.body = fixture.json_path.read_bytes()
    path = fetch_llava_pretrain_json(tmp_path / "downloads", endpoint=fake_hub)
    assert path == tmp_path / "downloads" / LLAVA_PRETRAIN_FILE and path.read_bytes() == _FakeHub.body
    dataset = LlavaPretrainDataset(path, fixture.image_folder)
    assert [dataset[i]["messages"][1]["content"] for i in range(3)] == [_caption(r) for r in fixture.records]
