"""Any Hugging Face dataset: `load_hf_records` on local datasets (save_to_disk, parquet, jsonl) and the robust
`HFDatasetWrapper` / `HFIterableWrapper` (column names, image folders, counted skips of bad rows)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import datasets.config
import numpy as np
import pytest

from theworld.data.datasets import HFDatasetWrapper, HFIterableWrapper, normalize_record
from theworld.data.hf_source import load_hf_records
from theworld.data.image_files import DEFAULT_MAX_SIDE
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, MISSING_IMAGE, BadRecord, SkipLog
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, write_image_case
from theworld.testing.pictures import make_picture
from theworld.testing.vsr_llava_fixtures import write_jpeg, write_jsonl

QUESTIONS = ["Is the red shape left of the blue shape?", "What is above the circle?", "Which shape is bigger?"]
ANSWERS = ["yes", "the square", "the circle"]


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow caches of the datasets library go under tmp_path, not the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def _check(example: dict[str, Any], question: str, answer: str, with_picture: bool = True) -> None:
    assert example["messages"] == [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    if with_picture:
        assert example["image"].mode == "RGB" and max(example["image"].size) <= DEFAULT_MAX_SIDE
    else:
        assert example["image"] is None


def _path_dataset(root: Path) -> Path:
    """A parquet dataset dir (train + validation) whose `file` column holds paths relative to root/pictures."""
    for split, offset in (("train", 0), ("validation", 10)):
        files = [f"{split}/{i:03d}.jpg" for i in range(3)]
        for i, name in enumerate(files):
            write_jpeg(root / "pictures" / name, seed=offset + i, size=32)
        rows = {"file": files, "question": QUESTIONS, "answer": ANSWERS, "source": ["coco"] * 3}
        datasets.Dataset.from_dict(rows).to_parquet(str(root / "dataset" / "data" / f"{split}-00000-of-00001.parquet"))
    return root / "dataset"


def test_a_saved_dataset_with_an_image_column(tmp_path: Path) -> None:
    pictures = [make_picture(i) for i in range(3)]
    rows = {"image": [pictures[0], None, pictures[2]], "text": QUESTIONS, "label": ANSWERS}
    splits = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "validation": datasets.Dataset.from_dict(rows)}
    )
    splits.save_to_disk(str(tmp_path / "saved"))
    train = load_hf_records(tmp_path / "saved", "train")
    assert isinstance(train, datasets.Dataset) and isinstance(train.features["image"], datasets.Image)
    wrapped = HFDatasetWrapper(train, skip_log=SkipLog("hf"))
    for i in range(3):
        _check(wrapped[i], QUESTIONS[i], ANSWERS[i], with_picture=i != 1)
    assert np.array_equal(np.asarray(wrapped[0]["image"]), np.asarray(pictures[0]))  # PNG-embedded: lossless
    dev = load_hf_records(tmp_path / "saved", "dev")  # "dev" names the validation split
    assert isinstance(dev, datasets.Dataset) and len(dev) == 3
    with pytest.raises(ValueError, match=r"has no split 'test'; available splits: train, validation") as caught:
        load_hf_records(tmp_path / "saved", "test")
    assert "\n" not in str(caught.value)


def test_a_parquet_dataset_with_relative_picture_paths(tmp_path: Path) -> None:
    source = _path_dataset(tmp_path)
    keys: dict[str, Any] = {"image_key": "file", "text_key": "question", "label_key": "answer"}
    for split in ("train", "dev"):
        records = load_hf_records(source, split, num_samples=2)
        assert isinstance(records, datasets.Dataset) and len(records) == 2
        wrapped = HFDatasetWrapper(records, image_folder=tmp_path / "pictures", skip_log=SkipLog("hf"), **keys)
        for i in range(2):
            _check(wrapped[i], QUESTIONS[i], ANSWERS[i])
    # Without the folder the relative paths point nowhere: each row is a counted skip, then one clear error.
    lost = HFDatasetWrapper(load_hf_records(source, "train"), skip_log=SkipLog("hf"), **keys)
    with pytest.raises(RuntimeError, match="cannot be served"):
        lost[0]
    assert lost.skip_log.counts == {MISSING_IMAGE: 3}
    with pytest.raises(FileNotFoundError, match="image_folder"):
        HFDatasetWrapper(load_hf_records(source, "train"), image_folder=tmp_path / "nowhere")


def test_conversations_under_a_custom_key_in_jsonl_files(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "pictures" / "a.jpg", seed=1, size=32)
    dialog = [{"from": "human", "value": "<image>\nWhat is red?"}, {"from": "gpt", "value": "the square"}]
    rows = [{"picture": "a.jpg", "dialog": dialog}, {"picture": None, "dialog": dialog, "id": 7}]
    write_jsonl(tmp_path / "dataset" / "train.jsonl", rows)
    records = load_hf_records(tmp_path / "dataset", "train")
    wrapped = HFDatasetWrapper(
        records, image_key="picture", conversations_key="dialog", image_folder=tmp_path / "pictures"
    )
    _check(wrapped[0], "What is red?", "the square")
    _check(wrapped[1], "What is red?", "the square", with_picture=False)


def _picture_case_rows(tmp_path: Path) -> tuple[datasets.Dataset, Counter[str]]:
    """An Image column holding every good and bad picture case as embedded bytes, one row each."""
    cases = [*GOOD_CASES, *BAD_CASES]
    images = [{"bytes": write_image_case(tmp_path / f"{case}.img", case).read_bytes(), "path": None} for case in cases]
    features = datasets.Features(
        {"image": datasets.Image(), "text": datasets.Value("string"), "label": datasets.Value("string")}
    )
    rows = {"image": images, "text": [f"What is case {c}?" for c in cases], "label": cases}
    expected = Counter(BAD_CASE_REASONS[c] for c in BAD_CASES)
    return datasets.Dataset.from_dict(rows, features=features), expected


def test_every_bad_picture_row_is_a_counted_skip(tmp_path: Path) -> None:
    rows, expected = _picture_case_rows(tmp_path)
    wrapped = HFDatasetWrapper(rows, skip_log=SkipLog("hf"))
    served = [wrapped[i] for i in range(len(wrapped))]
    assert wrapped.skip_log.counts == expected
    assert {ex["messages"][1]["content"] for ex in served} == set(GOOD_CASES)
    for example in served:
        assert example["image"].mode == "RGB" and max(example["image"].size) <= DEFAULT_MAX_SIDE


def test_every_bad_field_row_is_a_counted_skip(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "pictures" / "ok.jpg", seed=3, size=32)
    good = {"image": "ok.jpg", "text": "Is it red?", "label": "yes"}
    rows: list[tuple[dict[str, Any], str | None]] = [
        (good, None),
        ({**good, "label": 1}, BAD_FIELD),  # a number where text was expected
        ({**good, "text": ["Is it red?"]}, BAD_FIELD),
        ({**good, "text": "  "}, EMPTY_CONVERSATION),
        ({**good, "label": ""}, EMPTY_CONVERSATION),
        ({"image": "ok.jpg", "conversations": []}, EMPTY_CONVERSATION),
        ({"image": "ok.jpg", "conversations": [{"from": "human", "value": "hi"}]}, EMPTY_CONVERSATION),
        ({"image": "ok.jpg", "conversations": [{"from": "robot", "value": "hi"}]}, BAD_FIELD),
        ({"image": "ok.jpg", "text": "q"}, BAD_FIELD),  # no label
        ({**good, "image": "gone.jpg"}, MISSING_IMAGE),
        ({**good, "image": 12}, BAD_FIELD),
        ({**good, "extra": {"a": [1, 2]}, "weight": 0.5}, None),  # unexpected fields are ignored
    ]
    write_jsonl(tmp_path / "dataset" / "train.jsonl", [row for row, _ in rows])
    expected = Counter(reason for _, reason in rows if reason)
    records = load_hf_records(tmp_path / "dataset", "train")
    wrapped = HFDatasetWrapper(records, image_folder=tmp_path / "pictures", skip_log=SkipLog("hf"))
    for i in range(len(wrapped)):
        _check(wrapped[i], "Is it red?", "yes")
    assert wrapped.skip_log.counts == expected
    # Streamed, the same rows give the same examples and the same counts.
    stream_log = SkipLog("hf stream")
    streamed = HFIterableWrapper(
        load_hf_records(tmp_path / "dataset", "train", streaming=True),
        image_folder=tmp_path / "pictures",
        skip_log=stream_log,
    )
    examples = list(streamed)
    assert len(examples) == len(rows) - expected.total()
    assert stream_log.counts == expected


def test_without_a_skip_log_a_bad_row_raises_its_one_line_error(tmp_path: Path) -> None:
    rows, _ = _picture_case_rows(tmp_path)
    strict = HFDatasetWrapper(rows)
    bad_index = len(GOOD_CASES)  # the first bad picture
    with pytest.raises(BadRecord, match=r"^record \d+: field 'image'") as caught:
        strict[bad_index]
    assert caught.value.reason == BAD_CASE_REASONS[BAD_CASES[0]] and "\n" not in str(caught.value)


def test_streaming_a_parquet_dataset(tmp_path: Path) -> None:
    source = _path_dataset(tmp_path)
    keys: dict[str, Any] = {"image_key": "file", "text_key": "question", "label_key": "answer"}
    stream = load_hf_records(source, "validation", streaming=True, num_samples=2)
    assert isinstance(stream, datasets.IterableDataset)
    examples = list(HFIterableWrapper(stream, image_folder=tmp_path / "pictures", **keys))
    assert len(examples) == 2
    for i, example in enumerate(examples):
        _check(example, QUESTIONS[i], ANSWERS[i])
    # A wrong image folder: every row is bad, so the stream stops with one line instead of yielding nothing.
    (tmp_path / "elsewhere").mkdir()
    lost = HFIterableWrapper(
        load_hf_records(source, "train", streaming=True),
        image_folder=tmp_path / "elsewhere",
        max_bad_in_a_row=3,
        **keys,
    )
    with pytest.raises(RuntimeError, match="3 rows in a row") as caught:
        list(lost)
    assert "\n" not in str(caught.value) and lost.skip_log.counts == {MISSING_IMAGE: 3}


def test_unreachable_and_unknown_sources_are_one_line_errors(tmp_path: Path) -> None:
    for source, error, match in [
        ("someone/no-such-dataset", ConnectionError, "offline"),  # the tests run with HF_HUB_OFFLINE=1
        (str(tmp_path / "missing"), FileNotFoundError, "not found"),
    ]:
        with pytest.raises(error, match=match) as caught:
            load_hf_records(source, "train")
        assert "\n" not in str(caught.value) and source in str(caught.value)
    with pytest.raises(ValueError, match="num_samples"):
        load_hf_records(str(tmp_path), "train", num_samples=0)


def test_an_empty_prompt_is_allowed_only_with_a_picture_and_only_first() -> None:
    picture = make_picture(0)
    caption = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a red square"}]
    example = normalize_record({"image": picture, "conversations": caption}, 0, allow_empty_prompt=True)
    assert example["messages"][0] == {"role": "user", "content": ""}
    qa = normalize_record({"image": picture, "text": "", "label": "a red square"}, 0, allow_empty_prompt=True)
    assert qa["messages"][0]["content"] == ""
    later_turn = [*caption, {"from": "human", "value": " "}, caption[1]]
    for record, allow in (
        ({"image": None, "conversations": caption}, True),  # no picture: an empty prompt is no prompt
        ({"image": picture, "conversations": caption}, False),  # not asked for
        ({"image": picture, "conversations": later_turn}, True),  # only the first user turn may be empty
    ):
        with pytest.raises(BadRecord, match="is empty") as caught:
            normalize_record(record, 0, allow_empty_prompt=allow)
        assert caught.value.reason == EMPTY_CONVERSATION
