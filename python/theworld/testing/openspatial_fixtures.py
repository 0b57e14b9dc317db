"""OpenSpatialDataset (Spatial-RGPT) files in the exact real format, for the loader's tests and ingest benchmark.

The real `a8cheng/OpenSpatialDataset` file `result_10_depth_convs.json` is ONE JSON array of records
`{"filename": "<OpenImages id, no extension>", "conversations": [{"from": "human"|"gpt", "value": ...}, ...],
"bbox": [[x1, y1, x2, y2], ...], "rle": [{"size": [h, w], "counts": "<COCO compressed RLE>"}, ...]}` (no `id`).
Human turns mention objects as `<mask> <depth>` (sometimes a bare `<mask>`), the first one starts with `<image>\\n`,
and the answers name them "Region [k]", k counting the placeholders of the whole conversation; `bbox[k]`/`rle[k]`
belong to the k-th placeholder, so an object asked about twice has two equal boxes.

`iter_openspatial_records` generates such records (multi-turn, repeated objects, RLE strings of a realistic length),
`write_openspatial_json` streams any number of them to disk record by record (never one giant `json.dumps`), and
`write_openspatial` writes a small dataset plus JPEG pictures (at the annotated size) for a chosen subset of the ids,
so the loader's images-first filter has work to do.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theworld.testing.pictures import make_picture

OPENSPATIAL_JSON = "result_10_depth_convs.json"
ANNOTATED_SIZES = ((640, 480), (480, 640), (512, 384), (400, 300))  # (width, height) of the generated pictures
RLE_ALPHABET = "".join(chr(code) for code in range(48, 112))  # COCO's compressed RLE characters ('0' .. 'o')

Record = dict[str, Any]

# (question with {0}, {1} for the placeholders, answers with {0}, {1} for the region numbers)
_QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Is {0} further away than {1}?", ("Region [{0}] is further away than Region [{1}].", "No, it is closer.")),
    ("What is the distance between {0} and {1}?", ("Region [{0}] and Region [{1}] are {d} meters apart.",)),
    ("Which is taller, {0} or {1}?", ("Region [{1}] is taller.", "Region [{0}] is taller than Region [{1}].")),
    ("Is {0} to the left of {1} from the viewer's perspective?", ("Yes, Region [{0}] is to the left.",)),
    ("How wide is {0}?", ("Region [{0}] is {d} meters wide.",)),
    ("How far is {0} from the camera?", ("Region [{0}] is about {d} meters away.",)),
)


@dataclass
class OpenSpatialFixture:
    """What `write_openspatial` wrote: the JSON, the picture folder, the records and which ids have a picture."""

    json_path: Path
    image_folder: Path
    records: list[Record]
    ids: list[str]
    image_ids: list[str] = field(default_factory=list)


def make_image_ids(count: int, seed: int = 0) -> list[str]:
    """`count` distinct OpenImages-like ids (16 lowercase hex digits, e.g. "000a1249af2bc5f0")."""
    rng = random.Random(f"openspatial-ids-{seed}")
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids[f"{rng.getrandbits(64):016x}"] = None
    return list(ids)


def annotated_size(image_id: str) -> tuple[int, int]:
    """(width, height) of the picture an id stands for (fixed per id, so all its records agree)."""
    return ANNOTATED_SIZES[int(image_id[:6], 16) % len(ANNOTATED_SIZES)]


def _box(rng: random.Random, width: int, height: int) -> list[float]:
    x1, y1 = rng.uniform(0, width * 0.7), rng.uniform(0, height * 0.7)
    x2, y2 = rng.uniform(x1 + width * 0.1, width), rng.uniform(y1 + height * 0.1, height)
    return [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)]


def make_record(
    rng: random.Random, image_id: str, rle_pool: str, rle_chars: tuple[int, int] = (200, 1200), max_turns: int = 3
) -> Record:
    """One record in the real format: 1..`max_turns` question/answer pairs about 2-4 objects of the picture."""
    width, height = annotated_size(image_id)
    objects = []
    for _ in range(rng.randint(2, 4)):
        length = rng.randint(*rle_chars)
        start = rng.randrange(len(rle_pool) - length)
        objects.append(
            (_box(rng, width, height), {"size": [height, width], "counts": rle_pool[start : start + length]})
        )
    conversations: list[dict[str, str]] = []
    bbox: list[list[float]] = []
    rle: list[dict[str, Any]] = []
    for turn in range(rng.randint(1, max_turns)):
        question, answers = rng.choice(_QUESTIONS)
        mentions = 2 if "{1}" in question else 1
        # Later turns often ask about an object again: it gets a new placeholder and a repeated box.
        chosen = rng.sample(range(len(objects)), mentions)
        placeholders, numbers = [], []
        for number in chosen:
            placeholders.append("<mask> <depth>" if rng.random() < 0.85 else "<mask>")
            numbers.append(len(bbox))
            bbox.append(list(objects[number][0]))
            rle.append(dict(objects[number][1]))
        distance = f"{rng.uniform(0.3, 9.0):.2f}"
        text = question.format(*placeholders)
        conversations.append({"from": "human", "value": ("<image>\n" if turn == 0 else "") + text})
        conversations.append({"from": "gpt", "value": rng.choice(answers).format(*numbers, d=distance)})
    return {"filename": image_id, "conversations": conversations, "bbox": bbox, "rle": rle}


def iter_openspatial_records(
    num_records: int, ids: Sequence[str], seed: int = 0, rle_chars: tuple[int, int] = (200, 1200)
) -> Iterator[Record]:
    """`num_records` records: record i < len(ids) is about ids[i], later ones about random ids (several per id)."""
    rng = random.Random(f"openspatial-records-{seed}")
    pool = "".join(rng.choices(RLE_ALPHABET, k=max(65536, 4 * rle_chars[1])))
    for index in range(num_records):
        image_id = ids[index] if index < len(ids) else ids[rng.randrange(len(ids))]
        yield make_record(rng, image_id, pool, rle_chars)


def write_openspatial_json(path: str | Path, records: Iterable[Any]) -> int:
    """Stream `records` (any JSON values) to `path` as one JSON array, one record at a time; returns the count."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with file.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for record in records:
            handle.write((", " if count else "") + json.dumps(record))
            count += 1
        handle.write("]")
    return count


def write_picture(path: str | Path, image_id: str, seed: int = 0) -> Path:
    """A JPEG picture of the annotated size of `image_id` at `path`."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    picture = make_picture(int(image_id[:8], 16) + seed, size=64).resize(annotated_size(image_id))
    picture.save(file, format="JPEG", quality=85)
    return file


def write_openspatial(
    directory: str | Path,
    num_records: int,
    num_images: int,
    seed: int = 0,
    *,
    num_ids: int | None = None,
    image_subdir: str = "train",
    rle_chars: tuple[int, int] = (40, 200),
    filename: str = OPENSPATIAL_JSON,
) -> OpenSpatialFixture:
    """Write `num_records` records (over `num_ids` pictures, default 3/4 of the records) to `directory/filename` and
    JPEG pictures for `num_images` of the ids (a seeded choice) to `directory/openimages/image_subdir/<id>.jpg`."""
    root = Path(directory)
    ids = make_image_ids(num_ids if num_ids is not None else max(1, (3 * num_records) // 4), seed)
    records = list(iter_openspatial_records(num_records, ids, seed, rle_chars))
    json_path = root / filename
    write_openspatial_json(json_path, records)
    image_folder = root / "openimages"
    image_folder.mkdir(parents=True, exist_ok=True)
    used = list(dict.fromkeys(record["filename"] for record in records))
    chosen = sorted(random.Random(f"openspatial-pictures-{seed}").sample(used, min(num_images, len(used))))
    for image_id in chosen:
        write_picture(image_folder / image_subdir / f"{image_id}.jpg", image_id, seed)
    return OpenSpatialFixture(
        json_path=json_path, image_folder=image_folder, records=records, ids=used, image_ids=chosen
    )
