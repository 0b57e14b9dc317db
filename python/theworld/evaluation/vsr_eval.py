"""Visual Spatial Reasoning (VSR) evaluation: true/false statements about COCO pictures → items, scoring, summary.

Items come from the VSR loader (`theworld.data.vsr.load_vsr`: a jsonl file, a folder of train/dev/test jsonl, or a
Hub id such as `cambridgeltl/vsr_random`) with the training question template, so the model is asked exactly what it
was trained on. The verdict is read with `extract_true_false` ("True", "false.", "not true", a leading yes/no); an
unreadable answer counts as wrong and is counted as unparseable. The summary reports accuracy overall and per
relation, each beside the majority-class baseline — always answering the more frequent label of the EVALUATED items
(ties: "True") — so a model that learned only the label prior scores no better than its baseline.

Records the loader cannot serve (bad label/caption/votes) and records whose picture is not in the image folder are
skipped and counted by reason (`skipped` in the summary); a picture that exists but cannot be decoded stops the run
with a one-line error naming the file (a broken download; the finished items are kept).

[Contract] an item id is "<image file>|<caption>" (made unique with "#2", "#3", ...): a resumed run over an edited
file recomputes exactly the changed records.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from theworld.data.image_files import open_image_file
from theworld.data.skips import MISSING_IMAGE, BadRecord
from theworld.data.vsr import ANSWERS, DEFAULT_QUESTION_TEMPLATE, load_vsr
from theworld.evaluation.choices import extract_true_false
from theworld.evaluation.runner import EvalItem

logger = logging.getLogger(__name__)

BENCHMARK = "vsr"
DEFAULT_DATASET = "cambridgeltl/vsr_random"
DEFAULT_SPLIT = "test"
PROTOCOL = "vsr/true-false/1"
UNKNOWN_RELATION = "(no relation)"


def _open_picture(path: Path) -> list[Any]:
    return [open_image_file(path)]


def load_vsr_items(
    source: str | os.PathLike[str],
    split: str,
    image_folder: str | os.PathLike[str],
    question_template: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
) -> tuple[list[EvalItem], dict[str, int]]:
    """(items, skipped counts by reason) of VSR `split`; `limit` keeps the first N records."""
    dataset = load_vsr(source, split, image_folder, question_template, num_samples=limit, cache_dir=cache_dir)
    items: list[EvalItem] = []
    seen: Counter[str] = Counter()
    for index in range(len(dataset)):
        try:
            record = dataset.record(index)
        except BadRecord as error:
            dataset.skip_log.skip(error.reason, dataset.describe(index), str(error))
            continue
        path = dataset.image_path(record)
        if not path.is_file():
            dataset.skip_log.skip(MISSING_IMAGE, dataset.describe(index), f"{path}: no such image file")
            continue
        base = f"{record.image}|{record.caption}"
        seen[base] += 1
        items.append(
            EvalItem(
                id=base if seen[base] == 1 else f"{base}#{seen[base]}",
                prompt=dataset.question(record),
                reference=record.answer,
                group=record.relation or UNKNOWN_RELATION,
                images=functools.partial(_open_picture, path),
                meta={"image": record.image, "caption": record.caption, "reference_frame": record.reference_frame},
            )
        )
    skipped = dict(sorted(dataset.skip_log.counts.items()))
    if skipped:
        logger.warning("VSR %s: skipped %d record(s): %s", split, sum(skipped.values()), skipped)
    logger.info("VSR %s: %d item(s)", split, len(items))
    return items, skipped


def data_identity(source: str | os.PathLike[str], question_template: str | None) -> dict[str, Any]:
    """What goes into the results header: the records' source and the question asked (not the picture folder)."""
    path = Path(source)
    return {
        "source": str(path.resolve()) if path.exists() else str(source),
        "question_template": question_template or DEFAULT_QUESTION_TEMPLATE,
    }


def score_vsr(item: EvalItem, prediction: str) -> dict[str, Any]:
    """The verdict read from the answer ("extracted": "True"/"False"/None) and whether it is the label."""
    verdict = extract_true_false(prediction)
    extracted = None if verdict is None else ANSWERS[verdict]
    return {"correct": extracted == item.reference, "extracted": extracted}


def _baseline(references: Sequence[Any], majority: str) -> float | None:
    return sum(reference == majority for reference in references) / len(references) if references else None


def summarize_vsr(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy overall and per relation, each beside the majority-class baseline of the evaluated labels."""
    references = [record["reference"] for record in records]
    num_true = sum(reference == ANSWERS[True] for reference in references)
    majority = ANSWERS[num_true * 2 >= len(references)]
    correct = sum(bool(record["correct"]) for record in records)
    relations: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = relations.setdefault(str(record["group"]), {"num_items": 0, "correct": 0, "references": []})
        entry["num_items"] += 1
        entry["correct"] += bool(record["correct"])
        entry["references"].append(record["reference"])
    for entry in relations.values():
        entry["accuracy"] = entry["correct"] / entry["num_items"]
        entry["majority_baseline"] = _baseline(entry.pop("references"), majority)
    metrics = {
        "accuracy": correct / len(records) if records else None,
        "majority_baseline": _baseline(references, majority),
        "majority_class": majority,
        "num_true": num_true,
        "num_false": len(references) - num_true,
        "unparseable": sum(record.get("extracted") is None for record in records),
    }
    return {"primary_metric": "accuracy", "metrics": metrics, "relations": dict(sorted(relations.items()))}


def _percent(value: Any) -> str:
    return f"{100 * value:6.1f}" if isinstance(value, (int, float)) else "     -"


def format_vsr_summary(summary: Mapping[str, Any]) -> str:
    """A small text table: per relation n, accuracy and the majority baseline; then the overall row."""
    metrics = summary["metrics"]
    lines = [f"VSR {summary['split']} — {summary['model']['label']}"]
    lines.append(f"{'relation':<28}{'n':>5}{'acc %':>8}{'majority %':>12}")
    for name, entry in summary["relations"].items():
        accuracy, baseline = _percent(entry["accuracy"]), _percent(entry["majority_baseline"])
        lines.append(f"{name:<28}{entry['num_items']:>5}  {accuracy}      {baseline}")
    lines.append(
        f"{'all':<28}{summary['num_items']:>5}  {_percent(metrics['accuracy'])}      "
        f"{_percent(metrics['majority_baseline'])}   (majority answer {metrics['majority_class']}, "
        f"{metrics['unparseable']} unparseable)"
    )
    skipped = summary.get("skipped") or {}
    if skipped:
        lines.append("skipped records: " + ", ".join(f"{reason} {count}" for reason, count in skipped.items()))
    return "\n".join(lines)
