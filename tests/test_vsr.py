"""The VSR loader on small files in the exact `cambridgeltl/vsr_random` / `vsr_zeroshot` formats, good and bad."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import datasets
import datasets.config
import pytest

from theworld.data.datasets import normalize_record
from theworld.data.image_files import DEFAULT_MAX_SIDE
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, MISSING_IMAGE, SkipLog
from theworld.data.vsr import DEFAULT_QUESTION_TEMPLATE, VSRDataset, check_question_template, load_vsr, parse_votes
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, write_image_case
from theworld.testing.vsr_llava_fixtures import VSRFixture, write_jsonl, write_vsr_dataset


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow caches of the datasets library go under tmp_path, not the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def _serve_all(dataset: VSRDataset) -> list[dict[str, Any]]:
    """Every index once, as a DataLoader epoch would (a bad record is replaced by the next good one)."""
    return [dataset[i] for i in range(len(dataset))]


def _check_example(example: dict[str, Any]) -> None:
    assert example["image"].mode == "RGB" and max(example["image"].size) <= DEFAULT_MAX_SIDE
    user, answer = example["messages"]
    assert user["role"] == "user" and answer["role"] == "assistant" and answer["content"] in ("True", "False")
    normalize_record({"image": example["image"], "conversations": example["messages"]}, 0)  # the contract holds


@pytest.mark.parametrize("layout", ["merged", "split"])
def test_records_become_true_false_questions_about_their_pictures(
    tmp_path: Path, layout: Literal["merged", "split"]
) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", layout=layout)
    records = fixture.records["train"]
    assert any("val2017" in r["image_link"] for r in records)  # some pictures come from val2017
    dataset = load_vsr(fixture.jsonl_dir, "train", fixture.image_folder, cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == len(records)
    for example, record in zip(_serve_all(dataset), records, strict=True):
        _check_example(example)
        assert example["messages"][0]["content"] == DEFAULT_QUESTION_TEMPLATE.format(question=record["caption"])
        assert example["messages"][1]["content"] == ("True" if record["label"] == 1 else "False")
    assert dataset.skip_log.total == 0


def test_pictures_are_found_in_the_folder_named_by_the_image_link(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", layout="split", split_sizes=(("train", 2),))
    record = dict(fixture.records["train"][0], image_link="http://example.org/coco_extra/" + "000000000001.jpg")
    record["image"] = "000000000001.jpg"
    write_image_case(fixture.image_folder / "coco_extra" / record["image"], "rgb_jpeg")
    write_jsonl(fixture.jsonl_dir / "train.jsonl", [record])
    dataset = load_vsr(fixture.jsonl_dir / "train.jsonl", "train", fixture.image_folder, cache_dir=str(tmp_path / "c"))
    _check_example(dataset[0])
    assert dataset.skip_log.total == 0


def test_dev_and_validation_name_the_same_split(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random")
    cache = str(tmp_path / "cache")
    dev = load_vsr(fixture.jsonl_dir, "dev", fixture.image_folder, cache_dir=cache)
    validation = load_vsr(fixture.jsonl_dir, "validation", fixture.image_folder, cache_dir=cache)
    captions = [r["caption"] for r in fixture.records["dev"]]
    assert [dev.record(i).caption for i in range(len(dev))] == captions
    assert [validation.record(i).caption for i in range(len(validation))] == captions
    # A dataset directory in another layout goes through `load_dataset`, which calls the dev split "validation".
    hub_layout = tmp_path / "hub_layout"
    for split, records in fixture.records.items():
        write_jsonl(hub_layout / "data" / f"{split}.jsonl", records)
    from_hub_layout = load_vsr(hub_layout, "dev", fixture.image_folder, cache_dir=cache)
    assert [from_hub_layout.record(i).caption for i in range(len(from_hub_layout))] == captions
    assert [ex["messages"][1]["content"] for ex in _serve_all(from_hub_layout)] == [
        ex["messages"][1]["content"] for ex in _serve_all(dev)
    ]


def test_zeroshot_and_random_metadata_with_string_votes(tmp_path: Path) -> None:
    variants: tuple[Literal["random", "zeroshot"], ...] = ("random", "zeroshot")
    for variant in variants:
        fixture = write_vsr_dataset(tmp_path / variant, variant)
        dataset = load_vsr(fixture.jsonl_dir, "test", fixture.image_folder, cache_dir=str(tmp_path / "cache"))
        for i, raw in enumerate(fixture.records["test"]):
            assert isinstance(raw["vote_true_validator_id"], str)  # the real format: a string holding a list
            record = dataset.record(i)
            assert record.relation == raw["relation"] and record.label == bool(raw["label"])
            assert record.votes_true == json.loads(raw["vote_true_validator_id"])
            assert record.votes_false == json.loads(raw["vote_false_validator_id"])
            if variant == "random":
                assert record.reference_frame == raw["reference_frame"] and record.subj is None
            else:
                assert (record.subj, record.obj) == (raw["subj"], raw["obj"]) and record.reference_frame is None


@pytest.mark.parametrize(
    ("value", "expected"), [("[2, 9]", [2, 9]), ("[]", []), ("", []), (None, []), ([4, 5], [4, 5]), (" [7] ", [7])]
)
def test_parse_votes(value: Any, expected: list[int]) -> None:
    assert parse_votes(value) == expected


@pytest.mark.parametrize("value", ["[2, 9", "2, 9", "['a']", "[1.5]", "{}", "[true]", "5"])
def test_malformed_votes_are_bad_fields(value: str) -> None:
    with pytest.raises(ValueError, match="expected a list of") as caught:
        parse_votes(value, "vote_true_validator_id")
    assert getattr(caught.value, "reason", None) == BAD_FIELD and "vote_true_validator_id" in str(caught.value)


def test_question_template(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", split_sizes=(("train", 2),))
    cache = str(tmp_path / "cache")
    caption = fixture.records["train"][0]["caption"]
    for template in ("{caption} True or False?", "Claim: {question}"):
        dataset = load_vsr(
            fixture.jsonl_dir, "train", fixture.image_folder, question_template=template, cache_dir=cache
        )
        assert dataset[0]["messages"][0]["content"] == template.format(caption=caption, question=caption)
    for bad in ("Is it true?", "{caption} {answer}", "{caption"):
        with pytest.raises(ValueError, match="question_template") as caught:
            check_question_template(bad)
        assert "\n" not in str(caught.value)


def test_every_bad_record_is_a_counted_skip_and_the_epoch_completes(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", split_sizes=(("train", 24),))
    records = fixture.records["train"]
    edits: list[tuple[dict[str, Any], str | None]] = [
        ({"label": "yes"}, BAD_FIELD),
        ({"label": 2}, BAD_FIELD),
        ({"label": None}, BAD_FIELD),
        ({"label": True}, None),  # a bool label is fine
        ({"caption": 5}, BAD_FIELD),
        ({"caption": ["The cat is on the bed."]}, BAD_FIELD),
        ({"caption": "  "}, EMPTY_CONVERSATION),
        ({"vote_true_validator_id": "[2, 9"}, BAD_FIELD),
        ({"vote_false_validator_id": [3, 4]}, None),  # a real list instead of its string: read as its text
        ({"image": 12}, BAD_FIELD),
        ({"extra": {"nested": [1, "x"]}, "another": 3.5}, None),  # unexpected fields are ignored
        ({"image": "000000999999.jpg"}, MISSING_IMAGE),
    ]
    expected: Counter[str] = Counter()
    for record, (edit, reason) in zip(records, edits, strict=False):
        record.update(edit)
        if reason:
            expected[reason] += 1
    picture_cases = [*BAD_CASES, *GOOD_CASES]
    for record, case in zip(records[len(edits) :], picture_cases, strict=False):
        write_image_case(fixture.image_folder / record["image"], case)  # over the good picture (merged folder)
        if case in BAD_CASE_REASONS:
            expected[BAD_CASE_REASONS[case]] += 1
    write_jsonl(fixture.jsonl_dir / "train.jsonl", records)
    log = SkipLog("vsr train", tmp_path / "skips.jsonl")
    dataset = load_vsr(fixture.jsonl_dir, "train", fixture.image_folder, skip_log=log, cache_dir=str(tmp_path / "c"))
    served = _serve_all(dataset)
    for example in served:
        _check_example(example)
    assert log.counts == expected
    assert SkipLog.read(tmp_path / "skips.jsonl")["vsr train"] == expected
    assert dataset[3]["messages"][1]["content"] == "True"  # the bool label
    assert dataset.record(8).votes_false == [3, 4]


def test_a_truncated_jsonl_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", split_sizes=(("train", 4),))
    path = fixture.jsonl_dir / "train.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # a download cut in the last record
    with pytest.raises(ValueError, match=r"train\.jsonl: cannot read it as JSON Lines") as caught:
        load_vsr(fixture.jsonl_dir, "train", fixture.image_folder, cache_dir=str(tmp_path / "cache"))
    assert "\n" not in str(caught.value) and "truncated" in str(caught.value)


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path, "random", split_sizes=(("train", 2),))
    cases: list[tuple[Any, str, str | Path, type[Exception], str]] = [
        (
            fixture.jsonl_dir / "nope.jsonl",
            "train",
            fixture.image_folder,
            FileNotFoundError,
            "nope.jsonl: no such file",
        ),
        (tmp_path / "no_such_dir", "train", fixture.image_folder, FileNotFoundError, "not found"),
        ("cambridgeltl/vsr_random", "train", fixture.image_folder, ConnectionError, "offline"),
        (fixture.jsonl_dir, "train", tmp_path / "no_pictures", FileNotFoundError, "image_folder"),
    ]
    for source, split, folder, error, match in cases:
        with pytest.raises(error, match=match) as caught:
            load_vsr(source, split, folder, cache_dir=str(tmp_path / "cache"))
        assert "\n" not in str(caught.value)


def test_num_samples_keeps_the_first_records(tmp_path: Path) -> None:
    fixture: VSRFixture = write_vsr_dataset(tmp_path, "zeroshot")
    dataset = load_vsr(fixture.jsonl_dir, "train", fixture.image_folder, num_samples=3, cache_dir=str(tmp_path / "c"))
    assert len(dataset) == 3
    assert [dataset.record(i).caption for i in range(3)] == [r["caption"] for r in fixture.records["train"][:3]]
    with pytest.raises(ValueError, match="num_samples"):
        load_vsr(fixture.jsonl_dir, "train", fixture.image_folder, num_samples=0)
