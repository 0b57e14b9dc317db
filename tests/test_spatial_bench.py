"""SpatialRGPT-Bench: the real row format, prompts and drawn regions, metrics, and both scripts end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
from PIL import Image

from theworld import TheWorld
from theworld.evaluation.commands.judge import main as judge_main
from theworld.evaluation.commands.spatial import main as eval_main
from theworld.evaluation.judges import DeterministicJudge
from theworld.evaluation.spatial_bench import (
    CATEGORY_GROUP,
    NO_ANSWER,
    QUALITATIVE_GROUPS,
    QUANTITATIVE_GROUPS,
    SpatialQuestion,
    summarize,
)
from theworld.evaluation.spatial_bench_data import load_items
from theworld.testing.spatial_bench_fixtures import (
    UNKNOWN_CATEGORY,
    SpatialBenchFixture,
    write_jsonl,
    write_spatial_bench,
)
from theworld.testing.stub_openai import StubOpenAI, json_reply

KEY = "sk-test-SECRET-abcdef"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> SpatialBenchFixture:
    return write_spatial_bench(tmp_path_factory.mktemp("bench"), include_unknown=True)


def test_the_24_categories_and_their_groups() -> None:
    assert len(CATEGORY_GROUP) == 24
    assert sum(len(c) for c in QUALITATIVE_GROUPS.values()) == 18 and len(QUANTITATIVE_GROUPS) == 6
    assert QUANTITATIVE_GROUPS["direct distance"] == ("distance_data",)


def test_loading_the_bench_jsonl_folder(bench: SpatialBenchFixture) -> None:
    items, source = load_items(bench.root)
    assert source == str(bench.jsonl.resolve()) and len(items) == len(bench.records)
    assert {item.group for item in items} == set(CATEGORY_GROUP) | {UNKNOWN_CATEGORY}
    for item, record in zip(items, bench.records, strict=True):
        assert item.id == record["id"] and item.reference == record["conversations"][1]["value"]
        assert "<mask>" not in item.prompt and "<image>" not in item.prompt
        assert item.prompt.count("Region [") == len(record["bbox"]) == item.meta["num_regions"]
    assert items[0].prompt == "Is Region [0] below Region [1]?"
    assert items[0].meta["region_names"] == ["red", "green"]


def test_regions_are_drawn_inside_their_boxes_only(bench: SpatialBenchFixture) -> None:
    drawn, _ = load_items(bench.root, limit=1)
    plain, _ = load_items(bench.jsonl, images=bench.image_folder, draw_boxes=False, limit=1)
    with_boxes, without = np.asarray(drawn[0].load_images()[0]), np.asarray(plain[0].load_images()[0])
    raw = Image.open(bench.image_folder / bench.records[0]["image_info"]["file_path"]).convert("RGB")
    assert np.array_equal(without, np.asarray(raw)) and plain[0].meta["region_names"] == []
    changed = np.argwhere((with_boxes != without).any(axis=-1))
    assert len(changed) > 0
    inside = np.zeros(without.shape[:2], dtype=bool)
    for x1, y1, x2, y2 in bench.records[0]["bbox"]:
        inside[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1] = True
    assert inside[changed[:, 0], changed[:, 1]].all()


def test_copies_with_text_fields_and_embedded_pictures(bench: SpatialBenchFixture, tmp_path: Path) -> None:
    # A save_to_disk copy whose dict/list fields were serialized as strings (JSON and Python literals).
    rows = [
        {**r, "image_info": json.dumps(r["image_info"]), "conversations": json.dumps(r["conversations"]),
         "qa_info": str(r["qa_info"]), "bbox": str(r["bbox"])}
        for r in bench.records[:4]
    ]  # fmt: skip
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    saved, _ = load_items(tmp_path / "saved", split="train", images=bench.image_folder)
    # A parquet copy that carries each picture in an `image` column (no picture folder needed).
    embedded = [
        {**r, "image": {"bytes": (bench.image_folder / r["image_info"]["file_path"]).read_bytes(), "path": None}}
        for r in bench.records[:4]
    ]
    features = datasets.Features({"image": datasets.Image(), **{k: datasets.Json() for k in bench.records[0]}})
    datasets.Dataset.from_list(embedded, features=features).to_parquet(str(tmp_path / "val.parquet"))
    parquet, _ = load_items(tmp_path / "val.parquet")
    reference, _ = load_items(bench.root, limit=4)
    for copy in (saved, parquet):
        assert [(i.id, i.prompt, i.reference, i.meta["category"]) for i in copy] == [
            (i.id, i.prompt, i.reference, i.meta["category"]) for i in reference
        ]
        assert np.array_equal(np.asarray(copy[1].load_images()[0]), np.asarray(reference[1].load_images()[0]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(conversations=[r["conversations"][0]]), r"row 2: field 'conversations'.*gpt turn"),
        (lambda r: r.update(bbox=r["bbox"][:1]), r"row 2: .*bbox.* 1 box\(es\) but the conversation has 2"),
        (lambda r: r.update(qa_info="not a dict"), r"row 2: field 'qa_info': expected a dict"),
        (lambda r: r.update(image_info={"height": 96}), r"row 2: field 'image_info' names no picture"),
    ],
)
def test_a_bad_row_is_one_line_naming_it(bench: SpatialBenchFixture, tmp_path: Path, edit: Any, message: str) -> None:
    records = json.loads(json.dumps(bench.records[:3]))
    edit(records[1])
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(ValueError, match=message) as raised:
        load_items(path, images=bench.image_folder)
    assert "\n" not in str(raised.value)


def test_missing_pictures_are_one_error_with_their_count(bench: SpatialBenchFixture, tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=rf"{len(bench.records)} of {len(bench.records)} picture\(s\) not found"
    ):
        load_items(bench.jsonl, images=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_items(tmp_path / "nothing.jsonl")


def _record(category: str, correct: bool | None, error: float | None = None, reason: str = "") -> dict[str, Any]:
    return {"id": str(id(object())), "group": category, "correct": correct, "error": error, "reason": reason,
            "meta": {"category": category}}  # fmt: skip


def test_metric_arithmetic_on_hand_computed_cases() -> None:
    records = [
        _record("below_predicate", True),
        _record("below_choice", True),
        _record("left_predicate", False),
        _record("left_choice", False, reason=NO_ANSWER),
        _record("right_choice", True),
        _record("behind_predicate", None, reason="judge: timeout"),
        _record("distance_data", True, 0.1),
        _record("distance_data", False, 0.5),
        _record("distance_data", False, None, NO_ANSWER),
        _record("horizontal_distance_data", True, 0.2),
        _record("direction", True, 30.0),
        _record("direction", False, 90.0),
        _record(UNKNOWN_CATEGORY, None, reason="unknown category"),
    ]
    summary = summarize(records)
    qualitative, quantitative, metrics = summary["qualitative"], summary["quantitative"], summary["metrics"]
    assert metrics["qualitative_accuracy"] == pytest.approx(3 / 5)  # micro: 3 right of 5 judged (groups: 1.0, 1/3)
    assert qualitative["below/above"]["accuracy"] == 1.0 and qualitative["left/right"]["accuracy"] == pytest.approx(
        1 / 3
    )
    assert qualitative["behind/front"]["judged"] == 0 and qualitative["behind/front"]["unjudged"] == 1
    assert math.isnan(qualitative["behind/front"]["accuracy"])
    direct = quantitative["direct distance"]
    assert (direct["total"], direct["judged"], direct["correct"], direct["unanswered"]) == (3, 3, 1, 1)
    assert direct["mean_error"] == pytest.approx(0.3) and direct["errors_counted"] == 2
    assert quantitative["horizontal distance"]["total"] == 1  # exact matching: not folded into direct distance
    assert quantitative["direction"]["accuracy"] == 0.5 and quantitative["direction"]["mean_error"] == 60.0
    assert metrics["quantitative_success"] == pytest.approx(3 / 6)
    assert (metrics["items"], metrics["judged"], metrics["unjudged"], metrics["unanswered"]) == (13, 11, 2, 2)
    assert summary["unknown_categories"] == {UNKNOWN_CATEGORY: 1}
    assert summary["unjudged_reasons"] == {"judge: timeout": 1, "unknown category": 1}
    assert UNKNOWN_CATEGORY not in summary["categories"]


def test_perfect_answers_score_everything_and_no_category_is_folded(bench: SpatialBenchFixture) -> None:
    items, _ = load_items(bench.root)
    judge = DeterministicJudge()
    records = [
        {
            "id": i.id,
            "group": i.group,
            **judge.judge(SpatialQuestion.from_item(i), i.reference).fields(),
            "meta": i.meta,
        }
        for i in items
    ]
    summary = summarize(records)
    counts = {category: stats["total"] for category, stats in summary["categories"].items()}
    assert set(counts) == set(CATEGORY_GROUP)
    assert summary["quantitative"]["direct distance"]["total"] == counts["distance_data"] == 2  # not 2+2+2+1
    assert all(stats["accuracy"] == 1.0 for stats in summary["categories"].values())
    assert summary["metrics"]["unjudged"] == 1 and summary["unknown_categories"] == {UNKNOWN_CATEGORY: 1}


@pytest.fixture(scope="module")
def world_dir(world_model: TheWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("world") / "tiny-world"
    world_model.save_pretrained(str(directory))
    return directory


def test_eval_script_end_to_end_then_rejudging_without_the_model(
    bench: SpatialBenchFixture, world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "eval"
    argv = ["--model", str(world_dir), "--data", str(bench.root), "--output-dir", str(out), "--device", "cpu",
            "--dtype", "float32", "--batch-size", "16", "--max-new-tokens", "6",
            "--num_world_steps", "0,4"]  # fmt: skip
    assert eval_main(argv) == 1  # steps4 fails (no rollout in this version), steps0 finishes
    run = out / "spatial_rgpt_bench" / "tiny-world+steps0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["judge"] == "deterministic" and summary["num_items"] == len(bench.records)
    assert set(summary["categories"]) == set(CATEGORY_GROUP)
    assert summary["unknown_categories"] == {UNKNOWN_CATEGORY: 1}
    metrics = summary["metrics"]
    assert metrics["judged"] + metrics["unjudged"] == len(bench.records)
    lines = (run / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == len(bench.records) + 1  # header + one record per item
    assert not (out / "spatial_rgpt_bench" / "tiny-world+steps4" / "summary.json").exists()

    # Resuming a finished run computes nothing and writes the same summary.
    assert eval_main([*argv[:-1], "0"]) == 0
    assert (run / "predictions.jsonl").read_text().splitlines() == lines
    assert json.loads((run / "summary.json").read_text()) == summary

    # The same run judged by an OpenAI-compatible judge (the stub): the key goes only into the request header.
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    reply = json_reply({"your_mark": 1, "answer_in_meters": 1.0, "response_in_meters": 1.1, "answer_direction": 3,
                        "response_direction": 4})  # fmt: skip
    asked = [r for r in map(json.loads, lines[1:]) if r["meta"]["category"] != UNKNOWN_CATEGORY and r["prediction"]]
    with StubOpenAI(default=reply) as stub:
        judge_args = ["--judge", "openai:stub", "--judge-base-url", stub.base_url]
        assert eval_main([*argv[:-1], "0", *judge_args]) == 0
        assert len(stub.requests) == len(asked)  # the unknown category (and an empty answer) is not sent
        assert all(r.authorization == f"Bearer {KEY}" for r in stub.requests)
        judged = json.loads((run / "summary.json").read_text())
        assert judged["judge"] == "openai:stub" and judged["metrics"]["unjudged"] == 1
        assert judged["metrics"]["judged"] == len(bench.records) - 1
        records = [json.loads(line) for line in (run / "judged-openai_stub.jsonl").read_text().splitlines()[1:]]
        assert sum(r["correct"] is True for r in records) == len(asked)  # mark 1; 1.1 m vs 1.0 m; 4 vs 3 o'clock

        # Re-judging the saved predictions loads no model; the judged file resumes (nothing is asked again).
        def no_model(*args: object, **kwargs: object) -> None:
            raise AssertionError("judge_predictions loaded a model")

        monkeypatch.setattr(TheWorld, "from_pretrained", no_model)
        monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", no_model)
        assert judge_main([str(run / "predictions.jsonl"), *judge_args]) == 0
        assert len(stub.requests) == len(asked)
    assert json.loads((run / "summary-openai_stub.json").read_text()) == judged
    assert judge_main([str(run / "predictions.jsonl")]) == 0  # the deterministic judge agrees with the eval's own
    assert json.loads((run / "summary-deterministic.json").read_text()) == summary
    for written in run.iterdir():
        assert KEY not in written.read_text(), written


def test_eval_script_bad_options_are_one_line(bench: SpatialBenchFixture, tmp_path: Path, capsys: Any) -> None:
    from theworld.evaluation.cli import run_main

    base = ["--model", "x", "--data", str(bench.root), "--output-dir", str(tmp_path)]
    assert run_main(eval_main, [*base, "--judge", "gpt4"]) == 2
    assert run_main(eval_main, ["--model", "x", "--data", str(tmp_path / "missing")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("error: --judge") and errors[1].startswith("error: --data") and len(errors) == 2
    assert not list(tmp_path.iterdir())  # nothing was generated
