"""Reading SpatialRGPT-Bench (`a8cheng/SpatialRGPT-Bench`) rows into `EvalItem`s: `load_items`, the source defaults.

A row is one JSON object: `id`, `image_info` ({"file_path": ..., "height", "width"}; the key may also be `image` or
`path`), `text_q`, `conversations` (human turn "<image>\\n... <mask> ... <mask>", gpt turn = the ground truth),
`qa_info` {"type": "qualitative"|"quantitative", "category"}, `bbox` ([x1, y1, x2, y2] per `<mask>`, in pixels of
the picture). A Hub/parquet copy may carry the picture itself in an `image` column, and may store the dict/list
fields as JSON (or Python-literal) strings; rows of the Hub id without pictures get the repo's `images/` folder
(downloaded with `huggingface_hub`) unless `--images` is given. The i-th `<mask>` becomes "Region [i]" and box i is
drawn on the picture numbered "Region [i]" (`theworld.data.regions`, the convention of the OpenSpatialDataset
training data); the item's meta names each drawn box by its colour (`REGION_COLOR_NAMES`).
The categories, metrics and summaries are `theworld.evaluation.spatial_bench`.
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import snapshot_download
from PIL import Image

from theworld.data.hf_source import decode_image_value, load_hf_records, load_json_file
from theworld.data.regions import REGION_COLORS, draw_bboxes, masks_to_regions, scale_boxes
from theworld.data.skips import BadRecord
from theworld.evaluation.runner import EvalItem

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "a8cheng/SpatialRGPT-Bench"
DEFAULT_SPLIT = "val"
JSONL_NAME = "val_SpatialRGPT-Bench.jsonl"
IMAGES_DIR = "images"

# Names of the colours `draw_bboxes` gives regions 0, 1, ... (`REGION_COLORS` order): "the red box" names region 0.
REGION_COLOR_NAMES = (
    "red", "green", "blue", "orange", "purple", "cyan", "magenta", "lime", "pink", "teal", "brown", "yellow"
)  # fmt: skip
assert len(REGION_COLOR_NAMES) <= len(REGION_COLORS)


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
    from theworld.evaluation.spatial_bench import CATEGORY_GROUP  # here: spatial_bench re-exports this module

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


def data_identity(source: str, draw_boxes: bool) -> dict[str, Any]:
    """What the predictions depend on besides the model: the rows read, and whether the regions were drawn."""
    return {"source": source, "draw_bboxes": bool(draw_boxes)}
