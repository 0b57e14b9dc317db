"""Small VSR and LLaVA-Pretrain datasets in their exact real file formats, with generated JPEG pictures.

* `write_vsr_dataset(root, variant)`: `train.jsonl` / `dev.jsonl` / `test.jsonl` records of `cambridgeltl/vsr_random`
  (`reference_frame`) or `cambridgeltl/vsr_zeroshot` (`subj`, `obj`), vote fields as STRINGS ("[2, 9]", "[]"), and
  COCO 2017 pictures — every `val_every`-th from val2017 — in one merged folder or in `train2017/` + `val2017/`.
* `write_llava_pretrain(root)`: a `blip_laion_cc_sbu_558k.json` array and `images/00xxx/` picture subfolders, the
  `<image>` marker alternately before and after the instruction.

Records are deterministic; tests edit the returned records (or pictures) to build bad inputs and re-write them with
`write_jsonl` / `write_json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from theworld.testing.pictures import make_picture

VSR_RELATIONS = ("under", "left of", "on top of", "behind", "in front of", "at the right side of")
VSR_OBJECTS = ("umbrella", "bed", "cat", "dog", "bench", "suitcase", "cup", "laptop")
VSR_SPLIT_SIZES = (("train", 8), ("dev", 4), ("test", 4))
LLAVA_INSTRUCTIONS = (
    "Render a clear and concise summary of the photo.",
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Share a concise interpretation of the image provided.",
)
LLAVA_CAPTIONS = (
    "select luxury furniture 3 - inch gel memory foam mattress topper",
    "a red bicycle leaning against a brick wall",
    "the view from the top of the mountain",
    "two dogs playing in the snow",
)


@dataclass(frozen=True)
class VSRFixture:
    jsonl_dir: Path  # train.jsonl, dev.jsonl, test.jsonl
    image_folder: Path
    records: dict[str, list[dict[str, Any]]]  # split → records as written


@dataclass(frozen=True)
class LlavaFixture:
    json_path: Path
    image_folder: Path  # 00000/ ... subfolders
    records: list[dict[str, Any]]


def write_jsonl(path: Path, records: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_json(path: Path, records: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(records), indent=1), encoding="utf-8")  # the real file is one indented array
    return path


def write_jpeg(path: Path, seed: int, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_picture(seed, size=size).save(path, format="JPEG", quality=90)
    return path


def vsr_record(
    index: int, variant: Literal["random", "zeroshot"], image_id: int, coco_split: str, label: int
) -> dict[str, Any]:
    """One record in the exact format of the VSR jsonl files (votes as strings, `image_link` to COCO)."""
    name = f"{image_id:012d}.jpg"
    subj, obj = VSR_OBJECTS[index % len(VSR_OBJECTS)], VSR_OBJECTS[(index + 3) % len(VSR_OBJECTS)]
    relation = VSR_RELATIONS[index % len(VSR_RELATIONS)]
    record: dict[str, Any] = {
        "image": name,
        "image_link": f"http://images.cocodataset.org/{coco_split}/{name}",
        "caption": f"The {subj} is {relation} the {obj}.",
        "label": label,
        "relation": relation,
        "annotator_id": 30 + index % 7,
        "vote_true_validator_id": "[2, 9]" if label else "[]",
        "vote_false_validator_id": "[]" if label else f"[{index % 5 + 1}]",
    }
    if variant == "random":
        record["reference_frame"] = "intrinsic" if index % 2 else "relative"
    else:
        record["subj"], record["obj"] = subj, obj
    return record


def write_vsr_dataset(
    root: Path,
    variant: Literal["random", "zeroshot"] = "random",
    layout: Literal["merged", "split"] = "merged",
    split_sizes: Sequence[tuple[str, int]] = VSR_SPLIT_SIZES,
    val_every: int = 4,
    picture_size: int = 32,
) -> VSRFixture:
    """VSR jsonl splits under `root/vsr` and their COCO pictures under `root/coco` (merged, or train2017/val2017)."""
    jsonl_dir, image_folder = root / "vsr", root / "coco"
    image_folder.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {}
    index = 0
    for split, size in split_sizes:
        records[split] = []
        for _ in range(size):
            coco_split = "val2017" if index % val_every == val_every - 1 else "train2017"
            image_id = 85637 + 1000 * index
            record = vsr_record(index, variant, image_id, coco_split, label=index % 2)
            folder = image_folder if layout == "merged" else image_folder / coco_split
            write_jpeg(folder / record["image"], seed=index, size=picture_size)
            records[split].append(record)
            index += 1
        write_jsonl(jsonl_dir / f"{split}.jsonl", records[split])
    return VSRFixture(jsonl_dir=jsonl_dir, image_folder=image_folder, records=records)


def llava_record(index: int) -> dict[str, Any]:
    """One record in the exact format of `blip_laion_cc_sbu_558k.json`; `<image>` before the instruction at even
    indices, after it at odd ones."""
    record_id = f"{4539375 + 1700 * index:09d}"
    instruction = LLAVA_INSTRUCTIONS[index % len(LLAVA_INSTRUCTIONS)]
    prompt = f"<image>\n{instruction}" if index % 2 == 0 else f"{instruction}\n<image>"
    return {
        "id": record_id,
        "image": f"{record_id[:5]}/{record_id}.jpg",
        "conversations": [
            {"from": "human", "value": prompt},
            {"from": "gpt", "value": LLAVA_CAPTIONS[index % len(LLAVA_CAPTIONS)]},
        ],
    }


def write_llava_pretrain(root: Path, count: int = 8, picture_size: int = 32) -> LlavaFixture:
    """`root/blip_laion_cc_sbu_558k.json` and its pictures in `root/images/00xxx/`."""
    records = [llava_record(i) for i in range(count)]
    image_folder = root / "images"
    for index, record in enumerate(records):
        write_jpeg(image_folder / record["image"], seed=100 + index, size=picture_size)
    json_path = write_json(root / "blip_laion_cc_sbu_558k.json", records)
    return LlavaFixture(json_path=json_path, image_folder=image_folder, records=records)
