"""BLINK (`BLINK-Benchmark/BLINK`, one config per subtask): rows → evaluation items, scoring, and the summary.

Protocol: each row's official `prompt` (question + "Select from the following choices." + "(A) ..." lines) with EVERY
non-None picture of `image_1`..`image_4`, pictures first, then the text, in one user turn. The choice letter is read
from the answer with `extract_choice` and compared with the letter of `answer` ("(A)" → "A"; the reference scripts
compared "A" with "(A)" and scored everything wrong). The overall score is the unweighted mean of the per-task
accuracies over the tasks that have answers; `test` answers are the string "hidden": their predictions are saved,
their `correct` is None and such a task has no accuracy. Beside each accuracy: the "always (A)" baseline computed
from the same references, and the count of answers no letter could be read from.

Where rows come from (`BlinkSource`): the Hub id per subtask config (`datasets.load_dataset(id, task,
split=...)`), or a local copy `--data`: a folder with one subfolder per subtask (a snapshot of the Hub repo), or
one source holding every subtask (filtered by `sub_task`): a `save_to_disk` directory, a folder of split-named data
files (`val-*.parquet`, `test.jsonl`), or one .parquet/.jsonl/.json file. In JSON Lines copies the image columns
hold file paths, relative to the file's folder.

[Contract] pictures are read only when an item is generated (`EvalItem.images` is a callable), so loading the items
of all 14 tasks touches no picture; a malformed row (missing field, an answer that is not a letter, a row without
pictures) is a one-line `ValueError` naming the source, the row and the field.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import datasets
from datasets.exceptions import DatasetGenerationError

from theworld.data.hf_source import decode_image_value, load_hf_records, split_candidates
from theworld.errors import single_line
from theworld.evaluation.choices import answer_letter, extract_choice
from theworld.evaluation.runner import EvalItem

logger = logging.getLogger(__name__)

BENCHMARK = "blink"
DEFAULT_DATASET = "BLINK-Benchmark/BLINK"
DEFAULT_SPLIT = "val"
PROTOCOL = "blink/official-prompt+all-images/letter-match/1"
BLINK_TASKS = (
    "Art_Style",
    "Counting",
    "Forensic_Detection",
    "Functional_Correspondence",
    "IQ_Test",
    "Jigsaw",
    "Multi-view_Reasoning",
    "Object_Localization",
    "Relative_Depth",
    "Relative_Reflectance",
    "Semantic_Correspondence",
    "Spatial_Relation",
    "Visual_Correspondence",
    "Visual_Similarity",
)
IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")
REQUIRED_COLUMNS = ("idx", "prompt", "choices", "answer")
HIDDEN_ANSWER = "hidden"
_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """ "all" or a comma list of subtask names → the names; an unknown one → one-line ValueError listing the valid."""
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text) if part.strip()]
    if not names or names == ["all"]:
        return list(BLINK_TASKS)
    unknown = [name for name in names if name not in BLINK_TASKS]
    if unknown:
        raise ValueError(f"--tasks: unknown BLINK task(s) {', '.join(unknown)}; valid: all, {', '.join(BLINK_TASKS)}")
    return list(dict.fromkeys(names))


def _load_files(files: list[Path], where: Path, cache_dir: str | None) -> datasets.Dataset:
    builder = _FILE_BUILDERS.get(files[0].suffix.lower())
    if builder is None:
        raise ValueError(
            f"--data {where}: expected a .parquet, .jsonl or .json file, a save_to_disk directory or a folder of them"
        )
    try:
        loaded = datasets.load_dataset(
            builder, data_files=[str(file) for file in files], split="train", cache_dir=cache_dir
        )
    except DatasetGenerationError as error:
        raise ValueError(f"--data {where}: cannot read it: {single_line(error.__cause__ or error)}") from None
    assert isinstance(loaded, datasets.Dataset)
    return loaded


def _split_files(folder: Path, split: str) -> list[Path]:
    """`val.jsonl`, `val-00000-of-00001.parquet`, ... (or the split's other names) in `folder`."""
    for name in split_candidates(split):
        for suffix in _FILE_BUILDERS:
            files = sorted(folder.glob(f"{name}{suffix}")) + sorted(folder.glob(f"{name}-*{suffix}"))
            if files:
                return files
    return []


def _load_local(path: Path, split: str, cache_dir: str | None) -> datasets.Dataset:
    """One split of a local copy; split-named files are looked up first, so picture files beside a JSON Lines file
    never make `datasets` take the folder for an image folder."""
    if path.is_file():
        return _load_files([path], path, cache_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"--data {path}: no such file or directory")
    files = _split_files(path, split)
    if files:
        return _load_files(files, path, cache_dir)
    loaded = load_hf_records(path, split, cache_dir=cache_dir)  # save_to_disk dirs, other layouts
    if not isinstance(loaded, datasets.Dataset):
        raise ValueError(f"--data {path}: split {split!r} did not load as one dataset")
    return loaded


def _row_task(row_task: Any, idx: Any, split: str) -> str:
    """A row's subtask: its `sub_task` ("Relative Depth" and "Relative_Depth" alike), else from its `idx`."""
    if isinstance(row_task, str) and row_task.strip():
        return row_task.strip().replace(" ", "_")
    text = str(idx)  # "val_Relative_Depth_12" → "Relative_Depth"
    return text.removeprefix(f"{split}_").rsplit("_", 1)[0]


class BlinkSource:
    """Where BLINK rows come from: the Hub id (one config per task) or a local copy `data` (see the module
    docstring); a copy holding every task is read once and filtered per task."""

    def __init__(
        self,
        split: str,
        data: str | Path | None = None,
        dataset_id: str = DEFAULT_DATASET,
        cache_dir: str | None = None,
    ) -> None:
        self.split = split
        self.data = Path(data) if data is not None else None
        self.dataset_id = dataset_id
        self.cache_dir = cache_dir
        self._shared: datasets.Dataset | None = None

    def __str__(self) -> str:
        return str(self.data) if self.data is not None else self.dataset_id

    def identity(self) -> dict[str, Any]:
        """What goes into the results header to tell one BLINK copy from another."""
        return {"source": str(self.data.resolve()) if self.data is not None else self.dataset_id}

    def _task_folder(self, task: str) -> Path | None:
        if self.data is None or not self.data.is_dir():
            return None
        if (self.data / task).is_dir():
            return self.data / task
        present = [name for name in BLINK_TASKS if (self.data / name).is_dir()]
        if present:
            raise ValueError(
                f"--data {self.data}: no folder for task {task} (it has: {', '.join(present)}); pick them with --tasks"
            )
        return None

    def image_folder(self, task: str) -> Path | None:
        """The folder relative image paths (JSON Lines copies) are read under."""
        if self.data is None:
            return None
        return self._task_folder(task) or (self.data if self.data.is_dir() else self.data.parent)

    def rows(self, task: str) -> datasets.Dataset:
        """The rows of `task` in this split."""
        if self.data is None:
            try:
                loaded = datasets.load_dataset(self.dataset_id, task, split=self.split, cache_dir=self.cache_dir)
            except (OSError, ValueError, DatasetGenerationError) as error:
                raise ValueError(
                    f"BLINK: cannot load {self.dataset_id!r} config {task!r} split {self.split!r}: "
                    f"{single_line(error)}; pass --data with a local copy"
                ) from None
            assert isinstance(loaded, datasets.Dataset)
            return loaded
        folder = self._task_folder(task)
        if folder is not None:
            return _load_local(folder, self.split, self.cache_dir)
        if self._shared is None:
            self._shared = _load_local(self.data, self.split, self.cache_dir)
        rows = self._shared
        tasks_column = rows["sub_task"] if "sub_task" in rows.column_names else [None] * len(rows)
        ids = rows["idx"] if "idx" in rows.column_names else [""] * len(rows)
        names = [_row_task(name, idx, self.split) for name, idx in zip(tasks_column, ids, strict=True)]
        keep = [i for i, name in enumerate(names) if name == task]
        if not keep:
            found = ", ".join(sorted(set(names))) or "no rows"
            raise ValueError(
                f"--data {self.data}: no {self.split} rows of task {task} (it holds: {found}); pick them with --tasks"
            )
        return rows.select(keep)


def _text(row: Mapping[str, Any], column: str, where: str) -> str:
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {column!r} must be non-empty text, got {value!r}")
    return value


def _row_pictures(
    rows: datasets.Dataset, index: int, columns: tuple[str, ...], where: str, folder: Path | None
) -> list[Any]:
    """Every picture of row `index` (decoded now: called when the item is generated)."""
    row = rows[index]
    pictures = [decode_image_value(row[column], f"{where} {column}", folder) for column in columns]
    pictures = [picture for picture in pictures if picture is not None]
    if not pictures:
        raise ValueError(f"{where}: no picture in {', '.join(columns)}; expected 1-4 (BLINK rows all have one)")
    return pictures


def blink_items(
    rows: datasets.Dataset, task: str, split: str, source: str, limit: int | None = None, folder: Path | None = None
) -> list[EvalItem]:
    """Items of one subtask's rows (the first `limit`); `folder` resolves relative image paths (JSON Lines)."""
    missing = [column for column in REQUIRED_COLUMNS if column not in rows.column_names]
    if missing:
        raise ValueError(f"{source} ({task}, {split}): missing column(s) {', '.join(missing)}")
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    columns = tuple(column for column in IMAGE_COLUMNS if column in rows.column_names)
    pictures = rows.select_columns(list(columns))
    for column in columns:  # keep pictures encoded until an item is generated
        if isinstance(pictures.features[column], datasets.Image):
            pictures = pictures.cast_column(column, datasets.Image(decode=False))
    items = []
    for index, raw in enumerate(rows.select_columns([c for c in rows.column_names if c not in columns])):
        row = cast(dict[str, Any], raw)
        where = f"{source} ({task}, {split}) row {index}"
        idx = _text(row, "idx", where)
        where = f"{source} ({task}) {idx}"
        choices = row["choices"]
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{where}: field 'choices' must be a non-empty list of text, got {choices!r}")
        answer = _text(row, "answer", where)
        try:
            reference = None if answer.strip().lower() == HIDDEN_ANSWER else answer_letter(answer)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        if reference is not None and ord(reference) - ord("A") >= len(choices):
            raise ValueError(f"{where}: answer {answer!r} but only {len(choices)} choices")
        items.append(
            EvalItem(
                id=idx,
                prompt=_text(row, "prompt", where),
                reference=reference,
                group=task,
                images=functools.partial(_row_pictures, pictures, index, columns, where, folder),
                meta={"task": task, "choices": choices},
            )
        )
    return items


def load_blink_items(source: BlinkSource, tasks: Sequence[str], limit: int | None = None) -> list[EvalItem]:
    """Items of every task in `tasks` (`limit`: the first N rows of EACH task), in task order."""
    items: list[EvalItem] = []
    for task in tasks:
        items += blink_items(source.rows(task), task, source.split, str(source), limit, source.image_folder(task))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"BLINK {source} {source.split}: idx {item.id!r} appears twice; expected unique row ids")
        seen.add(item.id)
    logger.info("BLINK %s: %d item(s) in %d task(s)", source.split, len(items), len(tasks))
    return items


def score_blink(item: EvalItem, prediction: str) -> dict[str, Any]:
    """The extracted letter ("extracted", None when unparseable) and whether it is the reference (None: hidden)."""
    choices = list(item.meta.get("choices") or [])
    letter = extract_choice(prediction, len(choices), choices)
    return {"correct": None if item.reference is None else letter == item.reference, "extracted": letter}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_blink(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-task accuracy, "always (A)" baseline and unparseable counts; overall: unweighted mean over answered tasks."""
    tasks: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = tasks.setdefault(
            str(record["group"]), {"num_items": 0, "scored": 0, "correct": 0, "always_a_correct": 0, "unparseable": 0}
        )
        entry["num_items"] += 1
        entry["unparseable"] += record.get("extracted") is None
        if record.get("correct") is not None:
            entry["scored"] += 1
            entry["correct"] += bool(record["correct"])
            entry["always_a_correct"] += record.get("reference") == "A"
    for entry in tasks.values():
        scored = entry["scored"]
        entry["accuracy"] = entry["correct"] / scored if scored else None
        entry["always_a"] = entry.pop("always_a_correct") / scored if scored else None
    answered = [name for name, entry in tasks.items() if entry["accuracy"] is not None]
    metrics = {
        "accuracy": _mean([tasks[name]["accuracy"] for name in answered]),
        "always_a_accuracy": _mean([tasks[name]["always_a"] for name in answered]),
        "num_tasks": len(tasks),
        "num_tasks_scored": len(answered),
        "unparseable": sum(entry["unparseable"] for entry in tasks.values()),
        "hidden_answer_tasks": sorted(name for name in tasks if name not in answered),
    }
    return {"primary_metric": "accuracy", "metrics": metrics, "tasks": dict(sorted(tasks.items()))}


def _percent(value: Any) -> str:
    return f"{100 * value:6.1f}" if isinstance(value, (int, float)) and not math.isnan(value) else "     -"


def format_blink_summary(summary: Mapping[str, Any]) -> str:
    """A small text table of one run: per task n, accuracy, always-(A), unparseable; then the mean."""
    lines = [f"BLINK {summary['split']} — {summary['model']['label']}"]
    lines.append(f"{'task':<28}{'n':>5}{'acc %':>8}{'(A) %':>8}{'unparsed':>10}")
    for name, entry in summary["tasks"].items():
        lines.append(
            f"{name:<28}{entry['num_items']:>5}  {_percent(entry['accuracy'])}  {_percent(entry['always_a'])}"
            f"{entry['unparseable']:>10}"
        )
    metrics = summary["metrics"]
    label = f"mean over {metrics['num_tasks_scored']} task(s)"
    accuracy, always_a = _percent(metrics["accuracy"]), _percent(metrics["always_a_accuracy"])
    lines.append(f"{label:<33}  {accuracy}  {always_a}{metrics['unparseable']:>10}")
    if metrics["hidden_answer_tasks"]:
        lines.append(f"hidden answers (no accuracy; predictions saved): {', '.join(metrics['hidden_answer_tasks'])}")
    return "\n".join(lines)
