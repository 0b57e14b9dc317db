"""Datasets that turn raw records into TheWorld's normalized examples (the input of `TheWorldCollator`).

Two record formats are accepted:

* question/answer: `{"image": path | bytes | PIL | array | None, "text": question, "label": answer}`;
* conversation: `{"image": ..., "conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}, ...]}`
  (roles "human"/"user" and "gpt"/"assistant"/"model"; `{"role", "content"}` items work too).

[Contract] an example is `{"image": RGB PIL image or None, "messages": [{"role": "user" | "assistant", "content": str},
...]}`: turns alternate, starting with a user turn, and at least one assistant turn exists. LLaVA-style `<image>`
markers are removed from the text: the collator places the picture before the text of the first user turn. Every
turn's text is non-empty, except (with `allow_empty_prompt`) the first user turn of an example that has a picture:
a captioning example is "picture → caption". Extra record keys (ids, metadata) are ignored. A bad record raises a
one-line `BadRecord` (a `ValueError`) naming its index and field, with a skip reason for the robust loaders.

`HFDatasetWrapper` (map-style) and `HFIterableWrapper` (streaming) read Hugging Face `datasets` rows through
configurable column names; with a `SkipLog` they skip bad rows (counted by reason) instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
from PIL import Image
from torch.utils.data import Dataset, IterableDataset

from theworld.data.hf_source import decode_image_value
from theworld.data.image_inputs import load_image
from theworld.data.robust import SkippingDataset
from theworld.data.skips import (
    BAD_FIELD,
    CORRUPT_IMAGE,
    EMPTY_CONVERSATION,
    IMAGE_TOO_LARGE,
    MISSING_IMAGE,
    BadRecord,
    SkipLog,
)

Example = dict[str, Any]

_USER_ROLES = frozenset({"human", "user"})
_ASSISTANT_ROLES = frozenset({"gpt", "assistant", "model"})
_IMAGE_MARKER = "<image>"


def _text(value: Any, index: int, field: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BadRecord(BAD_FIELD, f"record {index}: field '{field}' must be a string, got {type(value).__name__}")
    text = value.replace(_IMAGE_MARKER, "").strip()
    if not text and not allow_empty:
        raise BadRecord(EMPTY_CONVERSATION, f"record {index}: field '{field}' is empty")
    return text


def _messages_from_conversation(
    conversation: Any, index: int, field: str, allow_empty_prompt: bool
) -> list[dict[str, str]]:
    if not isinstance(conversation, Sequence) or isinstance(conversation, str):
        raise BadRecord(BAD_FIELD, f"record {index}: field '{field}' must be a non-empty list of turns")
    if not conversation:
        raise BadRecord(EMPTY_CONVERSATION, f"record {index}: field '{field}' must be a non-empty list of turns")
    messages: list[dict[str, str]] = []
    for turn_index, turn in enumerate(conversation):
        where = f"{field}[{turn_index}]"
        if not isinstance(turn, Mapping):
            raise BadRecord(BAD_FIELD, f"record {index}: field '{where}' must be a dict, got {type(turn).__name__}")
        role_key, value_key = ("from", "value") if "from" in turn else ("role", "content")
        role = turn.get(role_key)
        if role in _USER_ROLES:
            role = "user"
        elif role in _ASSISTANT_ROLES:
            role = "assistant"
        else:
            raise BadRecord(
                BAD_FIELD,
                f"record {index}: field '{where}.{role_key}' must be one of "
                f"{sorted(_USER_ROLES | _ASSISTANT_ROLES)}, got {role!r}",
            )
        expected = "user" if turn_index % 2 == 0 else "assistant"
        if role != expected:
            raise BadRecord(
                BAD_FIELD,
                f"record {index}: field '{where}.{role_key}' is {role!r}; turns must alternate user/assistant, "
                "starting with the user",
            )
        allow_empty = allow_empty_prompt and turn_index == 0  # the picture is the whole prompt
        messages.append(
            {"role": role, "content": _text(turn.get(value_key), index, f"{where}.{value_key}", allow_empty)}
        )
    if len(messages) < 2:
        raise BadRecord(EMPTY_CONVERSATION, f"record {index}: field '{field}' has no assistant turn to train on")
    return messages


def _record_image(raw_image: Any, index: int, image_key: str) -> Image.Image | None:
    """The record's picture as RGB, or None; a picture that cannot be read is a `BadRecord` with its reason."""
    if raw_image is None:
        return None
    what = f"record {index}: field '{image_key}'"
    if isinstance(raw_image, (str, Path)) and not Path(raw_image).is_file():
        raise BadRecord(MISSING_IMAGE, f"{what}: no such image file: {raw_image}")
    try:
        return load_image(raw_image, what=what)
    except Image.DecompressionBombError as error:  # not a ValueError: PIL refuses to decode it at all
        raise BadRecord(IMAGE_TOO_LARGE, f"{what}: {error}") from None
    except ValueError as error:
        raise BadRecord(CORRUPT_IMAGE, str(error)) from None


def normalize_record(
    record: Mapping[str, Any],
    index: int,
    image_key: str = "image",
    text_key: str = "text",
    label_key: str = "label",
    conversations_key: str = "conversations",
    *,
    allow_empty_prompt: bool = False,
) -> Example:
    """One raw record → `{"image": RGB PIL or None, "messages": [...]}` (see the module docstring).

    `allow_empty_prompt`: the first user turn may be empty (after removing `<image>`) when the record has a picture.
    Raises `BadRecord` (a one-line `ValueError`) with a skip reason for a record that cannot be served.
    """
    if not isinstance(record, Mapping):
        raise BadRecord(BAD_FIELD, f"record {index}: expected a dict, got {type(record).__name__}")
    image = _record_image(record.get(image_key), index, image_key)
    empty_prompt_ok = allow_empty_prompt and image is not None
    if record.get(conversations_key) is not None:
        messages = _messages_from_conversation(record[conversations_key], index, conversations_key, empty_prompt_ok)
    else:
        for key in (text_key, label_key):
            if key not in record:
                raise BadRecord(
                    BAD_FIELD,
                    f"record {index}: missing field '{key}' (expected '{text_key}' + '{label_key}' or "
                    f"'{conversations_key}')",
                )
        messages = [
            {"role": "user", "content": _text(record[text_key], index, text_key, empty_prompt_ok)},
            {"role": "assistant", "content": _text(record[label_key], index, label_key)},
        ]
    return {"image": image, "messages": messages}


class TheWorldDataset(Dataset[Example]):
    """A list of raw records (question/answer or conversation dicts), normalized lazily on access."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Example:
        return normalize_record(self.records[index], index)

    def __iter__(self) -> Iterator[Example]:
        return (self[i] for i in range(len(self)))


class _RowColumns:
    """Column names + image folder of a Hugging Face dataset, and the row → example step both wrappers share."""

    def _init_columns(
        self,
        image_key: str,
        text_key: str,
        label_key: str,
        conversations_key: str,
        image_folder: str | Path | None,
        allow_empty_prompt: bool,
    ) -> None:
        self.image_key = image_key
        self.text_key = text_key
        self.label_key = label_key
        self.conversations_key = conversations_key
        self.image_folder = Path(image_folder) if image_folder is not None else None
        if self.image_folder is not None and not self.image_folder.is_dir():
            raise FileNotFoundError(f"image_folder={str(self.image_folder)!r}: no such directory")
        self.allow_empty_prompt = allow_empty_prompt

    def _undecoded(self, hf_dataset: Any) -> Any:
        """`hf_dataset` with its `datasets.Image` column left undecoded: the picture is decoded in `_example`, where a
        corrupt or oversized one becomes a counted skip instead of an exception inside `datasets`."""
        features = getattr(hf_dataset, "features", None)
        feature = features.get(self.image_key) if features is not None else None
        if isinstance(feature, datasets.Image) and feature.decode:
            return hf_dataset.cast_column(self.image_key, datasets.Image(decode=False))
        return hf_dataset

    def _example(self, row: Any, index: int) -> Example:
        if not isinstance(row, Mapping):
            raise BadRecord(BAD_FIELD, f"record {index}: expected a dict, got {type(row).__name__}")
        where = f"record {index}: field '{self.image_key}'"
        image = decode_image_value(row.get(self.image_key), where, self.image_folder)
        return normalize_record(
            {**row, self.image_key: image},
            index,
            image_key=self.image_key,
            text_key=self.text_key,
            label_key=self.label_key,
            conversations_key=self.conversations_key,
            allow_empty_prompt=self.allow_empty_prompt,
        )


class HFDatasetWrapper(SkippingDataset, _RowColumns):
    """A Hugging Face `datasets.Dataset` read through configurable column names, normalized lazily on access.

    A row with a non-empty `conversations_key` column is read as a conversation; otherwise `text_key` is the question
    and `label_key` the answer. Pictures may be `datasets.Image` values, bytes, or paths (relative ones are read under
    `image_folder`). With a `skip_log`, a bad row is skipped and counted by reason (`SkippingDataset`); without one,
    it raises its one-line `BadRecord` — the right behaviour for a small hand-made dataset, where a bad row is a bug.
    """

    def __init__(
        self,
        hf_dataset: Any,
        image_key: str = "image",
        text_key: str = "text",
        label_key: str = "label",
        conversations_key: str = "conversations",
        image_folder: str | Path | None = None,
        skip_log: SkipLog | None = None,
        allow_empty_prompt: bool = False,
    ) -> None:
        super().__init__(skip_log if skip_log is not None else SkipLog("hf dataset"))
        self.strict = skip_log is None
        self._init_columns(image_key, text_key, label_key, conversations_key, image_folder, allow_empty_prompt)
        self.hf_dataset = self._undecoded(hf_dataset)

    def __len__(self) -> int:
        return len(self.hf_dataset)

    def load_example(self, index: int) -> Example:
        return self._example(self.hf_dataset[index], index)

    def describe(self, index: int) -> str:
        return f"row {index}"

    def __getitem__(self, index: int) -> Example:
        if self.strict:
            return self.load_example(int(index))
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[Example]:
        return (self[i] for i in range(len(self)))


class HFIterableWrapper(IterableDataset[Example], _RowColumns):
    """A streamed Hugging Face dataset (`datasets.IterableDataset` or any iterable of rows), normalized on the fly.

    Bad rows are skipped and counted in `skip_log`; `max_bad_in_a_row` bad rows in a row raise one line (the data
    or `image_folder` is wrong, not one row). In DataLoader workers a `datasets.IterableDataset` shards itself;
    row numbers in skip messages then count within the worker's shard.
    """

    def __init__(
        self,
        hf_iterable: Iterable[Any],
        image_key: str = "image",
        text_key: str = "text",
        label_key: str = "label",
        conversations_key: str = "conversations",
        image_folder: str | Path | None = None,
        skip_log: SkipLog | None = None,
        allow_empty_prompt: bool = False,
        max_bad_in_a_row: int = SkippingDataset.max_tries,
    ) -> None:
        self.skip_log = skip_log if skip_log is not None else SkipLog("hf stream")
        self._init_columns(image_key, text_key, label_key, conversations_key, image_folder, allow_empty_prompt)
        self.rows: Iterable[Any] = self._undecoded(hf_iterable)
        self.max_bad_in_a_row = max_bad_in_a_row

    def __iter__(self) -> Iterator[Example]:
        bad_in_a_row = 0
        for index, row in enumerate(self.rows):
            try:
                example = self._example(row, index)
            except BadRecord as error:
                self.skip_log.skip(error.reason, f"row {index}", str(error))
                bad_in_a_row += 1
                if bad_in_a_row >= self.max_bad_in_a_row:
                    raise RuntimeError(
                        f"{self.skip_log.name}: {bad_in_a_row} rows in a row up to row {index} cannot be served "
                        f"({self.skip_log.summary()}); check the dataset columns and image_folder"
                    ) from None
                continue
            bad_in_a_row = 0
            yield example
