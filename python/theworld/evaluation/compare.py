"""Compare evaluation runs: accuracy per model and group with 95% CIs, and paired deltas against a baseline.

Input: run directories (`<output_dir>/<benchmark>/<label>/` holding `predictions.jsonl` + `summary.json`), any
directory above them (every run below it is taken), or the two files themselves; with `judge`, the re-judged
`judged-<judge>.jsonl` + `summary-<judge>.json` of SpatialRGPT-Bench runs instead. The table's metric is accuracy
recomputed from the per-item `"correct"` field (True / False; None = unscored, left out), overall and per group.

Statistics (all 95%; described in `theworld.evaluation.compare_stats`, re-exported here): one accuracy has the
Wilson score interval; a model minus the baseline, on the items BOTH runs scored (matched by item id), has Newcombe's
hybrid-score interval for paired proportions (closed-form, deterministic). A delta whose interval excludes 0 is
marked with `*`.

The delta is taken on the common scored items, so it can differ from the difference of the two accuracies shown
when the runs cover different items; items found in one run only (or scored in one only) are listed under the table.

[Contract] runs of different benchmarks are never compared with each other; per benchmark, the baseline is the run
labelled `--baseline LABEL`, else `gemma3-baseline` when present, else the first run given (a `--baseline` label that
no run has is an error).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ImageDraw

from theworld.evaluation.compare_stats import (
    Z95,
    Coverage,
    Estimate,
    accuracy,
    coverage,
    paired_delta,
    paired_difference_interval,
    wilson_interval,
)
from theworld.evaluation.judges import judge_slug
from theworld.evaluation.model_specs import BASELINE
from theworld.evaluation.results import read_results
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE
from theworld.plot_charts import BarSeries, bar_chart
from theworld.plots import color, font, new_figure, panel_boxes, text_size

__all__ = [  # the statistics live in compare_stats; their public names stay importable from here
    "MAX_LISTED_IDS",
    "OVERALL",
    "Z95",
    "BenchmarkComparison",
    "Coverage",
    "EmptyRun",
    "Estimate",
    "Run",
    "accuracy",
    "choose_baseline",
    "collect_runs",
    "compare_runs",
    "coverage",
    "find_run_files",
    "load_run",
    "paired_delta",
    "paired_difference_interval",
    "plot_comparisons",
    "reported_metric",
    "results_name",
    "summary_beside",
    "to_markdown",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

OVERALL = "overall"
MAX_LISTED_IDS = 5  # ids shown per "only in one run" note; the count is always complete


# ---- runs ----
class EmptyRun(ValueError):
    """A results file with a header but no items (e.g. a spec that failed before its first batch)."""


@dataclass
class Run:
    """One evaluated model on one benchmark: its per-item records by id (file order) and its summary, if any."""

    benchmark: str
    label: str
    path: Path  # the per-item results file (predictions.jsonl or judged-<judge>.jsonl)
    records: dict[str, dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def scored(self) -> dict[str, bool]:
        return {i: bool(r["correct"]) for i, r in self.records.items() if r["correct"] is not None}

    def group_of(self, item_id: str) -> str:
        return str(self.records[item_id]["group"])


def results_name(judge: str | None = None) -> str:
    """The per-item file of a run: predictions.jsonl, or the re-judged copy `judged-<judge>.jsonl` (SpatialRGPT-Bench,
    see `theworld.evaluation.judges`)."""
    return PREDICTIONS_FILE if judge is None else f"judged-{judge_slug(judge)}.jsonl"


def summary_beside(results: Path) -> Path:
    """summary.json beside predictions.jsonl; summary-<judge>.json beside judged-<judge>.jsonl."""
    if results.name.startswith("judged-") and results.suffix == ".jsonl":
        return results.with_name(f"summary-{results.name[len('judged-') : -len('.jsonl')]}.json")
    return results.with_name(SUMMARY_FILE)


def _results_of_summary(path: Path) -> Path:
    if path.name == SUMMARY_FILE:
        return path.with_name(PREDICTIONS_FILE)
    if path.name.startswith("summary-") and path.suffix == ".json":
        return path.with_name(f"judged-{path.name[len('summary-') : -len('.json')]}.jsonl")
    return path


def find_run_files(paths: Iterable[str | Path], judge: str | None = None) -> list[tuple[Path, bool]]:
    """(per-item results file, named explicitly) for each argument: a file, a run directory, or a tree of runs."""
    name = results_name(judge)
    found: list[tuple[Path, bool]] = []
    for argument in paths:
        path = Path(argument)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if path.is_file():
            found.append((_results_of_summary(path), True))
        elif (path / name).is_file():
            found.append((path / name, True))
        else:
            below = sorted(path.rglob(name))
            if not below:
                raise ValueError(f"{path}: no {name} in this directory or below it (not a run directory)")
            found.extend((file, False) for file in below)
    unique: dict[Path, bool] = {}
    for file, explicit in found:
        unique[file.resolve()] = unique.get(file.resolve(), False) or explicit
    return list(unique.items())


def load_run(path: str | Path, judge: str | None = None) -> Run:
    """The run of a results file (or its summary, or its run directory); one-line errors for anything else."""
    path = Path(path)
    predictions = path / results_name(judge) if path.is_dir() else _results_of_summary(path)
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: no such results file (per-item results are needed for CIs)")
    header, lines = read_results(predictions)
    header = header if isinstance(header, dict) else {}
    summary: dict[str, Any] = {}
    summary_file = summary_beside(predictions)
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{summary_file}:{error.lineno}: not a results summary (invalid JSON)") from None
        if not isinstance(summary, dict):
            raise ValueError(f"{summary_file}: not a results summary (expected a JSON object)")
    records: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(lines, start=2):
        missing = [key for key in ("id", "group", "correct") if not isinstance(record, dict) or key not in record]
        if missing:
            raise ValueError(f"{predictions}:{number}: not a results record (missing {', '.join(missing)})")
        if record["correct"] not in (True, False, None):
            raise ValueError(
                f"{predictions}:{number}: 'correct' must be true, false or null, got {record['correct']!r}"
            )
        records[str(record["id"])] = record
    if not records:
        raise EmptyRun(f"{predictions}: empty run (no item records after the header)")
    benchmark = _benchmark_of(predictions, header, summary)
    model = summary.get("model") if isinstance(summary.get("model"), dict) else header.get("model")
    label = model.get("label") if isinstance(model, dict) else None
    return Run(benchmark, str(label or predictions.parent.name), predictions, records, summary)


def _benchmark_of(predictions: Path, header: dict[str, Any], summary: dict[str, Any]) -> str:
    named = {
        where: str(d["benchmark"]) for where, d in (("summary", summary), ("header", header)) if d.get("benchmark")
    }
    if len(set(named.values())) > 1:
        raise ValueError(
            f"{predictions}: mismatched benchmark: {summary_beside(predictions).name} says {named['summary']!r}, "
            f"the predictions header says {named['header']!r}"
        )
    # Fallback: the layout <output_dir>/<benchmark>/<label>/predictions.jsonl.
    return next(iter(named.values()), predictions.parent.parent.name)


def collect_runs(paths: Iterable[str | Path], benchmark: str | None = None, judge: str | None = None) -> list[Run]:
    """Load every run under `paths` (in order), keeping only `benchmark` when given; `judge` reads each run's
    `judged-<judge>.jsonl` instead of its predictions.jsonl.

    A run named explicitly (file or run directory) that is empty or of another benchmark is an error; runs found by
    scanning a directory tree are skipped instead (empty ones with a warning). Two runs with the same label on one
    benchmark get their directory appended."""
    runs: list[Run] = []
    for file, explicit in find_run_files(paths, judge):
        try:
            run = load_run(file)
        except EmptyRun as error:
            if explicit:
                raise
            logger.warning("skipped: %s", error)  # found by scanning: one failed spec must not hide the others
            continue
        if benchmark is not None and run.benchmark != benchmark:
            if explicit:
                raise ValueError(f"{file}: mismatched benchmark: a run of {run.benchmark!r}, not {benchmark!r}")
            logger.info("%s: skipped (benchmark %r, not %r)", file, run.benchmark, benchmark)
            continue
        runs.append(run)
    if not runs:
        raise ValueError(f"no runs of benchmark {benchmark!r} found" if benchmark else "no runs given")
    seen: dict[tuple[str, str], int] = {}
    for run in runs:
        seen[(run.benchmark, run.label)] = seen.get((run.benchmark, run.label), 0) + 1
    for run in runs:
        if seen[(run.benchmark, run.label)] > 1:
            run.label = f"{run.label} [{run.path.parent}]"
    return runs


# ---- comparison ----
@dataclass
class BenchmarkComparison:
    benchmark: str
    baseline: str
    columns: list[str]  # OVERALL, then the groups (none when every item is in one group)
    runs: list[Run]
    accuracy: dict[str, dict[str, Estimate]]  # label → column → accuracy
    delta: dict[str, dict[str, Estimate]]  # label → column → paired delta vs the baseline (not for the baseline)
    coverage: dict[str, Coverage]


def choose_baseline(runs: Sequence[Run], baseline: str | None) -> Run:
    """`baseline` when one of `runs` has that label, else gemma3-baseline if present, else the first run."""
    labels = [run.label for run in runs]
    for wanted in (baseline, BASELINE):
        if wanted in labels:
            return runs[labels.index(wanted)]
    return runs[0]


def compare_runs(runs: Sequence[Run], baseline: str | None = None) -> list[BenchmarkComparison]:
    """One comparison per benchmark (in order of first appearance); rows: the baseline, then the others in order."""
    labels = [run.label for run in runs]
    if baseline is not None and baseline not in labels:
        raise ValueError(f"--baseline {baseline!r}: no run has this label (runs: {', '.join(dict.fromkeys(labels))})")
    by_benchmark: dict[str, list[Run]] = {}
    for run in runs:
        by_benchmark.setdefault(run.benchmark, []).append(run)
    comparisons = []
    for benchmark, group_runs in by_benchmark.items():
        base = choose_baseline(group_runs, baseline)
        if baseline is not None and base.label != baseline:
            logger.warning("%s: no run labelled %r; the baseline is %r", benchmark, baseline, base.label)
        group_runs = [base, *(run for run in group_runs if run is not base)]  # the baseline row first
        groups = sorted({str(r["group"]) for run in group_runs for r in run.records.values()})
        keys: list[str | None] = [None, *groups] if len(groups) > 1 else [None]
        # a group literally called "overall" keeps its own column
        columns = [OVERALL if k is None else f"{k} (group)" if k == OVERALL else k for k in keys]
        comparisons.append(
            BenchmarkComparison(
                benchmark=benchmark,
                baseline=base.label,
                columns=columns,
                runs=list(group_runs),
                accuracy={
                    run.label: {c: accuracy(run, k) for c, k in zip(columns, keys, strict=True)} for run in group_runs
                },
                delta={
                    run.label: {c: paired_delta(run, base, k) for c, k in zip(columns, keys, strict=True)}
                    for run in group_runs
                    if run is not base
                },
                coverage={run.label: coverage(run, base) for run in group_runs if run is not base},
            )
        )
    return comparisons


# ---- output ----
def _percent(value: float, signed: bool = False) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _cell(estimate: Estimate, signed: bool = False) -> str:
    if estimate.n == 0:
        return "n/a"
    text = f"{_percent(estimate.value, signed)} [{_percent(estimate.low, signed)}, {_percent(estimate.high, signed)}]"
    return text + ("*" if signed and estimate.excludes_zero else "")


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:MAX_LISTED_IDS])
    return shown + (f", … ({len(ids) - MAX_LISTED_IDS} more)" if len(ids) > MAX_LISTED_IDS else "")


def reported_metric(run: Run) -> tuple[str, float] | None:
    """(name, value) of the primary metric `summary.json` reports, when it is a number."""
    name, metrics = run.summary.get("primary_metric"), run.summary.get("metrics")
    value = metrics.get(name) if isinstance(metrics, dict) and isinstance(name, str) else None
    if isinstance(name, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return name, float(value)
    return None


def _reported_column(comparison: BenchmarkComparison) -> str | None:
    """A "<primary metric> (summary)" column when some run's reported primary metric is not the pooled accuracy
    (e.g. BLINK's mean over tasks, SpatialRGPT-Bench's qualitative-only accuracy)."""
    names: list[str] = []
    for run in comparison.runs:
        reported = reported_metric(run)
        overall = comparison.accuracy[run.label][OVERALL].value
        if reported is not None and not (math.isfinite(overall) and abs(reported[1] - overall) < 1e-9):
            names.append(reported[0])
    return f"{names[0]} (summary)" if names else None


def _notes(comparison: BenchmarkComparison) -> list[str]:
    notes = []
    for run in comparison.runs:
        expected = run.summary.get("num_items")
        if isinstance(expected, int) and expected > len(run.records):
            notes.append(f"`{run.label}`: {len(run.records)} of {expected} items in {run.path.name} (incomplete run)")
        found = comparison.coverage.get(run.label)
        if found is None:
            continue
        parts = []
        if found.only_baseline:
            parts.append(f"{len(found.only_baseline)} item(s) only in the baseline ({_ids(found.only_baseline)})")
        if found.only_run:
            parts.append(f"{len(found.only_run)} item(s) only in this run ({_ids(found.only_run)})")
        if found.scored_by_one:
            parts.append(
                f"{len(found.scored_by_one)} item(s) scored by only one of the two ({_ids(found.scored_by_one)})"
            )
        if parts:
            notes.append(f"`{run.label}`: " + "; ".join(parts) + " — left out of its Δ")
    return notes


def to_markdown(comparisons: Sequence[BenchmarkComparison]) -> str:
    """One section per benchmark: a table (a row per model) and notes on incomplete or mismatched item sets."""
    sections = []
    for comparison in comparisons:
        reported = _reported_column(comparison)
        header = ["model", "scored", "paired", *([reported] if reported else [])]
        for column in comparison.columns:
            header += [column, f"Δ {column}"]
        rows = [header, ["---", *["---:"] * (len(header) - 1)]]
        for run in comparison.runs:
            is_base = run.label == comparison.baseline
            deltas = comparison.delta.get(run.label, {})
            row = [
                f"{run.label} (baseline)" if is_base else run.label,
                f"{len(run.scored())}/{len(run.records)}",
                "—" if is_base else str(deltas[OVERALL].n),
            ]
            if reported:
                row.append(_percent(value[1]) if (value := reported_metric(run)) else "n/a")
            for column in comparison.columns:
                row += [_cell(comparison.accuracy[run.label][column]), "—" if is_base else _cell(deltas[column], True)]
            rows.append(row)
        table = "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)
        legend = (
            f"Baseline `{comparison.baseline}`. Accuracy in % over the scored items (`overall` pools all of them) "
            "with its 95% Wilson interval; Δ = model − baseline in percentage points on the items both runs scored "
            "(`paired` items), 95% paired interval (Newcombe hybrid score); `*` = the interval excludes 0. "
            "`scored` = items with a verdict / items in the run."
            + (f" `{reported}` = the primary metric as the run's summary.json reports it." if reported else "")
        )
        notes = "".join(f"\n- {note}" for note in _notes(comparison))
        sections.append(f"## {comparison.benchmark}\n\n{legend}\n\n{table}\n" + (f"\nNotes:{notes}\n" if notes else ""))
    return "\n".join(sections)


def plot_comparisons(comparisons: Sequence[BenchmarkComparison], path: str | Path, panel_height: int = 440) -> Path:
    """Grouped bars (categories = overall + groups, one bar per model, a model keeps its colour across panels) with
    Wilson CI error bars, one panel per benchmark stacked vertically, as a PNG."""
    width = max(800, 120 + max(len(c.columns) * (len(c.runs) * 18 + 24) for c in comparisons))
    # Group names wider than their slot are drawn rotated: give the panels that much more height.
    probe = ImageDraw.Draw(new_figure(1, 1))
    longest = max(text_size(probe, column, font())[0] for c in comparisons for column in c.columns)
    slot = (width - 102) / max(len(c.columns) for c in comparisons)
    image = new_figure(width, (panel_height + (longest if longest > slot - 4 else 0)) * len(comparisons))
    labels = list(dict.fromkeys(run.label for comparison in comparisons for run in comparison.runs))
    for comparison, box in zip(comparisons, panel_boxes(image, len(comparisons), 1), strict=True):
        series = []
        for run in comparison.runs:  # a model keeps its colour in every panel
            estimates = [comparison.accuracy[run.label][column] for column in comparison.columns]
            name = f"{run.label} (baseline)" if run.label == comparison.baseline else run.label
            series.append(
                BarSeries(
                    name,
                    [100 * e.value for e in estimates],
                    lows=[100 * e.low for e in estimates],
                    highs=[100 * e.high for e in estimates],
                    color=color(labels.index(run.label)),
                )
            )
        title = f"{comparison.benchmark}: accuracy with 95% Wilson intervals"
        bar_chart(image, box, comparison.columns, series, title=title, ylabel="accuracy (%)", y_range=(0.0, 100.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
