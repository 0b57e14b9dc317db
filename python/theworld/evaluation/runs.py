"""Evaluate a benchmark's items with every model spec of a command line: for each spec load the model (once per
distinct model), run the items into the spec's resumable results file, write its summary, and collect failures.

A benchmark module supplies the items, a `score(item, prediction)` (see `runner.run_items`) and a
`summarize(records) -> {"primary_metric": name, "metrics": {...}, ...more sections}`; `evaluate_specs` adds the
common fields and writes `<output_dir>/<benchmark>/<spec label>/summary.json`::

    {"benchmark", "protocol", "model": spec.to_dict(), "split", "data": {identity of the data}, "num_items",
     "primary_metric", "metrics", "groups": accuracy_by_group(records), ...the benchmark's sections, ...extra}

The results file's header is the run's identity: benchmark, protocol, split, data identity, model spec, max new
tokens and dtype — a resumed run with any of these changed is refused (one line) instead of mixing two runs. The batch
size, `--limit` and the task selection are not part of it: answers do not depend on the batch, and a longer run
reuses the items a shorter one finished.

A spec that fails (its checkpoint cannot be loaded, `num_world_steps=3` is not a multiple of 4, a corrupt
picture, a results file of another run) is logged in one line and reported in its `SpecOutcome`; the other specs
still run, and what the failing one finished stays in its results file. `exit_code` is 1 when any spec failed.

[Contract] summaries are plain JSON: no NaN (a metric without data is null) and no timestamps, so an interrupted and
resumed run writes the same summary as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from theworld.errors import single_line
from theworld.evaluation.cli import DTYPES
from theworld.evaluation.model_specs import EvalModelSpec, load_eval_model
from theworld.evaluation.results import ResultsFile, write_json_atomic
from theworld.evaluation.runner import (
    PREDICTIONS_FILE,
    SUMMARY_FILE,
    EvalItem,
    Scorer,
    accuracy_by_group,
    run_dir,
    run_items,
)

logger = logging.getLogger(__name__)

Summarizer = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]
ModelLoader = Callable[[EvalModelSpec, str, torch.dtype], Any]
# What a failing spec may raise: bad checkpoints/settings/rows (ValueError, incl. BadRecord/BadImage), missing
# files (OSError), and errors inside the model (RuntimeError, incl. out of memory). KeyboardInterrupt is not caught.
SPEC_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


@dataclass(frozen=True)
class RunSettings:
    """One benchmark run's settings, shared by every spec of the command line."""

    benchmark: str
    split: str
    data: Mapping[str, Any] = field(default_factory=dict)  # identity of the evaluated data (its source, ...)
    protocol: str = ""  # names the prompt/scoring rules, so results of an older protocol are never resumed into
    output_dir: Path = Path("outputs/eval")
    batch_size: int = 16
    max_new_tokens: int = 32
    device: str = "cpu"
    dtype: str = "float32"
    resume: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")

    def header(self, spec: EvalModelSpec) -> dict[str, Any]:
        """The results-file header of `spec`'s run (see the module docstring for what is and is not in it)."""
        return {
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "split": self.split,
            "data": dict(self.data),
            "model": spec.to_dict(),
            "max_new_tokens": self.max_new_tokens,
            "dtype": self.dtype,
        }


def settings_from_args(
    args: argparse.Namespace, benchmark: str, split: str, data: Mapping[str, Any], protocol: str = ""
) -> RunSettings:
    """`RunSettings` from the options of `cli.add_common_arguments`."""
    return RunSettings(
        benchmark=benchmark,
        split=split,
        data=dict(data),
        protocol=protocol,
        output_dir=Path(args.output_dir),
        batch_size=int(args.batch_size),
        max_new_tokens=int(args.max_new_tokens),
        device=str(args.device),
        dtype=str(args.dtype),
        resume=bool(args.resume),
    )


@dataclass
class SpecOutcome:
    """What happened to one spec: its summary, or the one-line error it failed with."""

    spec: EvalModelSpec
    directory: Path
    summary: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def json_safe(value: Any) -> Any:
    """`value` with every NaN/inf float replaced by None (strict JSON), containers copied."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def build_summary(
    spec: EvalModelSpec,
    settings: RunSettings,
    records: Sequence[Mapping[str, Any]],
    summarize: Summarizer,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of one spec's records (see the module docstring for its fields)."""
    body = dict(summarize(records))
    try:
        primary, metrics = body.pop("primary_metric"), body.pop("metrics")
    except KeyError as error:
        raise ValueError(f"{settings.benchmark}: summarize() must return 'primary_metric' and 'metrics'") from error
    summary = {
        "benchmark": settings.benchmark,
        "protocol": settings.protocol,
        "model": spec.to_dict(),
        "split": settings.split,
        "data": dict(settings.data),
        "num_items": len(records),
        "primary_metric": primary,
        "metrics": metrics,
        "groups": accuracy_by_group(records),
        **body,
        **dict(extra or {}),
    }
    return json_safe(summary)


def evaluate_spec(
    model: Any,
    spec: EvalModelSpec,
    items: Sequence[EvalItem],
    score: Scorer,
    summarize: Summarizer,
    settings: RunSettings,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `items` with a loaded `model` into `spec`'s results file (resuming), then write and return its summary."""
    directory = run_dir(settings.output_dir, settings.benchmark, spec)
    results = ResultsFile(directory / PREDICTIONS_FILE, settings.header(spec), resume=settings.resume)
    records = run_items(model, spec, items, score, results, settings.batch_size, settings.max_new_tokens)
    summary = build_summary(spec, settings, records, summarize, extra)
    write_json_atomic(directory / SUMMARY_FILE, summary)
    return summary


def evaluate_specs(
    specs: Sequence[EvalModelSpec],
    items: Sequence[EvalItem],
    score: Scorer,
    summarize: Summarizer,
    settings: RunSettings,
    load_model: ModelLoader | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[SpecOutcome]:
    """`evaluate_spec` for every spec; specs that differ only in `num_world_steps` share one loaded model.

    `load_model(spec, device, dtype)` defaults to `load_eval_model`; `extra` is added to every summary.
    """
    loader = load_model or load_eval_model
    outcomes: list[SpecOutcome] = []
    model: Any = None
    loaded: EvalModelSpec | None = None
    for spec in specs:
        directory = run_dir(settings.output_dir, settings.benchmark, spec)
        try:
            same_model = dataclasses.replace(spec, num_world_steps=0)  # steps are a generate() argument
            if same_model != loaded:
                model, loaded = None, None  # free the previous model before the next one loads
                model = loader(spec, settings.device, DTYPES[settings.dtype])
                loaded = same_model
            summary = evaluate_spec(model, spec, items, score, summarize, settings, extra)
            outcomes.append(SpecOutcome(spec, directory, summary=summary))
        except SPEC_ERRORS as error:
            message = single_line(error)
            logger.error("%s: FAILED: %s", spec.label, message)
            logger.debug("%s: failure details", spec.label, exc_info=True)
            outcomes.append(SpecOutcome(spec, directory, error=message))
    return outcomes


def exit_code(outcomes: Sequence[SpecOutcome]) -> int:
    """0 when every spec finished, 1 when any failed (their finished results are kept)."""
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def format_outcomes(outcomes: Sequence[SpecOutcome], format_summary: Callable[[Mapping[str, Any]], str]) -> str:
    """Each spec's table (`format_summary`) or its failure, then a line naming the failed specs, if any."""
    blocks = []
    for outcome in outcomes:
        if outcome.summary is not None:
            blocks.append(f"{format_summary(outcome.summary)}\n(written to {outcome.directory})")
        else:
            blocks.append(f"{outcome.spec.label}: FAILED: {outcome.error}")
    failed = [outcome.spec.label for outcome in outcomes if not outcome.ok]
    if failed:
        blocks.append(f"{len(failed)} of {len(outcomes)} model run(s) failed: {', '.join(failed)}")
    return "\n\n".join(blocks)
