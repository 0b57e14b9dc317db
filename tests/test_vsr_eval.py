"""VSR evaluation on the fixture files in the real `cambridgeltl/vsr_random` format: items, skips, scoring against
the labels, the majority-class baseline, and the script end to end on the tiny TheWorld checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from theworld import TheWorld
from theworld.data.skips import BAD_FIELD, MISSING_IMAGE
from theworld.data.vsr import DEFAULT_QUESTION_TEMPLATE
from theworld.evaluation import runner, vsr_eval
from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.vsr import main
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE
from theworld.testing.vsr_llava_fixtures import VSRFixture, write_jsonl, write_vsr_dataset

pytestmark = pytest.mark.usefixtures("one_thread", "datasets_cache")

SPLIT_SIZES = (("train", 2), ("dev", 2), ("test", 6))


@pytest.fixture
def vsr(tmp_path: Path) -> VSRFixture:
    return write_vsr_dataset(tmp_path / "data", "random", layout="split", split_sizes=SPLIT_SIZES)


@pytest.fixture(scope="module")
def checkpoint(world_model: TheWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("theworld-checkpoint")
    world_model.save_pretrained(directory)
    return directory


def _argv(checkpoint: Path, fixture: VSRFixture, out: Path, *extra: str) -> list[str]:
    return [
        *("--model", str(checkpoint), "--data", str(fixture.jsonl_dir), "--images", str(fixture.image_folder)),
        *("--output-dir", str(out), "--batch-size", "4", "--max-new-tokens", "4", *extra),
    ]


def test_items_ask_the_training_question_with_the_label_as_reference(vsr: VSRFixture) -> None:
    items, skipped = vsr_eval.load_vsr_items(vsr.jsonl_dir, "test", vsr.image_folder)
    records = vsr.records["test"]
    assert skipped == {} and len(items) == len(records)
    for item, record in zip(items, records, strict=True):
        assert item.prompt == DEFAULT_QUESTION_TEMPLATE.format(question=record["caption"])
        assert item.reference == ("True" if record["label"] else "False")
        assert item.group == record["relation"] and item.id == f"{record['image']}|{record['caption']}"
        (picture,) = item.load_images()
        assert picture.mode == "RGB"
    limited, _ = vsr_eval.load_vsr_items(vsr.jsonl_dir, "test", vsr.image_folder, limit=2)
    assert [item.id for item in limited] == [item.id for item in items[:2]]


def test_bad_records_and_missing_pictures_are_skipped_and_counted(vsr: VSRFixture) -> None:
    records = [dict(record) for record in vsr.records["test"]]
    records[0]["label"] = "maybe"
    records.append(dict(records[1]))  # the same statement twice: ids stay unique
    write_jsonl(vsr.jsonl_dir / "test.jsonl", records)
    missing = next(vsr.image_folder.rglob(records[2]["image"]))
    missing.unlink()
    items, skipped = vsr_eval.load_vsr_items(vsr.jsonl_dir, "test", vsr.image_folder)
    assert skipped == {BAD_FIELD: 1, MISSING_IMAGE: 1}
    assert len(items) == len(records) - 2 and len({item.id for item in items}) == len(items)
    assert items[-1].id.endswith("#2")


def test_scoring_reads_the_verdict() -> None:
    item = runner.EvalItem(id="x", prompt="p", reference="True", group="under")
    assert vsr_eval.score_vsr(item, "True") == {"correct": True, "extracted": "True"}
    assert vsr_eval.score_vsr(item, "It is not true.") == {"correct": False, "extracted": "False"}
    assert vsr_eval.score_vsr(item, "a cat") == {"correct": False, "extracted": None}


def test_summary_puts_the_majority_baseline_beside_each_accuracy() -> None:
    def record(relation: str, reference: str, extracted: str | None) -> dict[str, Any]:
        return {"group": relation, "reference": reference, "extracted": extracted, "correct": extracted == reference}

    records = [record("under", "False", "False"), record("under", "False", "True"), record("under", "True", None)]
    records += [record("behind", "False", "False")]
    summary = vsr_eval.summarize_vsr(records)
    metrics, relations = summary["metrics"], summary["relations"]
    assert metrics["majority_class"] == "False" and metrics["majority_baseline"] == 0.75
    assert metrics["accuracy"] == 0.5 and metrics["unparseable"] == 1
    assert (metrics["num_true"], metrics["num_false"]) == (1, 3)
    assert relations["under"] == {"num_items": 3, "correct": 1, "accuracy": 1 / 3, "majority_baseline": 2 / 3}
    assert relations["behind"]["majority_baseline"] == 1.0


def test_script_end_to_end(vsr: VSRFixture, checkpoint: Path, tmp_path: Path, capsys: Any) -> None:
    assert main(_argv(checkpoint, vsr, tmp_path)) == 0
    run = tmp_path / "vsr" / f"{checkpoint.name}+steps0"
    summary = json.loads((run / SUMMARY_FILE).read_text())
    records = [json.loads(line) for line in (run / PREDICTIONS_FILE).read_text().splitlines()[1:]]
    labels = [record["label"] for record in vsr.records["test"]]
    assert summary["num_items"] == len(records) == len(labels) and summary["split"] == "test"
    assert {"accuracy", "majority_baseline", "majority_class", "unparseable"} <= set(summary["metrics"])
    assert summary["metrics"]["majority_baseline"] == max(sum(labels), len(labels) - sum(labels)) / len(labels)
    relations = {record["relation"] for record in vsr.records["test"]}
    assert set(summary["relations"]) == relations == set(summary["groups"])
    assert summary["metrics"]["accuracy"] == sum(r["correct"] for r in records) / len(records)
    assert summary["skipped"] == {} and summary["data"]["question_template"] == DEFAULT_QUESTION_TEMPLATE
    assert "VSR test" in capsys.readouterr().out


def test_an_oracle_scores_one_and_a_constant_answer_scores_the_baseline(
    vsr: VSRFixture, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = {DEFAULT_QUESTION_TEMPLATE.format(question=r["caption"]): r["label"] for r in vsr.records["test"]}
    oracle = lambda model, images, prompts, **kw: [f"{bool(truth[p])}." for p in prompts]  # noqa: E731
    monkeypatch.setattr(runner, "generate_answers", oracle)
    assert main(_argv(checkpoint, vsr, tmp_path / "oracle")) == 0
    summary = json.loads((tmp_path / "oracle" / "vsr" / f"{checkpoint.name}+steps0" / SUMMARY_FILE).read_text())
    assert summary["metrics"]["accuracy"] == 1.0
    assert all(entry["accuracy"] == 1.0 for entry in summary["relations"].values())

    monkeypatch.setattr(runner, "generate_answers", lambda model, images, prompts, **kw: ["Yes"] * len(prompts))
    assert main(_argv(checkpoint, vsr, tmp_path / "yes")) == 0
    summary = json.loads((tmp_path / "yes" / "vsr" / f"{checkpoint.name}+steps0" / SUMMARY_FILE).read_text())
    assert summary["metrics"]["majority_class"] == "True"  # the fixture's labels tie: ties go to True
    assert summary["metrics"]["accuracy"] == summary["metrics"]["majority_baseline"]
    for entry in summary["relations"].values():
        assert entry["accuracy"] == entry["majority_baseline"]


def test_a_corrupt_picture_fails_the_spec_in_one_line(
    vsr: VSRFixture, checkpoint: Path, tmp_path: Path, capsys: Any
) -> None:
    picture = next(vsr.image_folder.rglob(vsr.records["test"][0]["image"]))
    picture.write_bytes(b"not a jpeg")
    assert main(_argv(checkpoint, vsr, tmp_path)) == 1
    out = capsys.readouterr().out
    failure = next(line for line in out.splitlines() if "FAILED" in line)
    assert picture.name in failure


def test_bad_arguments_exit_2(vsr: VSRFixture, checkpoint: Path, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(checkpoint), "--data", str(vsr.jsonl_dir)])
    assert exit_info.value.code == 2 and "--images is required" in capsys.readouterr().err
    assert run_main(main, _argv(checkpoint, vsr, tmp_path, "--split", "nope")) == 2
    assert "error:" in capsys.readouterr().err
