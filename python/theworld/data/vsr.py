"""Visual Spatial Reasoning (VSR): true/false statements about COCO pictures, as TheWorld examples.

The real data (`cambridgeltl/vsr_random`, `cambridgeltl/vsr_zeroshot`) is three JSON Lines files, `train.jsonl`,
`dev.jsonl` and `test.jsonl`, one record per line::

    {"image": "000000085637.jpg", "image_link": "http://images.cocodataset.org/train2017/000000085637.jpg",
     "caption": "The umbrella is under the bed.", "label": 0, "relation": "under",
     "reference_frame": "intrinsic",                  # vsr_random;  vsr_zeroshot has "subj" and "obj"
     "vote_true_validator_id": "[2, 9]", "vote_false_validator_id": "[]", ...}

The vote fields are STRINGS holding a list; `parse_votes` turns them into ints. Pictures are COCO 2017 files, ~4%
from val2017: `image_folder` is either one merged folder, or holds `train2017/` and `val2017/` subfolders (the
subfolder named by `image_link` is tried too).

Each record becomes one example: the question is `question_template` filled with the caption, and the answer is
"True" (label 1: the statement holds for the picture) or "False" (label 0). Words, not "yes"/"no" or digits: VSR's
task is judging a statement true or false, and the default question asks exactly that.

[Contract] `VSRDataset` serves `{"image": RGB PIL, "messages": [user question, assistant "True" | "False"]}`; a
record with a label other than 0/1/bool, a caption that is not text, malformed votes, or a missing or unreadable
picture is skipped and counted in `skip_log` by reason. `record(i)` exposes the metadata for evaluation.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import datasets

from theworld.data.hf_source import load_hf_records, load_json_file, split_candidates
from theworld.data.image_files import open_image_file
from theworld.data.robust import Example, SkippingDataset
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, BadRecord, SkipLog

DEFAULT_QUESTION_TEMPLATE = "Is this statement about the picture true or false? {question}"
ANSWERS = {True: "True", False: "False"}
COCO_SUBFOLDERS = ("train2017", "val2017")
_TEMPLATE_FIELDS = frozenset({"question", "caption"})

# Type-checked fields are Json (any value loads; `record` checks it); metadata fields are text. The vote fields are
# strings in the real files, so a list or a number there is read as its text and checked by `parse_votes`.
VSR_FEATURES = datasets.Features(
    {
        "image": datasets.Json(),
        "image_link": datasets.Value("string"),
        "caption": datasets.Json(),
        "label": datasets.Json(),
        "relation": datasets.Value("string"),
        "reference_frame": datasets.Value("string"),
        "subj": datasets.Value("string"),
        "obj": datasets.Value("string"),
        "vote_true_validator_id": datasets.Value("string"),
        "vote_false_validator_id": datasets.Value("string"),
    }
)


@dataclass(frozen=True)
class VSRRecord:
    """The fields of one VSR record, checked; `subj`/`obj` (zeroshot) or `reference_frame` (random) may be None."""

    image: str
    caption: str
    label: bool
    relation: str | None
    reference_frame: str | None
    subj: str | None
    obj: str | None
    votes_true: list[int]
    votes_false: list[int]
    image_link: str | None

    @property
    def answer(self) -> str:
        return ANSWERS[self.label]


def parse_votes(value: Any, field: str = "votes") -> list[int]:
    """A vote field ("[2, 9]", "[]"; a list of ints is accepted too) → list of validator ids; `BadRecord` otherwise."""
    if value is None:
        return []
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value.strip() or "[]")
        except ValueError:
            raise BadRecord(
                BAD_FIELD, f"field '{field}': expected a list of ids like '[2, 9]', got {value!r}"
            ) from None
    if not isinstance(parsed, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in parsed):
        raise BadRecord(BAD_FIELD, f"field '{field}': expected a list of integer ids like '[2, 9]', got {value!r}")
    return list(parsed)


def check_question_template(template: str) -> str:
    """`template` if it names `{question}` or `{caption}` and nothing else; a one-line ValueError otherwise."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"question_template {template!r}: {error}") from None
    if not names & _TEMPLATE_FIELDS or names - _TEMPLATE_FIELDS:
        raise ValueError(
            f"question_template {template!r}: expected the placeholder {{question}} or {{caption}} (and no other), "
            f"got {sorted(names)}"
        )
    return template


def _optional_text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) and value else None


class VSRDataset(SkippingDataset):
    """VSR records (a `datasets.Dataset` with the VSR columns) served as examples; see the module docstring."""

    def __init__(
        self,
        records: datasets.Dataset,
        image_folder: str | os.PathLike[str],
        question_template: str | None = None,
        skip_log: SkipLog | None = None,
    ) -> None:
        super().__init__(skip_log if skip_log is not None else SkipLog("vsr"))
        self.records = records
        self.image_folder = Path(image_folder)
        if not self.image_folder.is_dir():
            raise FileNotFoundError(f"image_folder={str(self.image_folder)!r}: no such directory")
        self.question_template = check_question_template(question_template or DEFAULT_QUESTION_TEMPLATE)

    def __len__(self) -> int:
        return len(self.records)

    def record(self, index: int) -> VSRRecord:
        """The checked fields of record `index` (for evaluation by relation, reference frame, votes ...)."""
        row = self.records[int(index)]
        caption, label, image = row.get("caption"), row.get("label"), row.get("image")
        if not isinstance(caption, str):
            raise BadRecord(BAD_FIELD, f"record {index}: field 'caption' must be text, got {type(caption).__name__}")
        if not caption.strip():
            raise BadRecord(EMPTY_CONVERSATION, f"record {index}: field 'caption' is empty")
        if not (isinstance(label, bool) or (isinstance(label, int) and label in (0, 1))):
            raise BadRecord(BAD_FIELD, f"record {index}: field 'label' must be 0, 1 or a bool, got {label!r}")
        link = _optional_text(row, "image_link")
        if image is None and link:  # the file name is the last part of the link
            image = PurePosixPath(urlparse(link).path).name
        if not isinstance(image, str) or not image.strip():
            raise BadRecord(BAD_FIELD, f"record {index}: field 'image' must be a file name, got {image!r}")
        try:
            votes_true = parse_votes(row.get("vote_true_validator_id"), "vote_true_validator_id")
            votes_false = parse_votes(row.get("vote_false_validator_id"), "vote_false_validator_id")
        except BadRecord as error:
            raise BadRecord(error.reason, f"record {index}: {error}") from None
        return VSRRecord(
            image=image.strip(),
            caption=caption.strip(),
            label=bool(label),
            relation=_optional_text(row, "relation"),
            reference_frame=_optional_text(row, "reference_frame"),
            subj=_optional_text(row, "subj"),
            obj=_optional_text(row, "obj"),
            votes_true=votes_true,
            votes_false=votes_false,
            image_link=link,
        )

    def image_path(self, record: VSRRecord) -> Path:
        """Where the picture is: the merged folder, the subfolder named by the link, train2017/ or val2017/."""
        subfolders: list[str] = []
        if record.image_link:
            subfolders.append(PurePosixPath(urlparse(record.image_link).path).parent.name)
        subfolders += [name for name in COCO_SUBFOLDERS if name not in subfolders]
        candidates = [self.image_folder / record.image] + [
            self.image_folder / s / record.image for s in subfolders if s
        ]
        return next((path for path in candidates if path.is_file()), candidates[0])

    def question(self, record: VSRRecord) -> str:
        return self.question_template.format(question=record.caption, caption=record.caption)

    def load_example(self, index: int) -> Example:
        record = self.record(index)
        image = open_image_file(self.image_path(record))
        return {
            "image": image,
            "messages": [
                {"role": "user", "content": self.question(record)},
                {"role": "assistant", "content": record.answer},
            ],
        }

    def describe(self, index: int) -> str:
        image = self.records[int(index)].get("image")
        return f"record {index} (image {image})" if isinstance(image, str) else f"record {index}"


def _split_file(folder: Path, split: str) -> Path | None:
    for name in split_candidates(split):
        for suffix in (".jsonl", ".json"):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def load_vsr_records(source: str | os.PathLike[str], split: str, cache_dir: str | None = None) -> datasets.Dataset:
    """The raw VSR records of `split`: from a jsonl file, a folder of `{train,dev,test}.jsonl`, or a dataset id/dir."""
    path = Path(source)
    if path.suffix in (".jsonl", ".json") and not path.is_file():
        raise FileNotFoundError(f"VSR {split}: {path}: no such file")
    if path.is_file():
        return load_json_file(path, VSR_FEATURES, cache_dir=cache_dir)
    if path.is_dir() and (file := _split_file(path, split)) is not None:
        return load_json_file(file, VSR_FEATURES, cache_dir=cache_dir)
    records = load_hf_records(str(source), split, cache_dir=cache_dir)  # a Hub id or another dataset layout
    assert isinstance(records, datasets.Dataset)
    return records


def load_vsr(
    source: str | os.PathLike[str],
    split: str,
    image_folder: str | os.PathLike[str],
    question_template: str | None = None,
    num_samples: int | None = None,
    skip_log: SkipLog | None = None,
    cache_dir: str | None = None,
) -> VSRDataset:
    """VSR `split` ("train", "dev" = "validation", "test") of `source` with pictures from `image_folder`.

    `source`: a jsonl file, a folder holding train/dev/test jsonl, or a Hub id / local dataset dir. `num_samples`
    keeps the first records. `cache_dir` is where `datasets` keeps the Arrow cache (None: its default).
    """
    if num_samples is not None and num_samples <= 0:
        raise ValueError(f"num_samples must be positive or None, got {num_samples}")
    records = load_vsr_records(source, split, cache_dir)
    if num_samples is not None:
        records = records.select(range(min(num_samples, len(records))))
    log = skip_log if skip_log is not None else SkipLog(f"vsr {split}")
    return VSRDataset(records, image_folder, question_template=question_template, skip_log=log)
