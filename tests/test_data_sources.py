"""`dataset_name` → datasets: every real loader wired into training, one-line config errors, the skip report, rescan."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset as HFDataset
from datasets import Features, Image, Value
from transformers import TrainerControl, TrainerState, TrainingArguments

from theworld.data.skips import CORRUPT_IMAGE
from theworld.testing import TinyCheckpoints, make_picture
from theworld.testing.bad_images import write_image_case
from theworld.testing.datacomp_fixtures import write_datacomp_fixture
from theworld.testing.http_server import LocalHTTPServer
from theworld.testing.openspatial_fixtures import write_openspatial, write_picture
from theworld.testing.vsr_llava_fixtures import write_llava_pretrain, write_vsr_dataset
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.data_callbacks import REPORT_FILE, RescanImagesCallback
from theworld.training.data_sources import SKIP_FILE, build_datasets
from theworld.training.run import run_training

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **values: Any) -> TrainingConfig:
    return TrainingConfig(output_dir=str(tmp_path / "run"), data_cache_dir=str(tmp_path / "cache"), **values)


def _check_examples(dataset: Any, count: int = 3) -> None:
    for index in range(min(count, len(dataset))):
        example = dataset[index]
        assert example["image"] is not None and example["image"].mode == "RGB"
        roles = [message["role"] for message in example["messages"]]
        assert roles[0] == "user" and roles[1::2] == ["assistant"] * (len(roles) // 2)
        assert all("<image>" not in message["content"] for message in example["messages"])


def test_spatial_rgpt_serves_regions_holds_out_pictures_and_logs_skips(tmp_path: Path) -> None:
    fixture = write_openspatial(tmp_path / "os", num_records=40, num_images=20)
    config = _config(
        tmp_path,
        dataset_name="spatial_rgpt",
        train_dataset_path=str(fixture.json_path),
        image_folder=str(fixture.image_folder),
        num_eval_samples=4,
        draw_bboxes=True,
    )
    train, held, _ = build_datasets(config)
    assert held is not None and 0 < len(held) <= 4
    train_pictures = {train.rows[i]["filename"] for i in range(len(train))}  # type: ignore[attr-defined]
    held_pictures = {held.rows[i]["filename"] for i in range(len(held))}  # type: ignore[attr-defined]
    assert not train_pictures & held_pictures
    assert train_pictures | held_pictures <= set(fixture.image_ids)
    broken = train.rows[0]["filename"]  # type: ignore[attr-defined]
    write_image_case(fixture.image_folder / "train" / f"{broken}.jpg", "truncated_jpeg")  # broke after the scan
    for index in range(len(train)):
        example = train[index]
        assert "<mask>" not in json.dumps(example["messages"])
    skips = [json.loads(line) for line in (tmp_path / "run" / SKIP_FILE).read_text().splitlines()]
    assert {skip["reason"] for skip in skips} == {CORRUPT_IMAGE} and all(broken in skip["where"] for skip in skips)


def test_vsr_train_and_dev_from_the_jsonl_folder(tmp_path: Path) -> None:
    fixture = write_vsr_dataset(tmp_path / "vsr")
    config = _config(
        tmp_path,
        dataset_name="vsr",
        train_dataset_path=str(fixture.jsonl_dir),
        image_folder=str(fixture.image_folder),
        question_template="True or false? {question}",
    )
    train, held, records = build_datasets(config)
    assert len(train) == len(fixture.records["train"]) and held is not None and len(held) == len(fixture.records["dev"])
    _check_examples(train)
    assert train[0]["messages"][0]["content"].startswith("True or false? ")
    assert records and {r["label"] for r in records} <= {"True", "False"}


def test_llava_pretrain_is_picture_to_caption(tmp_path: Path) -> None:
    fixture = write_llava_pretrain(tmp_path / "llava", count=6)
    config = _config(
        tmp_path,
        dataset_name="llava_pretrain",
        train_dataset_path=str(fixture.json_path),
        image_folder=str(fixture.image_folder),
        num_samples=4,
    )
    train, held, _ = build_datasets(config)
    assert len(train) == 4 and held is None
    example = train[0]
    assert example["messages"][0]["content"] == ""
    assert example["messages"][1]["content"] == fixture.records[0]["conversations"][1]["value"]


def test_datacomp_materialized_from_a_local_server(tmp_path: Path) -> None:
    with LocalHTTPServer() as server:
        fixture = write_datacomp_fixture(
            tmp_path / "dc", server, ["rgb_jpeg", "missing", "cmyk_jpeg", "html", "rgb_jpeg"]
        )
        config = _config(
            tmp_path,
            dataset_name="datacomp",
            train_dataset_path=str(fixture.parquet),
            num_samples=10,  # more than the 3 good rows: every row is fetched, so every skip is counted
            download_timeout=2.0,
            download_retries=0,
        )
        train, held, _ = build_datasets(config)
    assert len(train) == 3 and held is None
    _check_examples(train)
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "run" / SKIP_FILE).read_text().splitlines()}
    assert "http 404" in reasons


def test_any_hf_dataset_through_the_column_keys(tmp_path: Path) -> None:
    rows = {
        "picture": [make_picture(i) for i in range(4)],
        "q": [f"question {i}?" for i in range(4)],
        "a": ["yes", "no", "yes", "no"],
    }
    features = Features({"picture": Image(), "q": Value("string"), "a": Value("string")})
    HFDataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "local"))
    config = _config(
        tmp_path,
        dataset_name="hf",
        hf_dataset_id=str(tmp_path / "local"),
        image_key="picture",
        text_key="q",
        label_key="a",
    )
    train, held, _ = build_datasets(config)
    assert len(train) == 4 and held is None
    assert train[1]["messages"] == [{"role": "user", "content": "question 1?"}, {"role": "assistant", "content": "no"}]


@pytest.mark.parametrize("name", ["spatial_rgpt", "vsr", "llava_pretrain"])
def test_a_missing_image_folder_is_one_config_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="needs image_folder") as caught:
        build_datasets(_config(tmp_path, dataset_name=name, train_dataset_path=str(tmp_path / "x.json")))
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="no such directory"):
        build_datasets(_config(tmp_path, dataset_name=name, image_folder=str(tmp_path / "nope")))


def test_offline_without_the_json_names_the_key_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "pictures").mkdir()
    config = _config(
        tmp_path,
        dataset_name="spatial_rgpt",
        image_folder=str(tmp_path / "pictures"),
        download_dir=str(tmp_path / "dl"),
    )
    with pytest.raises(ConfigError, match=r"spatial_rgpt.*train_dataset_path") as caught:
        build_datasets(config)
    assert "\n" not in str(caught.value)


def test_streaming_needs_max_steps_and_a_streamed_dataset() -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        TrainingConfig(dataset_name="datacomp", streaming=True)
    with pytest.raises(ConfigError, match="is not streamed"):
        TrainingConfig(dataset_name="vsr", streaming=True, max_steps=10)
    assert TrainingConfig(dataset_name="datacomp", streaming=True, max_steps=10).streaming


def test_rescan_callback_serves_pictures_downloaded_during_training(tmp_path: Path) -> None:
    fixture = write_openspatial(tmp_path / "os", num_records=30, num_images=5)
    config = _config(
        tmp_path,
        dataset_name="spatial_rgpt",
        train_dataset_path=str(fixture.json_path),
        image_folder=str(fixture.image_folder),
    )
    train, _, _ = build_datasets(config)
    callback = RescanImagesCallback(train)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none")
    before = len(train)
    late = [i for i in fixture.ids if i not in fixture.image_ids][:3]
    for image_id in late:
        write_picture(fixture.image_folder / "train" / f"{image_id}.jpg", image_id)
    callback.on_epoch_begin(args, TrainerState(epoch=0.0), TrainerControl())
    assert len(train) == before  # the first epoch uses the scan made at build time
    callback.on_epoch_begin(args, TrainerState(epoch=1.0), TrainerControl())
    served = {train.rows[i]["filename"] for i in range(len(train))}  # type: ignore[attr-defined]
    assert len(train) > before and set(late) <= served


@pytest.mark.slow
def test_training_on_openspatial_reports_skipped_pictures(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    fixture = write_openspatial(tmp_path / "os", num_records=24, num_images=12)
    for image_id in fixture.image_ids[:2]:
        write_image_case(fixture.image_folder / "train" / f"{image_id}.jpg", "not_an_image")
    os.environ["THEWORLD_TINY_DIR"] = str(tiny.gemma.parent)
    overrides = {
        "dataset_name": "spatial_rgpt",
        "train_dataset_path": str(fixture.json_path),
        "image_folder": str(fixture.image_folder),
        "data_cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "run"),
        "num_eval_samples": "0",
        "batch_size": "4",
        "max_steps": "4",
        "num_epochs": "2",
        "save_steps": "100",
        "logging_steps": "1",
        "draw_bboxes": "true",
        "max_length": "512",
    }
    output = run_training(TrainingConfig.from_json(ROOT / "configs" / "tiny.json", overrides))
    report = json.loads((output / REPORT_FILE).read_text())
    assert report["skipped"]["spatial_rgpt"] == {CORRUPT_IMAGE: 2}
    assert any("records" in note for note in report["notes"])
    assert (output / "model.safetensors").is_file()
