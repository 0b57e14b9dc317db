"""SpatialRGPT-Bench (`a8cheng/SpatialRGPT-Bench`): the 24 categories, the judged question, metrics and summaries.

Its rows are read into prompts with drawn regions by `theworld.evaluation.spatial_bench_data` (`load_items`, the row
format; re-exported here): the i-th `<mask>` becomes "Region [i]" and box i is drawn on the picture numbered
"Region [i]"; a prediction naming a box by its colour ("the green box") names that region.

Categories are matched EXACTLY (`qa_info.category`): a substring match on "distance" would fold the horizontal and
vertical distances (and any unknown "*distance*" category) into direct distance. An unknown category is judged
`unjudged` ("unknown category"), counted and listed in the summary, never folded into a group.

Metrics (`summarize`): qualitative = accuracy per category and per report group, and the qualitative average, a
MICRO-average over all judged qualitative items; quantitative = success rate per group (distances and sizes:
|pred − gt| ≤ 0.25·gt in meters; direction: within 1 hour on the clock) and the mean error over the items with a
predicted value (relative |gt − pred| / gt; degrees for direction, 30° per hour). Every stats dict names its rate
"accuracy" (for a quantitative group that is the success rate); unjudged items are left out of it and counted.
Anchors (`GPT4V_PERCENT`, the GPT-4V row of the SpatialRGPT paper): qualitative average 58.14%; success rates
direct distance 29.7%, horizontal 25.4%, vertical 33.0%, width 51.1%, height 68.4%, direction 43.9%.
[Contract] results records (see `theworld.evaluation.runner`) carry "correct" (True/False, None = unjudged),
"error", "pred_value", "gt_value", "reason" (why unjudged; `NO_ANSWER` when judged wrong because the prediction
holds no answer) and "meta" {"category", "type", "num_regions", "region_names"}; `summarize` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from theworld.evaluation.model_specs import EvalModelSpec
from theworld.evaluation.runner import EvalItem
from theworld.evaluation.runs import RunSettings, build_summary
from theworld.evaluation.spatial_bench_data import (
    DEFAULT_DATASET,
    DEFAULT_SPLIT,
    IMAGES_DIR,
    JSONL_NAME,
    REGION_COLOR_NAMES,
    data_identity,
    load_items,
)

__all__ = [  # the reading of rows lives in spatial_bench_data; its public names stay importable from here
    "BENCHMARK",
    "CATEGORY_GROUP",
    "DEFAULT_DATASET",
    "DEFAULT_SPLIT",
    "GPT4V_PERCENT",
    "IMAGES_DIR",
    "JSONL_NAME",
    "NO_ANSWER",
    "PROTOCOL",
    "QUALITATIVE_GROUPS",
    "QUANTITATIVE_GROUPS",
    "REGION_COLOR_NAMES",
    "UNKNOWN_CATEGORY",
    "Kind",
    "SpatialQuestion",
    "category_kind",
    "data_identity",
    "format_table",
    "load_items",
    "record_status",
    "summarize",
    "summary_from_header",
    "summary_of",
]

BENCHMARK = "spatial_rgpt_bench"
PROTOCOL = "spatial-rgpt-bench/region-tags-v1"  # "<mask>" → "Region [i]" prompts, boxes drawn as in training
NO_ANSWER = "no answer in prediction"
UNKNOWN_CATEGORY = "unknown category"

QUALITATIVE_GROUPS: dict[str, tuple[str, ...]] = {
    "below/above": ("below_predicate", "above_predicate", "below_choice", "above_choice"),
    "left/right": ("left_predicate", "right_predicate", "left_choice", "right_choice"),
    "big/small": ("big_predicate", "small_predicate"),
    "tall/short": ("tall_predicate", "short_predicate", "tall_choice", "short_choice"),
    "wide/thin": ("wide_predicate", "thin_predicate"),
    "behind/front": ("behind_predicate", "front_predicate"),
}
QUANTITATIVE_GROUPS: dict[str, tuple[str, ...]] = {
    "direct distance": ("distance_data",),
    "horizontal distance": ("horizontal_distance_data",),
    "vertical distance": ("vertical_distance_data",),
    "width": ("width_data",),
    "height": ("height_data",),
    "direction": ("direction",),
}
CATEGORY_GROUP: dict[str, str] = {
    category: group
    for groups in (QUALITATIVE_GROUPS, QUANTITATIVE_GROUPS)
    for group, members in groups.items()
    for category in members
}
# GPT-4V on SpatialRGPT-Bench (SpatialRGPT paper, Table 1), in percent: success rates, and the qualitative average.
GPT4V_PERCENT: dict[str, float] = {
    "qualitative average": 58.14,
    "direct distance": 29.7,
    "horizontal distance": 25.4,
    "vertical distance": 33.0,
    "width": 51.1,
    "height": 68.4,
    "direction": 43.9,
}


Kind = Literal["predicate", "choice", "length", "direction", "unknown"]


def category_kind(category: str) -> Kind:
    """How a category is judged: yes/no, which region, a length in meters, a clock direction, or unknown."""
    if category not in CATEGORY_GROUP:
        return "unknown"
    if category == "direction":
        return "direction"
    if category.endswith("_data"):
        return "length"
    return "predicate" if category.endswith("_predicate") else "choice"


@dataclass(frozen=True)
class SpatialQuestion:
    """What a judge sees of one item: the question as asked, the ground-truth answer, and how many regions."""

    id: str
    category: str
    question: str
    answer: str
    num_regions: int = 2
    qa_type: str = ""
    region_names: tuple[str, ...] = ()  # colour names of the drawn boxes (empty: boxes not drawn)

    @property
    def kind(self) -> Kind:
        return category_kind(self.category)

    @property
    def aliases(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.region_names)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SpatialQuestion:
        """From a results record (or anything with "id", "prompt", "reference", "meta")."""
        meta = record.get("meta") or {}
        return cls(
            id=str(record["id"]),
            category=str(meta.get("category", record.get("group", ""))),
            question=str(record.get("prompt", "")),
            answer=str(record.get("reference", "")),
            num_regions=int(meta.get("num_regions", 2)),
            qa_type=str(meta.get("type", "")),
            region_names=tuple(meta.get("region_names") or ()),
        )

    @classmethod
    def from_item(cls, item: EvalItem) -> SpatialQuestion:
        return cls.from_record({"id": item.id, "prompt": item.prompt, "reference": item.reference, "meta": item.meta})


# --- metrics ---------------------------------------------------------------------------------------------------------
def record_status(record: Mapping[str, Any]) -> Literal["judged", "unanswered", "unjudged"]:
    """unjudged: the judge could not decide; unanswered: judged wrong, the prediction holds no answer."""
    if record.get("correct") is None:
        return "unjudged"
    return "unanswered" if record.get("reason") == NO_ANSWER else "judged"


def _category(record: Mapping[str, Any]) -> str:
    meta = record.get("meta") or {}
    return str(meta.get("category", record.get("group", "")))


def _stats(records: Sequence[Mapping[str, Any]], with_error: bool) -> dict[str, Any]:
    judged = [r for r in records if r.get("correct") is not None]
    correct = sum(bool(r["correct"]) for r in judged)
    stats: dict[str, Any] = {
        "total": len(records),
        "judged": len(judged),
        "correct": correct,
        "unjudged": len(records) - len(judged),
        "unanswered": sum(record_status(r) == "unanswered" for r in records),
        "accuracy": correct / len(judged) if judged else math.nan,
    }
    if with_error:
        errors = [float(r["error"]) for r in judged if r.get("error") is not None]
        stats["mean_error"] = sum(errors) / len(errors) if errors else math.nan
        stats["errors_counted"] = len(errors)
    return stats


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-category and per-group results, the qualitative micro-average and the quantitative success rates, in
    the shape `theworld.evaluation.runs` expects ("primary_metric", "metrics", then this benchmark's sections)."""
    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_category.setdefault(_category(record), []).append(record)
    quantitative = {c for members in QUANTITATIVE_GROUPS.values() for c in members}
    categories = {c: _stats(rs, c in quantitative) for c, rs in sorted(by_category.items()) if c in CATEGORY_GROUP}

    def group_stats(groups: Mapping[str, tuple[str, ...]], with_error: bool) -> dict[str, Any]:
        return {g: _stats([r for c in cs for r in by_category.get(c, [])], with_error) for g, cs in groups.items()}

    qualitative_records = [r for c in CATEGORY_GROUP if c not in quantitative for r in by_category.get(c, [])]
    quantitative_records = [r for c in quantitative for r in by_category.get(c, [])]
    qual, quant = _stats(qualitative_records, False), _stats(quantitative_records, False)
    unjudged = Counter(str(r.get("reason") or "?") for r in records if r.get("correct") is None)
    unknown = Counter(_category(r) for r in records if _category(r) not in CATEGORY_GROUP)
    metrics: dict[str, Any] = {
        "qualitative_accuracy": qual["accuracy"],
        "quantitative_success": quant["accuracy"],
        "items": len(records),
        "judged": sum(record_status(r) != "unjudged" for r in records),
        "unjudged": sum(unjudged.values()),
        "unanswered": sum(record_status(r) == "unanswered" for r in records),
        "unknown_category_items": sum(unknown.values()),
    }
    return {
        "primary_metric": "qualitative_accuracy",
        "metrics": metrics,
        "qualitative": {**group_stats(QUALITATIVE_GROUPS, False), "average (micro)": qual},
        "quantitative": group_stats(QUANTITATIVE_GROUPS, True),
        "categories": categories,
        "unjudged_reasons": dict(unjudged.most_common()),
        "unknown_categories": dict(unknown.most_common()),
        "reference_gpt4v_percent": GPT4V_PERCENT,
        "error_units": {"distances and sizes": "relative |gt - pred| / gt", "direction": "degrees (30 per hour)"},
    }


def summary_of(
    records: Sequence[Mapping[str, Any]], spec: EvalModelSpec, settings: RunSettings, judge: str
) -> dict[str, Any]:
    """The summary.json of one run's (judged) records: `runs.build_summary` with "judge" added (strict JSON)."""
    return build_summary(spec, settings, records, summarize, extra={"judge": judge})


def summary_from_header(header: Mapping[str, Any], records: Sequence[Mapping[str, Any]], judge: str) -> dict[str, Any]:
    """`summary_of` for records re-judged from a saved predictions file (model and settings from its header)."""
    try:
        model = header["model"]
        spec = EvalModelSpec(**{f.name: model[f.name] for f in dataclasses.fields(EvalModelSpec) if f.name in model})
        settings = RunSettings(
            benchmark=str(header["benchmark"]),
            split=str(header["split"]),
            data=dict(header.get("data") or {}),
            protocol=str(header.get("protocol", "")),
            max_new_tokens=int(header.get("max_new_tokens", 0)),
            dtype=str(header.get("dtype", "float32")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"predictions header: expected the model spec and run settings ({error})") from None
    return summary_of(records, spec, settings, judge)


def _percent(value: Any) -> str:
    return "   n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:6.1f}"


def format_table(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a summary (percentages; GPT-4V anchors beside)."""
    m = summary["metrics"]
    label = (summary.get("model") or {}).get("label", "?")
    lines = [
        f"{summary.get('benchmark', BENCHMARK)} | {label} | judge {summary.get('judge')} | {m['items']} items: "
        f"{m['judged']} judged ({m['unanswered']} without an answer), {m['unjudged']} unjudged",
        f"{'qualitative':<22}{'acc %':>7}{'judged':>8}{'GPT-4V':>8}",
    ]
    for group, stats in summary["qualitative"].items():
        anchor = GPT4V_PERCENT.get("qualitative average") if group.startswith("average") else None
        lines.append(f"  {group:<20}{_percent(stats['accuracy']):>7}{stats['judged']:>8}{anchor or '':>8}")
    lines.append(f"{'quantitative':<22}{'succ %':>7}{'judged':>8}{'GPT-4V':>8}{'mean error':>12}")
    for group, stats in summary["quantitative"].items():
        error = stats["mean_error"]
        missing = error is None or math.isnan(error)
        shown = "n/a" if missing else (f"{error:.1f} deg" if group == "direction" else f"{error:.3f}")
        lines.append(
            f"  {group:<20}{_percent(stats['accuracy']):>7}{stats['judged']:>8}{GPT4V_PERCENT[group]:>8}{shown:>12}"
        )
    for reason, count in summary.get("unjudged_reasons", {}).items():
        lines.append(f"unjudged: {reason}: {count}")
    for category, count in summary.get("unknown_categories", {}).items():
        lines.append(f"unknown category (not scored): {category!r}: {count}")
    return "\n".join(lines)
