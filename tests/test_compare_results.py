"""scripts/compare_results.py on synthetic run directories in the real layout, and its statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scripts.compare_results import main

from theworld.evaluation.cli import run_main
from theworld.evaluation.compare import OVERALL, collect_runs, compare_runs, to_markdown
from theworld.evaluation.compare_stats import paired_difference_interval, wilson_interval
from theworld.evaluation.model_specs import BASELINE, EvalModelSpec
from theworld.evaluation.results import ResultsFile, write_json_atomic
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE, accuracy_by_group
from theworld.plots import PALETTE

N = 60  # items q0..q59; group "left" = even index, "right" = odd


def write_run(
    output_dir: Path,
    benchmark: str,
    spec: EvalModelSpec,
    correct: dict[str, bool | None],
    num_items: int = N,
    summary_benchmark: str | None = None,
) -> Path:
    """A run as the evaluation scripts write it: predictions.jsonl (header + records) and summary.json."""
    run_dir = output_dir / benchmark / spec.label
    results = ResultsFile(
        run_dir / PREDICTIONS_FILE, {"benchmark": benchmark, "model": spec.to_dict(), "split": "test"}
    )
    records: list[dict[str, Any]] = []
    for item_id, ok in correct.items():
        index = int(item_id[1:]) if item_id[1:].isdigit() else 0
        group = "left" if index % 2 == 0 else "right"
        records.append({"id": item_id, "group": group, "prompt": "?", "prediction": "yes", "correct": ok, "meta": {}})
    results.add(records)
    scored = [r for r in records if r["correct"] is not None]
    summary = {
        "benchmark": summary_benchmark or benchmark,
        "model": spec.to_dict(),
        "split": "test",
        "num_items": num_items,
        "primary_metric": "accuracy",
        "metrics": {"accuracy": sum(bool(r["correct"]) for r in scored) / len(scored) if scored else math.nan},
        "groups": accuracy_by_group(records),
    }
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    return run_dir


def outcomes(right: set[int], ids: range = range(N)) -> dict[str, bool | None]:
    return {f"q{i}": i in right for i in ids}


BASE = EvalModelSpec(BASELINE)
BETTER = EvalModelSpec("runs/ckpt")  # label "ckpt+steps0"
SAME = EvalModelSpec("runs/ckpt", world_ablation="zero")  # label "ckpt+zero-world+steps0"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """vsr: baseline right on q0-q29; BETTER right on q0-q49, q58 unscored, q59 missing, an extra item, incomplete;
    SAME right on q10-q39 (10 fixed, 10 broken). blink: two runs, for grouping by benchmark."""
    out = tmp_path / "eval"
    write_run(out, "vsr", BASE, outcomes(set(range(30))))
    better = outcomes(set(range(50)), range(58)) | {"q58": None, "x-extra": True}
    write_run(out, "vsr", BETTER, better, num_items=61)  # its summary counts one item more than it holds
    write_run(out, "vsr", SAME, outcomes(set(range(10, 40))))
    write_run(out, "blink", BASE, outcomes(set(range(5)), range(10)), num_items=10)
    write_run(out, "blink", BETTER, outcomes(set(range(6)), range(10)), num_items=10)
    return out


# ---- statistics ----
@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [
        # the worked examples of Newcombe (1998a, Stat Med 17:857), method 3 (Wilson score, no continuity correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # by hand: z² = 3.8415; centre = (0.8 + 0.19207) / 1.38415 = 0.71673;
        # half = 1.95996 / 1.38415 * sqrt(0.016 + 0.0096037) = 0.22657
        (8, 10, 0.4902, 0.9433),
    ],
)
def test_wilson_interval(correct: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(correct, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_of_no_items_is_undefined() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_paired_interval_by_hand() -> None:
    # 3 items, all fixed: p_new = 1, p_base = 0, phi = 0 (a margin is empty). Wilson(3, 3) = [0.43850, 1] and
    # Wilson(0, 3) = [0, 0.56150], so low = 1 - sqrt(0.56150² + 0.56150²) = 0.20591 and high = 1 + 0 = 1.
    assert paired_difference_interval(0, 3, 0, 0) == pytest.approx((1.0, 0.20591, 1.0), abs=5e-5)
    # Swapping the two runs mirrors the interval.
    estimate, low, high = paired_difference_interval(40, 12, 5, 23)
    assert paired_difference_interval(40, 5, 12, 23) == pytest.approx((-estimate, -high, -low))
    assert estimate == pytest.approx(7 / 80) and low < estimate < high
    # Only concordant items: estimate 0, an interval around it.
    estimate, low, high = paired_difference_interval(30, 0, 0, 30)
    assert estimate == 0 and low < 0 < high


@pytest.mark.parametrize("table", [(100, 30, 15, 55), (59, 6, 16, 80)])
def test_paired_interval_agrees_with_a_paired_bootstrap(table: tuple[int, int, int, int]) -> None:
    differences = np.repeat([0, 1, -1, 0], table)
    rng = np.random.default_rng(0)
    means = differences[rng.integers(0, len(differences), (20000, len(differences)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert paired_difference_interval(*table)[1:] == pytest.approx((low, high), abs=0.012)


# ---- comparison ----
def test_deltas_intervals_and_missing_items(runs: Path) -> None:
    comparisons = compare_runs(collect_runs([runs]))
    assert [c.benchmark for c in comparisons] == ["blink", "vsr"]
    vsr = comparisons[1]
    assert vsr.baseline == BASELINE == vsr.runs[0].label  # default baseline, first row
    assert vsr.columns == [OVERALL, "left", "right"]

    base = vsr.accuracy[BASELINE][OVERALL]
    assert (base.value, base.n) == (0.5, 60) and (base.low, base.high) == wilson_interval(30, 60)

    better = vsr.delta[BETTER.label][OVERALL]  # q58 unscored, q59 missing: 58 paired items, 20 fixed, none broken
    assert (better.value, better.n) == (pytest.approx(20 / 58), 58) and better.excludes_zero
    left = vsr.delta[BETTER.label]["left"]  # even items: q30..q48 fixed (10 of 29)
    assert (left.value, left.n) == (pytest.approx(10 / 29), 29)

    same = vsr.delta[SAME.label][OVERALL]  # 10 fixed, 10 broken
    assert (same.value, same.n) == (0.0, 60) and same.low < 0 < same.high and not same.excludes_zero

    coverage = vsr.coverage[BETTER.label]
    assert coverage.only_baseline == ["q59"] and coverage.only_run == ["x-extra"]
    assert coverage.scored_by_one == ["q58"]
    assert vsr.coverage[SAME.label].only_baseline == vsr.coverage[SAME.label].only_run == []


def test_script_writes_markdown_and_plot(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    markdown_file, plot = tmp_path / "out" / "comparison.md", tmp_path / "out" / "comparison.png"
    assert main([str(runs), "--output", str(markdown_file), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    markdown = markdown_file.read_text()
    assert markdown.strip() in printed

    sections = markdown.split("## ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["blink", "vsr"]
    vsr_rows = [line for line in sections[1].splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in vsr_rows] == [
        f"| {BASELINE} (baseline)",
        f"| {BETTER.label}",
        f"| {SAME.label}",
    ]
    better_cells = vsr_rows[1].split(" | ")
    assert better_cells[1:3] == ["59/60", "58"]  # scored / records, paired
    assert better_cells[4].startswith(f"{100 * 20 / 58:+.1f} [") and better_cells[4].endswith("]*")
    assert vsr_rows[2].split(" | ")[4].startswith("+0.0 [") and not vsr_rows[2].split(" | ")[4].endswith("*")
    assert "`q59`" in sections[1] and "`x-extra`" in sections[1] and "`q58`" in sections[1]
    assert f"`{BETTER.label}`: 60 of 61 items" in sections[1]  # incomplete run noted

    with Image.open(plot) as image:
        image.load()
        assert image.format == "PNG" and image.size == (800, 2 * 440)  # one 440-pixel panel per benchmark
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20) or []}
    assert {PALETTE[0], PALETTE[1], PALETTE[2]} <= colours  # three models' bars


def test_baseline_choice(runs: Path) -> None:
    chosen = compare_runs(collect_runs([runs / "vsr" / SAME.label, runs / "vsr" / BETTER.label]))
    assert chosen[0].baseline == SAME.label  # no gemma3-baseline: the first run given
    chosen = compare_runs(collect_runs([runs / "vsr"]), baseline=BETTER.label)
    assert chosen[0].baseline == BETTER.label and BASELINE in chosen[0].delta
    assert chosen[0].delta[BASELINE][OVERALL].value == pytest.approx(-20 / 58)


def test_a_reported_primary_metric_that_is_not_pooled_accuracy_gets_a_column(runs: Path) -> None:
    summary_file = runs / "blink" / BETTER.label / SUMMARY_FILE
    summary = json.loads(summary_file.read_text())
    summary["metrics"]["accuracy"] = 0.55  # e.g. BLINK's mean over tasks, not the pooled 6/10
    write_json_atomic(summary_file, summary)
    blink = to_markdown(compare_runs(collect_runs([runs / "blink"])))
    header, _, base_row, better_row = [line.split(" | ") for line in blink.splitlines() if line.startswith("| ")]
    assert header[3] == "accuracy (summary)" and (base_row[3], better_row[3]) == ("50.0", "55.0")
    assert better_row[4].startswith("60.0 [")  # the pooled accuracy still has its own column


def test_same_label_from_two_output_dirs_stays_apart(runs: Path, tmp_path: Path) -> None:
    again = write_run(tmp_path / "eval-rerun", "vsr", BASE, outcomes(set(range(31))))
    labels = [r.label for r in collect_runs([runs / "vsr", again])]
    assert labels[-1] == f"{BASELINE} [{again}]" and f"{BASELINE} [{runs / 'vsr' / BASELINE}]" in labels
    assert len(set(labels)) == len(labels)


def test_an_empty_run_found_by_scanning_is_skipped(runs: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_run(runs, "vsr", EvalModelSpec("runs/ckpt", num_world_steps=4), {})  # a spec that failed at once
    assert sorted(r.label for r in collect_runs([runs / "vsr"])) == sorted([BASELINE, BETTER.label, SAME.label])
    assert "skipped" in caplog.text and "ckpt+steps4" in caplog.text


def test_judged_copies_are_compared_with_judge(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SpatialRGPT-Bench re-judging writes judged-<judge>.jsonl + summary-<judge>.json beside predictions.jsonl."""
    for spec, right in ((BASE, set(range(10))), (BETTER, set(range(40)))):
        run_dir = runs / "vsr" / spec.label
        header = {"benchmark": "vsr", "judge": "openai:stub", "model": spec.to_dict()}
        judged = [{"id": f"q{i}", "group": "left", "correct": i in right} for i in range(N)]
        ResultsFile(run_dir / "judged-openai_stub.jsonl", header).add(judged)
        write_json_atomic(run_dir / "summary-openai_stub.json", {"benchmark": "vsr", "model": spec.to_dict()})
    found = collect_runs([runs / "vsr" / BASE.label, runs / "vsr" / BETTER.label], judge="openai:stub")
    assert [r.path.name for r in found] == ["judged-openai_stub.jsonl"] * 2
    assert compare_runs(found)[0].delta[BETTER.label][OVERALL].value == pytest.approx(30 / 60)
    summary_named = runs / "vsr" / BASE.label / "summary-openai_stub.json"
    assert collect_runs([summary_named])[0].path.name == "judged-openai_stub.jsonl"
    assert main([str(runs / "vsr"), "--judge", "openai:stub"]) == 0
    assert f"| {BETTER.label} | 60/60 | 60 | 66.7 [" in capsys.readouterr().out


def test_files_as_arguments_and_benchmark_filter(runs: Path) -> None:
    found = collect_runs([runs / "vsr" / BASE.label / SUMMARY_FILE, runs / "vsr" / SAME.label / PREDICTIONS_FILE])
    assert [r.label for r in found] == [BASELINE, SAME.label]
    assert {r.benchmark for r in collect_runs([runs], benchmark="blink")} == {"blink"}


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_one_line_errors(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such file or directory" in _error([str(tmp_path / "missing")], capsys)

    not_results = tmp_path / "notes.jsonl"
    not_results.write_text(json.dumps({"id": 1}) + "\n")
    assert "not a results file" in _error([str(not_results)], capsys)

    (tmp_path / "no-runs").mkdir()
    assert "no predictions.jsonl" in _error([str(tmp_path / "no-runs")], capsys)

    empty = write_run(tmp_path / "other", "vsr", BASE, {})
    assert "empty run" in _error([str(empty)], capsys)
    assert "no runs given" in _error([str(tmp_path / "other")], capsys)  # found by scanning: skipped, none left

    mismatched = write_run(tmp_path / "mixed", "vsr", BASE, outcomes({1}), summary_benchmark="blink")
    assert "mismatched benchmark" in _error([str(mismatched)], capsys)
    assert "mismatched benchmark" in _error([str(runs / "vsr" / BASE.label), "--benchmark", "blink"], capsys)

    assert "--baseline 'nobody': no run has this label" in _error([str(runs), "--baseline", "nobody"], capsys)
    bad_record = tmp_path / "bad" / PREDICTIONS_FILE
    ResultsFile(bad_record, {"benchmark": "vsr"}).add([{"id": "q0", "group": "left", "correct": "yes"}])
    assert f"{bad_record}:2: 'correct' must be" in _error([str(bad_record)], capsys)
