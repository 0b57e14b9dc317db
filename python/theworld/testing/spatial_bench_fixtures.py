"""A small SpatialRGPT-Bench copy in the real format: every one of the 24 categories, with generated pictures.

`write_spatial_bench(root)` writes `root/val_SpatialRGPT-Bench.jsonl` (one JSON object per line: `id`,
`image_info` {"file_path", "height", "width"}, `text_q` with `<mask>` placeholders, `conversations` [human
"<image>\\n..." with `<mask>`s, gpt answer naming "Region [i]"], `qa_info` {"type", "category"}, `bbox` [[x1, y1,
x2, y2], ...]) and the pictures under `root/images/<file_path>` (Omni3D-like sub-folders), at the annotated size.
Answers are written in the bench's phrasings ("Yes, ...", "Indeed, ...", "In fact, ...", "That is False.",
"Standing shorter between the two is Region [1].", "6.91 feet", "... around the 10 o'clock direction."), with
several units (meters, centimeters, feet, inches). `expected` holds the value a judge must read from each gt answer.
`include_unknown` adds a row whose category ("closest_distance_data") is not a bench category but contains
"distance": a substring matcher would count it as direct distance.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theworld.testing.pictures import make_picture

BENCH_JSONL = "val_SpatialRGPT-Bench.jsonl"
UNKNOWN_CATEGORY = "closest_distance_data"
_SOURCES = ("sunrgbd", "hypersim", "arkitscenes", "objectron", "nuscenes", "kitti")
FEET, INCHES = 0.3048, 0.0254

# (category, question with <mask>s, gt answer, value the answer states: yes/no, region, meters or clock hour)
ITEMS: tuple[tuple[str, str, str, Any], ...] = (
    ("below_predicate", "Is <mask> below <mask>?", "Yes, Region [0] is below Region [1].", True),
    ("below_predicate", "Does <mask> appear under <mask>?", "Actually, Region [0] is above Region [1].", False),
    ("above_predicate", "Is <mask> above <mask>?", "Indeed, Region [0] is positioned over Region [1].", True),
    (
        "above_predicate",
        "Can you confirm if <mask> is positioned above <mask>?",
        "Incorrect, Region [0] is not positioned above Region [1].",
        False,
    ),
    ("below_choice", "Which is below, <mask> or <mask>?", "Region [1] is below.", 1),
    (
        "above_choice",
        "Between <mask> and <mask>, which one is positioned higher?",
        "Positioned higher is Region [0].",
        0,
    ),
    (
        "left_predicate",
        "Is <mask> to the left of <mask> from the viewer's perspective?",
        "Correct, you'll find Region [0] to the left of Region [1].",
        True,
    ),
    (
        "left_predicate",
        "Does <mask> appear on the left side of <mask>?",
        "In fact, Region [0] is to the right of Region [1].",
        False,
    ),
    (
        "right_predicate",
        "Is <mask> to the right of <mask> from the viewer's perspective?",
        "No, Region [0] is not to the right of Region [1].",
        False,
    ),
    (
        "left_choice",
        "Between <mask> and <mask>, which one appears on the left side from the viewer's perspective?",
        "From the viewer's perspective, Region [1] appears more on the left side.",
        1,
    ),
    ("right_choice", "Which is more to the right, <mask> or <mask>?", "Region [0] is more to the right.", 0),
    ("big_predicate", "Is <mask> bigger than <mask>?", "Yes, Region [0] is bigger than Region [1].", True),
    (
        "small_predicate",
        "Can you confirm if <mask> is smaller than <mask>?",
        "Incorrect, Region [0] is not smaller in size than Region [1].",
        False,
    ),
    ("tall_predicate", "Is <mask> taller than <mask>?", "No, Region [0] is not taller than Region [1].", False),
    (
        "short_predicate",
        "Does <mask> have a lesser height compared to <mask>?",
        "Indeed, Region [0] has a lesser height compared to Region [1].",
        True,
    ),
    ("tall_choice", "Who is taller, <mask> or <mask>?", "Region [0] is taller.", 0),
    (
        "short_choice",
        "Between <mask> and <mask>, which one has less height?",
        "Standing shorter between the two is Region [1].",
        1,
    ),
    ("wide_predicate", "Is <mask> wider than <mask>?", "Yes, Region [0] is wider than Region [1].", True),
    ("thin_predicate", "Is <mask> thinner than <mask>?", "In fact, Region [0] might be wider than Region [1].", False),
    ("behind_predicate", "Is <mask> behind <mask>?", "Yes, Region [0] is behind Region [1].", True),
    ("behind_predicate", "Does <mask> lie behind <mask>?", "That is False.", False),
    ("front_predicate", "Is <mask> in front of <mask>?", "No, it is behind Region [1].", False),
    (
        "distance_data",
        "What is the distance between <mask> and <mask>?",
        "Region [0] and Region [1] are 2.3 meters apart.",
        2.3,
    ),
    (
        "distance_data",
        "How far apart are <mask> and <mask>?",
        "A distance of 77.56 centimeters exists between Region [0] and Region [1].",
        0.7756,
    ),
    (
        "horizontal_distance_data",
        "What is the horizontal distance between <mask> and <mask>?",
        "Region [0] is 1.5 meters away from Region [1] horizontally.",
        1.5,
    ),
    (
        "horizontal_distance_data",
        "How far apart are <mask> and <mask> horizontally?",
        "It is approximately 4.2 feet.",
        4.2 * FEET,
    ),
    (
        "vertical_distance_data",
        "What is the vertical distance between <mask> and <mask>?",
        "Vertically, They are 35.43 inches apart.",
        35.43 * INCHES,
    ),
    (
        "vertical_distance_data",
        "Measure the vertical distance from <mask> to <mask>.",
        "Region [0] and Region [1] are 0.8 meters apart vertically.",
        0.8,
    ),
    ("width_data", "Measure the width of <mask>.", "The width of Region [0] is 1.2 meters.", 1.2),
    ("width_data", "How wide is <mask>?", "Region [0] is 77.56 centimeters wide.", 0.7756),
    ("height_data", "What is the height of <mask>?", "6.91 feet", 6.91 * FEET),
    ("height_data", "How tall is <mask>?", "The height of Region [0] is 10.0 inches.", 10.0 * INCHES),
    (
        "direction",
        "If you are at <mask>, where will you find <mask>?",
        "Region [0] will find Region [1] around the 10 o'clock direction.",
        10,
    ),
    (
        "direction",
        "If you are at <mask>, where will you find <mask>?",
        "Region [0] is at 12 o'clock from Region [1].",
        12,
    ),
)
UNKNOWN_ITEM = (UNKNOWN_CATEGORY, "What is the closest distance to <mask>?", "It is 2.0 meters from Region [0].", 2.0)


@dataclass
class SpatialBenchFixture:
    """What `write_spatial_bench` wrote: the jsonl, the picture folder, the rows and each row's stated value."""

    root: Path
    jsonl: Path
    image_folder: Path
    records: list[dict[str, Any]]
    expected: dict[str, Any] = field(default_factory=dict)

    def categories(self) -> set[str]:
        return {record["qa_info"]["category"] for record in self.records}


def _qa_type(category: str) -> str:
    return "quantitative" if category.endswith("_data") or category == "direction" else "qualitative"


def bench_records(
    include_unknown: bool = False, picture_size: tuple[int, int] = (128, 96), seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (two questions per picture, as the bench reuses pictures) and {id: stated value}."""
    rng = random.Random(f"spatial-bench-{seed}")
    width, height = picture_size
    records, expected = [], {}
    for number, (category, question, answer, value) in enumerate(ITEMS + ((UNKNOWN_ITEM,) if include_unknown else ())):
        boxes = []
        for _ in range(question.count("<mask>")):
            x1, y1 = rng.randint(0, width // 2), rng.randint(0, height // 2)
            boxes.append([x1, y1, rng.randint(x1 + 8, width - 1), rng.randint(y1 + 8, height - 1)])
        item_id = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        picture = number // 2
        records.append(
            {
                "id": item_id,
                "image_info": {
                    "file_path": f"{_SOURCES[picture % len(_SOURCES)]}/{picture:06d}.jpg",
                    "height": height,
                    "width": width,
                },
                "text_q": question,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{question}"},
                    {"from": "gpt", "value": answer},
                ],
                "qa_info": {"type": _qa_type(category), "category": category},
                "bbox": boxes,
            }
        )
        expected[item_id] = value
    return records, expected


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def write_spatial_bench(
    root: str | Path, include_unknown: bool = False, picture_size: tuple[int, int] = (128, 96)
) -> SpatialBenchFixture:
    """Write the jsonl and its pictures under `root` (see the module docstring)."""
    root = Path(root)
    records, expected = bench_records(include_unknown, picture_size)
    images = root / "images"
    for number, path in enumerate(dict.fromkeys(r["image_info"]["file_path"] for r in records)):
        target = images / path
        target.parent.mkdir(parents=True, exist_ok=True)
        make_picture(number, size=max(picture_size)).resize(picture_size).save(target, quality=90)
    jsonl = write_jsonl(root / BENCH_JSONL, records)
    return SpatialBenchFixture(root, jsonl, images, records, expected)
