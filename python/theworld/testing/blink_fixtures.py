"""A small BLINK copy in the real row format of `BLINK-Benchmark/BLINK`, with generated pictures.

Rows have the Hub dataset's columns: `idx` ("val_Relative_Depth_1"), `question`, `sub_task`, `image_1`..`image_4`
(`datasets.Image`; unused ones None), `choices` (list of str), `answer` ("(A)"; the string "hidden" in `test`),
`prompt` (the official full prompt: question, "Select from the following choices.", one "(X) text" line per
choice), `explanation` and `isVisualPrompt` (carried, unused by the evaluation). Four subtasks with 1, 2, 3 and 4
pictures per row; `val` has answers, `test` has hidden ones.

`write_blink_dataset(root, layout)` writes the rows as:

* `"hub"`: `root/<Task>/val-00000-of-00001.parquet` and `test-...` — the layout of a snapshot of the Hub repo;
* `"flat"`: `root/val-00000-of-00001.parquet` and `root/test-...`, every subtask in one file per split;
* `"saved"`: `DatasetDict({"val", "test"}).save_to_disk(root)`;
* `"jsonl"`: `root/val.jsonl` / `root/test.jsonl` with image paths relative to `root` (pictures in `root/images/`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets

from theworld.testing.pictures import make_picture

IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")
BLINK_FEATURES = datasets.Features(
    {
        "idx": datasets.Value("string"),
        "question": datasets.Value("string"),
        "sub_task": datasets.Value("string"),
        **{column: datasets.Image() for column in IMAGE_COLUMNS},
        "choices": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "explanation": datasets.Value("string"),
        "isVisualPrompt": datasets.Value("string"),
    }
)
Layout = Literal["hub", "flat", "saved", "jsonl"]

# task → (question, choices, pictures per row, val answers, number of hidden test rows)
FIXTURE_TASKS: dict[str, tuple[str, list[str], int, list[str], int]] = {
    "Relative_Depth": (
        "Two points are circled on the image, labeled by A and B beside each circle. Which point is closer to the "
        "camera?",
        ["A is closer", "B is closer"],
        1,
        ["(A)", "(B)", "(A)", "(A)"],
        2,
    ),
    "Multi-view_Reasoning": (
        "The images are frames from a video. The video is shooting a static scene. The camera is either moving "
        "clockwise (left) or counter-clockwise (right) around the object. Which way is the camera moving?",
        ["left", "right"],
        2,
        ["(B)", "(A)", "(B)"],
        1,
    ),
    "Art_Style": (
        "Which image shares the same style as the reference image?",
        ["the first image", "the second image"],
        3,
        ["(A)", "(B)"],
        1,
    ),
    "Forensic_Detection": (
        "You are given 4 images. Which one is most likely to be a real photograph?",
        ["the first image", "the second image", "the third image", "the fourth image"],
        4,
        ["(C)", "(A)", "(D)"],
        1,
    ),
}


@dataclass(frozen=True)
class BlinkFixture:
    path: Path  # what --data points at
    rows: dict[str, list[dict[str, Any]]]  # split → rows as written (pictures as PIL images)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(row["sub_task"] for rows in self.rows.values() for row in rows))


def official_prompt(question: str, choices: list[str]) -> str:
    """The layout of BLINK's `prompt` column: the question, the instruction, one "(X) text" line per choice."""
    lines = [question, "Select from the following choices."]
    lines += [f"({chr(ord('A') + i)}) {choice}" for i, choice in enumerate(choices)]
    return "\n".join(lines)


def blink_row(task: str, split: str, number: int, answer: str, picture_size: int = 48) -> dict[str, Any]:
    """Row `number` (1-based) of `task` in `split`, with its generated pictures and None for unused image columns."""
    question, choices, num_pictures, _, _ = FIXTURE_TASKS[task]
    seed = 1000 * (list(FIXTURE_TASKS).index(task) + 1) + 100 * (split == "test") + 10 * number
    row: dict[str, Any] = {
        "idx": f"{split}_{task}_{number}",
        "question": question,
        "sub_task": task,
        "choices": list(choices),
        "answer": answer,
        "prompt": official_prompt(question, choices),
        "explanation": "",
        "isVisualPrompt": "True" if task == "Relative_Depth" else "False",
    }
    for index, column in enumerate(IMAGE_COLUMNS):
        row[column] = make_picture(seed + index, size=picture_size) if index < num_pictures else None
    return row


def blink_rows(picture_size: int = 48) -> dict[str, list[dict[str, Any]]]:
    """split → rows: every fixture task's `val` rows (with answers) and `test` rows (answer "hidden")."""
    rows: dict[str, list[dict[str, Any]]] = {"val": [], "test": []}
    for task, (_, _, _, answers, hidden) in FIXTURE_TASKS.items():
        rows["val"] += [blink_row(task, "val", n, answer, picture_size) for n, answer in enumerate(answers, 1)]
        rows["test"] += [blink_row(task, "test", n, "hidden", picture_size) for n in range(1, hidden + 1)]
    return rows


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while the fixture is written (restored afterwards)."""
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows, features=BLINK_FEATURES)


def _write_jsonl(root: Path, split: str, rows: list[dict[str, Any]]) -> None:
    lines = []
    for row in rows:
        record = dict(row)
        for column in IMAGE_COLUMNS:
            if row[column] is not None:
                relative = f"images/{row['idx']}_{column}.png"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                row[column].save(root / relative, format="PNG")
                record[column] = relative
        lines.append(json.dumps(record) + "\n")
    (root / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")


def write_blink_dataset(root: Path, layout: Layout = "hub", picture_size: int = 48) -> BlinkFixture:
    """Write the fixture rows under `root` in `layout` (see the module docstring); returns what --data points at."""
    rows = blink_rows(picture_size)
    root.mkdir(parents=True, exist_ok=True)
    shard = "{split}-00000-of-00001.parquet"
    with _quiet_datasets():
        if layout == "hub":
            for task in FIXTURE_TASKS:
                (root / task).mkdir(parents=True, exist_ok=True)
                for split, split_rows in rows.items():
                    task_rows = [row for row in split_rows if row["sub_task"] == task]
                    _dataset(task_rows).to_parquet(root / task / shard.format(split=split))
        elif layout == "flat":
            for split, split_rows in rows.items():
                _dataset(split_rows).to_parquet(root / shard.format(split=split))
        elif layout == "saved":
            datasets.DatasetDict({split: _dataset(split_rows) for split, split_rows in rows.items()}).save_to_disk(root)
        elif layout == "jsonl":
            for split, split_rows in rows.items():
                _write_jsonl(root, split, split_rows)
        else:
            raise ValueError(f"layout {layout!r}: expected one of hub, flat, saved, jsonl")
    return BlinkFixture(path=root, rows=rows)
