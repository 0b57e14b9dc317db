"""SpatialRGPT-Bench (`a8cheng/SpatialRGPT-Bench`): rows → prompts with drawn regions, the 24 categories, metrics.

A row is one JSON object: `id`, `image_info` ({"file_path": ..., "height", "width"}; the key may also be `image` or
`path`), `text_q`, `conversations` (human turn "<image>\\n... <mask> ... <mask>", gpt turn = the ground truth),
`qa_info` {"type": "qualitative"|"quantitative", "category"}, `bbox` ([x1, y1, x2, y2] per `<mask>`, in pixels of
the picture). A Hub/parquet copy may carry the picture itself in an `image` column, and may store the dict/list
fields as JSON (or Python-literal) strings; rows of the Hub id without pictures get the repo's `images/` folder
(downloaded with `huggingface_hub`) unless `--images` is given. The i-th `<mask>` becomes "Region [i]" and box i is
drawn on the picture numbered "Region [i]" (`theworld.data.regions`, the convention of the OpenSpatialDataset
training data); a prediction naming a box by its colour ("the green box") names that region.

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

import ast
import dataclasses
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
from huggingface_hub import snapshot_download
from PIL import Image

from theworld.data.hf_source import decode_image_value, load_hf_records, load_json_file
from theworld.data.regions import REGION_COLORS, draw_bboxes, masks_to_regions, scale_boxes
from theworld.data.skips import BadRecord
from theworld.evaluation.model_specs import EvalModelSpec
from theworld.evaluation.runner import EvalItem
from theworld.evaluation.runs import RunSettings, build_summary

logger = logging.getLogger(__name__)

BENCHMARK = "spatial_rgpt_bench"
DEFAULT_DATASET = "a8cheng/SpatialRGPT-Bench"
DEFAULT_SPLIT = "val"
JSONL_NAME = "val_SpatialRGPT-Bench.jsonl"
IMAGES_DIR = "images"
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
# Names of the colours `draw_bboxes` gives regions 0, 1, ... (`REGION_COLORS` order): "the red box" names region 0.
REGION_COLOR_NAMES = (
    "red", "green", "blue", "orange", "purple", "cyan", "magenta", "lime", "pink", "teal", "brown", "yellow"
)  # fmt: skip
assert len(REGION_COLOR_NAMES) <= len(REGION_COLORS)

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


# --- loading ---------------------------------------------------------------------------------------------------------
_FEATURES = datasets.Features(
    {name: datasets.Json() for name in ("id", "image_info", "text_q", "conversations", "qa_info", "bbox")}
)
_IMAGE_KEYS = ("file_path", "image", "path", "file_name", "filename")


def _structured(row: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    """A dict/list field, parsed from a JSON or Python-literal string when a copy stored it as text."""
    value = row.get(key)
    if isinstance(value, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(value)
                break
            except (ValueError, SyntaxError):
                continue
    if not isinstance(value, kind):
        raise ValueError(f"{where}: field {key!r}: expected a {kind.__name__}, got {type(value).__name__}")
    return value


@dataclass
class _Source:
    rows: datasets.Dataset
    name: str
    image_roots: list[Path] = field(default_factory=list)


def _open_source(data: Path | None, dataset: str, split: str, images: Path | None) -> _Source:
    roots = [images] if images is not None else []
    if data is None:
        rows = _as_dataset(_hub_records(dataset, split), dataset)
        if not roots and "image" not in rows.column_names:  # rows name files of the repo's images/ folder
            roots = _hub_image_roots(dataset)
        return _Source(rows, dataset, roots)
    path = Path(data).resolve()  # the name goes into the results header: the same copy, however it is spelled
    if not path.exists():
        raise FileNotFoundError(f"--data {data}: no such file or directory")
    if path.is_file() and path.suffix == ".parquet":
        rows = datasets.load_dataset("parquet", data_files=str(path), split="train")
        return _Source(_as_dataset(rows, str(path)), str(path), roots or [path.parent / IMAGES_DIR, path.parent])
    if path.is_file():
        return _Source(load_json_file(path, _FEATURES), str(path), roots or [path.parent / IMAGES_DIR, path.parent])
    candidates = [path / JSONL_NAME, *sorted(path.glob("*.jsonl")), *sorted(path.glob("*.json"))]
    files = [file for file in candidates if file.is_file() and not file.name.startswith(("dataset_", "state"))]
    if files:
        return _Source(load_json_file(files[0], _FEATURES), str(files[0]), roots or [path / IMAGES_DIR, path])
    return _Source(
        _as_dataset(_hub_records(str(path), split), str(path)), str(path), roots or [path / IMAGES_DIR, path]
    )


def _hub_records(source: str, split: str) -> Any:
    try:
        return load_hf_records(source, split)
    except ConnectionError as error:  # offline: one line like every other input error (see cli.run_main)
        raise ValueError(str(error)) from None


def _hub_image_roots(repo_id: str) -> list[Path]:
    """The pictures of a Hub copy: its `images/` folder, downloaded (resumably) with `huggingface_hub`."""
    try:
        root = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"{IMAGES_DIR}/**"]))
    except Exception as error:  # offline, no such repo, network: the missing-pictures error then asks for --images
        logger.warning("%s: cannot download its %s/ folder (%s)", repo_id, IMAGES_DIR, type(error).__name__)
        return []
    return [root / IMAGES_DIR, root]


def _as_dataset(rows: Any, name: str) -> datasets.Dataset:
    if not isinstance(rows, datasets.Dataset):
        raise ValueError(f"{name}: expected a map-style dataset, got {type(rows).__name__}")
    if "image" in rows.column_names and isinstance(rows.features.get("image"), datasets.Image):
        rows = rows.cast_column("image", datasets.Image(decode=False))  # pictures are decoded lazily, per item
    return rows


def _picture_ref(row: Mapping[str, Any], info: Mapping[str, Any], where: str) -> Any:
    image = row.get("image")
    if image is not None and not (isinstance(image, str) and not image.strip()):
        return image
    for key in _IMAGE_KEYS:
        if isinstance(info.get(key), str) and info[key].strip():
            return info[key]
    raise ValueError(f"{where}: field 'image_info' names no picture (expected one of {', '.join(_IMAGE_KEYS)})")


def _resolve(ref: Any, roots: Sequence[Path]) -> Any:
    """A relative picture path → the first existing file under `roots` (else unchanged; missing files are counted)."""
    if not isinstance(ref, str) or Path(ref).is_absolute():
        return ref
    for root in roots:
        if (root / ref).is_file():
            return str(root / ref)
    return str(roots[0] / ref) if roots else ref


def _question_turns(row: Mapping[str, Any], where: str) -> tuple[str, str, list[list[float]]]:
    turns = _structured(row, "conversations", where, list)
    if not all(isinstance(turn, Mapping) for turn in turns):
        raise ValueError(f"{where}: field 'conversations': expected a list of {{'from', 'value'}} turns")
    human = next((turn for turn in turns if turn.get("from") == "human"), None)
    gpt = next((turn for turn in turns if turn.get("from") == "gpt"), None)
    if human is None or gpt is None or not str(gpt.get("value", "")).strip():
        raise ValueError(f"{where}: field 'conversations': expected a human turn and a non-empty gpt turn")
    if not str(human.get("value", "")).replace("<image>", "").strip() and isinstance(row.get("text_q"), str):
        human = {**human, "value": row["text_q"]}
    try:
        (question, answer), boxes = masks_to_regions([human, gpt], _structured(row, "bbox", where, list))
    except BadRecord as error:
        raise ValueError(f"{where}: {error}") from None
    prompt = str(question["value"]).replace("<image>", " ")
    return " ".join(prompt.split()), str(answer["value"]).strip(), boxes


def load_items(
    data: str | os.PathLike[str] | None = None,
    dataset: str = DEFAULT_DATASET,
    split: str = DEFAULT_SPLIT,
    images: str | os.PathLike[str] | None = None,
    draw_boxes: bool = True,
    limit: int | None = None,
) -> tuple[list[EvalItem], str]:
    """The bench as `EvalItem`s (pictures loaded lazily) and the name of the source read.

    `data`: the jsonl (or the array `.json`), a folder holding it (pictures in `folder/images` or `--images`), a
    `save_to_disk` / parquet copy; None → the Hub `dataset`. A row that cannot be read is a one-line `ValueError`
    naming the source, row and field; pictures missing on disk are one error listing how many.
    """
    source = _open_source(Path(data) if data is not None else None, dataset, split, Path(images) if images else None)
    rows = source.rows.select(range(min(limit, len(source.rows)))) if limit is not None else source.rows
    items: list[EvalItem] = []
    seen: Counter[str] = Counter()
    missing: list[str] = []
    for number in range(len(rows)):
        row = rows[number]
        where = f"{source.name}: row {number + 1}"
        qa = _structured(row, "qa_info", where, dict)
        info = _structured(row, "image_info", where, dict) if row.get("image_info") is not None else {}
        prompt, answer, boxes = _question_turns(row, where)
        ref = _resolve(_picture_ref(row, info, where), source.image_roots)
        if isinstance(ref, str) and not Path(ref).is_file():
            missing.append(ref)
        item_id = str(row.get("id") if row.get("id") is not None else number)
        seen[item_id] += 1
        if seen[item_id] > 1:  # the results file is keyed by id: keep every row
            item_id = f"{item_id}#{seen[item_id]}"
        size = (info.get("width"), info.get("height"))
        names = list(REGION_COLOR_NAMES[: len(boxes)]) if draw_boxes and len(boxes) <= len(REGION_COLOR_NAMES) else []
        items.append(
            EvalItem(
                id=item_id,
                prompt=prompt,
                reference=answer,
                group=str(qa.get("category", "")),
                images=_picture_loader(ref, boxes if draw_boxes else [], size, where),
                meta={
                    "category": str(qa.get("category", "")),
                    "type": str(qa.get("type", "")),
                    "num_regions": len(boxes),
                    "region_names": names,
                    "image": ref if isinstance(ref, str) else None,
                },
            )
        )
    if missing:
        raise FileNotFoundError(
            f"{source.name}: {len(missing)} of {len(items)} picture(s) not found (first: {missing[0]}); "
            "pass --images FOLDER (the bench's images folder)"
        )
    unknown = Counter(item.group for item in items if item.group not in CATEGORY_GROUP)
    if unknown:
        logger.warning("%s: unknown categories (reported, not scored): %s", source.name, dict(unknown))
    return items, source.name


def _picture_loader(
    ref: Any, boxes: list[list[float]], size: tuple[Any, Any], where: str
) -> Callable[[], list[Image.Image]]:
    def load() -> list[Image.Image]:
        picture = decode_image_value(ref, where)
        if picture is None:
            raise ValueError(f"{where}: no picture")
        if not boxes:
            return [picture]
        width, height = size  # the boxes are in pixels of the annotated size (image_info), if the row gives it
        known = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in size)
        annotated = (round(width), round(height)) if known else picture.size
        return [draw_bboxes(picture, scale_boxes(boxes, annotated, picture.size))]

    return load


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


def data_identity(source: str, draw_boxes: bool) -> dict[str, Any]:
    """What the predictions depend on besides the model: the rows read, and whether the regions were drawn."""
    return {"source": source, "draw_bboxes": bool(draw_boxes)}


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
