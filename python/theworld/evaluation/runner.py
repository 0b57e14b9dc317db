"""Run one benchmark for one model spec: batched greedy generation, per-item results as they come, a summary.

A benchmark module turns its rows into `EvalItem`s (id, pictures — loaded lazily — prompt, reference, group, meta)
and provides a `score(item, prediction) -> dict` that returns at least `"correct"` (True / False, or None when the
item cannot be scored, e.g. BLINK's hidden test answers or an unjudged item). `run_items` skips items already in the
results file (a restarted run computes only the rest), generates the others `batch_size` at a time, and appends
`{"id", "group", "prediction", "reference", "correct", ...score fields, ...meta}` per item.

[Contract] every results record has "id", "group", "prediction" and "correct"; `scripts/compare_results.py` and the
summaries rely on these four fields only (plus what a benchmark adds for its own metrics).
Layout of a run: `<output_dir>/<benchmark>/<spec label>/predictions.jsonl` and `summary.json`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theworld.evaluation.generation import generate_answers
from theworld.evaluation.model_specs import EvalModelSpec
from theworld.evaluation.results import ResultsFile

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class EvalItem:
    """One benchmark question. `images` is a list of pictures or a zero-argument callable returning one (lazy)."""

    id: str
    prompt: str
    reference: Any
    group: str = "all"
    images: Sequence[Any] | Callable[[], Sequence[Any]] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def load_images(self) -> list[Any]:
        images = self.images() if callable(self.images) else self.images
        return [image for image in images if image is not None]


Scorer = Callable[[EvalItem, str], Mapping[str, Any]]


def run_dir(output_dir: str | Path, benchmark: str, spec: EvalModelSpec) -> Path:
    return Path(output_dir) / benchmark / spec.label


def run_items(
    model: Any,
    spec: EvalModelSpec,
    items: Sequence[EvalItem],
    score: Scorer,
    results: ResultsFile,
    batch_size: int = 16,
    max_new_tokens: int = 16,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Generate and score every item not yet in `results`; returns all records (old and new) in item order."""
    todo = [item for item in items if item.id not in results]
    if len(todo) < len(items):
        logger.info("%s: %d of %d item(s) already done", spec.label, len(items) - len(todo), len(items))
    started, done = time.perf_counter(), 0
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        pictures = [item.load_images() for item in chunk]
        answers = generate_answers(
            model,
            pictures,
            [item.prompt for item in chunk],
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            generate_kwargs=spec.generate_kwargs(),
        )
        records = []
        for item, answer in zip(chunk, answers, strict=True):
            scored = dict(score(item, answer))
            records.append(
                {
                    "id": item.id,
                    "group": item.group,
                    "prompt": item.prompt,
                    "prediction": answer,
                    "reference": item.reference,
                    "correct": scored.pop("correct", None),
                    **scored,
                    "meta": item.meta,
                }
            )
        results.add(records)
        done += len(chunk)
        if progress:
            rate = done / max(time.perf_counter() - started, 1e-9)
            logger.info("%s: %d/%d items (%.2f items/s)", spec.label, done, len(todo), rate)
    by_id = {record["id"]: record for record in results.records()}
    return [by_id[item.id] for item in items if item.id in by_id]


def accuracy_by_group(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | int]]:
    """{group: {"accuracy", "correct", "scored", "total"}} over records whose "correct" is not None."""
    groups: dict[str, dict[str, float | int]] = {}
    for record in records:
        entry = groups.setdefault(str(record["group"]), {"correct": 0, "scored": 0, "total": 0})
        entry["total"] += 1
        if record.get("correct") is not None:
            entry["scored"] += 1
            entry["correct"] += int(bool(record["correct"]))
    for entry in groups.values():
        entry["accuracy"] = entry["correct"] / entry["scored"] if entry["scored"] else math.nan
    return dict(sorted(groups.items()))
