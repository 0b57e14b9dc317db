"""BLINK: the fixture copy in the real row format, every local layout, scoring by letter, the summary, the script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import datasets.config
import numpy as np
import pyarrow.parquet as pq
import pytest

from theworld import TheWorld
from theworld.evaluation import blink, runner
from theworld.evaluation.cli import parse_args, run_main
from theworld.evaluation.commands.blink import build_parser, main
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE, EvalItem
from theworld.testing.blink_fixtures import FIXTURE_TASKS, IMAGE_COLUMNS, BlinkFixture, write_blink_dataset

pytestmark = pytest.mark.usefixtures("one_thread", "datasets_cache")

TASKS = ",".join(FIXTURE_TASKS)
NUM_VAL = sum(len(answers) for _, _, _, answers, _ in FIXTURE_TASKS.values())
NUM_TEST = sum(hidden for *_, hidden in FIXTURE_TASKS.values())


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BlinkFixture]:
    root = tmp_path_factory.mktemp("blink")
    return {layout: write_blink_dataset(root / layout, layout) for layout in ("hub", "flat", "saved", "jsonl")}


@pytest.fixture(scope="module")
def checkpoint(world_model: TheWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("theworld-checkpoint")
    world_model.save_pretrained(directory)
    return directory


def _pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_fixture_is_in_the_real_row_format(copies: dict[str, BlinkFixture]) -> None:
    table = pq.read_table(copies["hub"].path / "Forensic_Detection" / "val-00000-of-00001.parquet")
    features = datasets.Features.from_arrow_schema(table.schema)
    assert all(isinstance(features[column], datasets.Image) for column in IMAGE_COLUMNS)
    assert features["choices"] == datasets.List(datasets.Value("string"))
    assert {"idx", "question", "sub_task", "answer", "prompt", "explanation", "isVisualPrompt"} <= set(features)
    rows = copies["hub"].rows
    counts = {sum(row[c] is not None for c in IMAGE_COLUMNS) for row in rows["val"]}
    assert counts == {1, 2, 3, 4}
    assert all(row["answer"] == "hidden" for row in rows["test"]) and rows["test"]
    assert all(row["idx"].startswith("val_") and row["answer"].startswith("(") for row in rows["val"])
    assert "Select from the following choices.\n(A) " in rows["val"][0]["prompt"]


@pytest.mark.parametrize("layout", ["hub", "flat", "saved", "jsonl"])
@pytest.mark.parametrize("split", ["val", "test"])
def test_every_local_layout_gives_the_same_items_with_every_picture(
    copies: dict[str, BlinkFixture], layout: str, split: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real_decode = blink.decode_image_value
    monkeypatch.setattr(blink, "decode_image_value", lambda v, w, f=None: decoded.append(w) or real_decode(v, w, f))
    source = blink.BlinkSource(split, data=copies[layout].path)
    items = blink.load_blink_items(source, list(FIXTURE_TASKS))
    assert decoded == []  # pictures are read only when an item is generated

    expected = copies[layout].rows[split]
    by_id = {item.id: item for item in items}
    assert sorted(by_id) == sorted(row["idx"] for row in expected)
    for row in expected:
        item = by_id[row["idx"]]
        assert item.prompt == row["prompt"] and item.group == row["sub_task"]
        assert item.meta["choices"] == row["choices"]
        assert item.reference == (None if split == "test" else row["answer"][1])
        pictures = item.load_images()
        wanted = [row[column] for column in IMAGE_COLUMNS if row[column] is not None]
        assert len(pictures) == len(wanted)
        assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(pictures, wanted, strict=True))
    assert decoded  # ... and then they were


def test_limit_is_per_task_and_tasks_keep_their_order(copies: dict[str, BlinkFixture]) -> None:
    items = blink.load_blink_items(
        blink.BlinkSource("val", data=copies["flat"].path), ["Art_Style", "Relative_Depth"], 1
    )
    assert [item.id for item in items] == ["val_Art_Style_1", "val_Relative_Depth_1"]


def test_parse_tasks() -> None:
    assert blink.parse_tasks("all") == list(blink.BLINK_TASKS) and len(blink.BLINK_TASKS) == 14
    assert blink.parse_tasks("Jigsaw, Relative_Depth,Jigsaw") == ["Jigsaw", "Relative_Depth"]
    with pytest.raises(ValueError, match=r"unknown BLINK task\(s\) Depth; valid: all, Art_Style") as error:
        blink.parse_tasks("Jigsaw,Depth")
    assert "\n" not in str(error.value)


def test_config_file_supplies_the_defaults_and_the_command_line_wins() -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "eval_blink.json"
    args = parse_args(build_parser(), ["--config", str(config)])
    assert (args.model, args.split, args.tasks, args.num_world_steps) == ("gemma3-baseline", "val", "all", "0")
    assert not Path(args.output_dir).is_absolute() and args.batch_size > 0 and args.max_new_tokens > 0
    args = parse_args(build_parser(), ["--config", str(config), "--model", "ckpt", "--tasks", "Jigsaw"])
    assert (args.model, args.tasks) == ("ckpt", "Jigsaw")


def _rewrite_jsonl(path: Path, edit: Any) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    edit(rows)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: [row.pop("prompt") for row in rows], r"missing column\(s\) prompt"),
        (lambda rows: rows[0].update(answer="yes"), r"val_Relative_Depth_1: .*expected a choice letter"),
        (lambda rows: rows[0].update(answer="(D)"), r"val_Relative_Depth_1: answer '\(D\)' but only 2 choices"),
        (lambda rows: rows[0].update(choices=[]), r"val_Relative_Depth_1: field 'choices' must be a non-empty list"),
        (lambda rows: rows[1].update(idx=rows[0]["idx"]), r"appears twice"),
    ],
)
def test_malformed_rows_are_one_line_errors(tmp_path: Path, edit: Any, message: str) -> None:
    fixture = write_blink_dataset(tmp_path / "copy", "jsonl")
    _rewrite_jsonl(fixture.path / "val.jsonl", edit)
    with pytest.raises(ValueError, match=message) as error:
        blink.load_blink_items(blink.BlinkSource("val", data=fixture.path), list(FIXTURE_TASKS))
    assert "\n" not in str(error.value)


def test_a_row_without_pictures_fails_when_generated(tmp_path: Path) -> None:
    fixture = write_blink_dataset(tmp_path / "copy", "jsonl")
    _rewrite_jsonl(fixture.path / "val.jsonl", lambda rows: rows[0].update(image_1=None))
    items = blink.load_blink_items(blink.BlinkSource("val", data=fixture.path), ["Relative_Depth"])
    with pytest.raises(ValueError, match="val_Relative_Depth_1: no picture in image_1"):
        items[0].load_images()


def test_missing_tasks_and_sources_are_one_line_errors(copies: dict[str, BlinkFixture], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no folder for task Jigsaw .*pick them with --tasks"):
        blink.BlinkSource("val", data=copies["hub"].path).rows("Jigsaw")
    with pytest.raises(ValueError, match=r"no val rows of task Jigsaw .*it holds: Art_Style"):
        blink.BlinkSource("val", data=copies["saved"].path).rows("Jigsaw")
    with pytest.raises(ValueError, match="has no split 'train'"):
        blink.BlinkSource("train", data=copies["saved"].path).rows("Art_Style")
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        blink.BlinkSource("val", data=tmp_path / "nowhere").rows("Art_Style")


def test_hub_id_offline_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["--model", "gemma3-baseline", "--tasks", "Relative_Depth", "--output-dir", str(tmp_path)]
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: BLINK: cannot load 'BLINK-Benchmark/BLINK' config 'Relative_Depth' split 'val'")
    assert "\n" not in err and "--data" in err


def _item(reference: str | None, choices: list[str]) -> EvalItem:
    return EvalItem(id="x", prompt="p", reference=reference, group="T", meta={"choices": choices})


def test_scoring_compares_letters_not_strings() -> None:
    item = _item("A", ["A is closer", "B is closer"])
    assert blink.score_blink(item, "(A)") == {"correct": True, "extracted": "A"}
    assert blink.score_blink(item, "A") == {"correct": True, "extracted": "A"}
    assert blink.score_blink(item, "B is closer") == {"correct": False, "extracted": "B"}
    assert blink.score_blink(item, "no idea") == {"correct": False, "extracted": None}
    assert blink.score_blink(_item(None, ["x", "y"]), "(A)") == {"correct": None, "extracted": "A"}


def _record(task: str, reference: str | None, extracted: str | None) -> dict[str, Any]:
    correct = None if reference is None else extracted == reference
    return {"group": task, "reference": reference, "extracted": extracted, "correct": correct}


def test_summary_is_the_unweighted_mean_over_answered_tasks() -> None:
    records = [_record("Big", "A", "A")] * 3 + [_record("Big", "B", "A")]  # 3/4, always (A) 3/4
    records += [_record("Small", "B", "B"), _record("Small", "B", None)]  # 1/2, always (A) 0
    records += [_record("Hidden", None, "A"), _record("Hidden", None, None)]
    summary = blink.summarize_blink(records)
    tasks, metrics = summary["tasks"], summary["metrics"]
    assert tasks["Big"]["accuracy"] == 0.75 and tasks["Small"]["accuracy"] == 0.5
    assert metrics["accuracy"] == pytest.approx((0.75 + 0.5) / 2)  # not 4/6, the item-weighted mean
    assert metrics["always_a_accuracy"] == pytest.approx((0.75 + 0.0) / 2)
    assert tasks["Hidden"]["accuracy"] is None and tasks["Hidden"]["always_a"] is None
    assert metrics["hidden_answer_tasks"] == ["Hidden"] and metrics["num_tasks_scored"] == 2
    assert metrics["unparseable"] == 2 and tasks["Hidden"]["num_items"] == 2
    assert blink.summarize_blink([])["metrics"]["accuracy"] is None


def _run(copy: BlinkFixture, checkpoint: Path, out: Path, *extra: str) -> int:
    argv = ["--model", str(checkpoint), "--data", str(copy.path), "--tasks", TASKS, "--output-dir", str(out)]
    return main([*argv, "--batch-size", "4", "--max-new-tokens", "6", *extra])


def test_script_on_val_and_hidden_test(
    copies: dict[str, BlinkFixture], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(copies["hub"], checkpoint, tmp_path) == 0
    run = tmp_path / "blink" / f"{checkpoint.name}+steps0"
    summary = json.loads((run / SUMMARY_FILE).read_text())
    records = [json.loads(line) for line in (run / PREDICTIONS_FILE).read_text().splitlines()[1:]]
    assert summary["num_items"] == len(records) == NUM_VAL and summary["split"] == "val"
    assert summary["primary_metric"] == "accuracy" and summary["benchmark"] == "blink"
    assert {"accuracy", "always_a_accuracy", "unparseable", "num_tasks_scored"} <= set(summary["metrics"])
    assert sorted(summary["tasks"]) == sorted(FIXTURE_TASKS) == sorted(summary["groups"])
    for task, (_, _, _, answers, _) in FIXTURE_TASKS.items():
        entry = summary["tasks"][task]
        assert entry["num_items"] == len(answers)
        assert entry["always_a"] == pytest.approx(answers.count("(A)") / len(answers))
        assert entry["accuracy"] == pytest.approx(
            sum(r["correct"] for r in records if r["group"] == task) / len(answers)
        )
    assert all(r["correct"] == (r["extracted"] == r["reference"]) for r in records)
    assert "BLINK val" in capsys.readouterr().out

    assert _run(copies["saved"], checkpoint, tmp_path / "test", "--split", "test") == 0
    summary = json.loads((tmp_path / "test" / "blink" / f"{checkpoint.name}+steps0" / SUMMARY_FILE).read_text())
    assert summary["num_items"] == NUM_TEST and summary["metrics"]["accuracy"] is None
    assert summary["metrics"]["hidden_answer_tasks"] == sorted(FIXTURE_TASKS)
    assert all(entry["accuracy"] is None for entry in summary["tasks"].values())
    assert "hidden answers (no accuracy; predictions saved)" in capsys.readouterr().out


@pytest.mark.parametrize(("answer", "expected"), [("(A)", "always_a"), ("Answer: Z", "zero")])
def test_a_constant_answer_scores_its_baseline(
    copies: dict[str, BlinkFixture],
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    expected: str,
) -> None:
    """A model that always says "(A)" gets exactly the always-(A) column; one no letter is read from gets zero."""
    monkeypatch.setattr(runner, "generate_answers", lambda model, images, prompts, **kw: [answer] * len(prompts))
    assert _run(copies["flat"], checkpoint, tmp_path) == 0
    summary = json.loads((tmp_path / "blink" / f"{checkpoint.name}+steps0" / SUMMARY_FILE).read_text())
    for entry in summary["tasks"].values():
        assert entry["accuracy"] == (entry["always_a"] if expected == "always_a" else 0.0)
    assert summary["metrics"]["unparseable"] == (0 if expected == "always_a" else NUM_VAL)
