"""Reading records through the Hugging Face `datasets` library: any Hub or local dataset, and local JSON files.

* `load_hf_records(dataset_id, split)`: a Hub id, a local dataset directory (data files, read with `load_dataset`) or
  a `save_to_disk` directory, as an Arrow-cached `datasets.Dataset` or (streaming) an `IterableDataset`. An unknown
  split, an unreachable id or a missing directory is a one-line error; "dev" and "validation" name the same split.
* `load_json_file(path, features)`: a JSON array or JSON Lines file read with `load_dataset("json")` under explicit
  `Features` (Arrow-cached and memory-mapped by `datasets`). Columns the file has beyond `features` are kept as
  `datasets.Json` (any value), so unexpected extra fields never break the cast; a truncated or corrupt file is a
  one-line `ValueError` naming it, never a pyarrow traceback.
* `decode_image_value(value, where, image_folder)`: an image column value (decoded or undecoded `datasets.Image`,
  bytes, a path) → RGB picture, or a `BadImage` with its skip reason.

[Contract] the loaders built on these read every type-checked field of a record as `datasets.Json` (any JSON value
loads) and check its type per record, so one odd value is one counted skip, never a failed Arrow type inference.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import datasets
from datasets.exceptions import DatasetGenerationError
from datasets.table import CastError
from PIL import Image

from theworld.data.image_files import DEFAULT_MAX_SIDE, BadImage, open_image_bytes, open_image_file
from theworld.data.image_inputs import to_rgb
from theworld.data.skips import BAD_FIELD, BadRecord
from theworld.errors import single_line

logger = logging.getLogger(__name__)

# Dataset authors name the held-out split either way (VSR's files say "dev"; `load_dataset` calls them "validation").
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "dev": ("dev", "validation", "val"),
    "validation": ("validation", "dev", "val"),
    "val": ("val", "validation", "dev"),
}
_SAVED_MARKERS = ("state.json", "dataset_dict.json")  # what `save_to_disk` writes beside the Arrow files
_MAX_EXTRA_COLUMN_ROUNDS = 8  # each round of `load_json_file` learns the extra columns of one more chunk


def split_candidates(split: str) -> tuple[str, ...]:
    """`split` and the names that mean the same split, in the order they are tried."""
    return SPLIT_ALIASES.get(split, (split,))


def _pick_split(available: list[str], split: str, dataset_id: str) -> str:
    for candidate in split_candidates(split):
        if candidate in available:
            return candidate
    raise ValueError(f"dataset {dataset_id!r} has no split {split!r}; available splits: {', '.join(available)}")


def load_hf_records(
    dataset_id: str | os.PathLike[str],
    split: str,
    streaming: bool = False,
    num_samples: int | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """The rows of `split` of a Hub dataset, a local dataset directory, or a `save_to_disk` directory.

    `num_samples` keeps the first rows only (a streamed dataset takes them lazily). Errors are one line: an unknown
    split lists the available ones; an unreachable id says whether it was offline or not found.
    """
    source = str(dataset_id)
    if num_samples is not None and num_samples <= 0:
        raise ValueError(f"num_samples must be positive or None, got {num_samples}")
    local = Path(source)
    if local.is_dir() and any((local / marker).is_file() for marker in _SAVED_MARKERS):
        records = _load_saved(local, split, streaming)
    else:
        records = _load_with_builder(source, split, streaming, cache_dir)
    if num_samples is None:
        return records
    if isinstance(records, datasets.IterableDataset):
        return records.take(num_samples)
    return records.select(range(min(num_samples, len(records))))


def _load_saved(folder: Path, split: str, streaming: bool) -> datasets.Dataset | datasets.IterableDataset:
    saved = datasets.load_from_disk(str(folder))
    if isinstance(saved, datasets.DatasetDict):
        dataset = saved[_pick_split([str(name) for name in saved], split, str(folder))]
    else:  # one saved Dataset: it is the split it was saved as ("train" when it never had a name)
        _pick_split([str(saved.split) if saved.split is not None else "train"], split, str(folder))
        dataset = saved
    return dataset.to_iterable_dataset() if streaming else dataset


def _load_with_builder(
    source: str, split: str, streaming: bool, cache_dir: str | None
) -> datasets.Dataset | datasets.IterableDataset:
    try:
        available = [str(name) for name in datasets.get_dataset_split_names(source)]
        chosen = _pick_split(available, split, source)
        records = datasets.load_dataset(source, split=chosen, streaming=streaming, cache_dir=cache_dir)
    except ConnectionError as error:
        raise ConnectionError(
            f"dataset {source!r}: cannot reach the Hugging Face Hub (offline, or no network: {single_line(error)}); "
            "pass a local dataset directory instead"
        ) from None
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"dataset {source!r}: not found (neither a local dataset directory nor a Hub dataset): {single_line(error)}"
        ) from None
    except DatasetGenerationError as error:
        cause = error.__cause__ or error
        raise ValueError(f"dataset {source!r}: cannot read its files: {single_line(cause)}") from None
    if not isinstance(records, (datasets.Dataset, datasets.IterableDataset)):
        raise ValueError(f"dataset {source!r}: split {chosen!r} did not load as one dataset")
    return records


def load_json_file(
    path: str | os.PathLike[str], features: datasets.Features, cache_dir: str | None = None
) -> datasets.Dataset:
    """A JSON array or JSON Lines file → an Arrow-cached `datasets.Dataset` with at least the columns of `features`.

    A column missing from the file is all None; a column the file has beyond `features` is added as
    `datasets.Json` and the file read again (a few rounds at most: one per 10 MB chunk with new columns).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file")
    wanted = datasets.Features(dict(features))
    for _ in range(_MAX_EXTRA_COLUMN_ROUNDS):
        try:
            loaded = datasets.load_dataset(
                "json", data_files=str(file), split="train", features=wanted, cache_dir=cache_dir
            )
        except DatasetGenerationError as error:
            cause = error.__cause__
            extra = [name for name in getattr(cause, "table_column_names", ()) if name not in wanted]
            if isinstance(cause, CastError) and extra:
                logger.debug("%s: extra columns %s are kept as JSON values", file, extra)
                wanted.update({name: datasets.Json() for name in extra})
                continue
            kind = "a JSON array" if _starts_with_bracket(file) else "JSON Lines (one object per line)"
            raise ValueError(
                f"{file}: cannot read it as {kind}: {single_line(cause or error)}; the file looks truncated or "
                "corrupt, download it again"
            ) from None
        assert isinstance(loaded, datasets.Dataset)
        return loaded
    raise ValueError(f"{file}: its records keep adding new fields; expected the fields {sorted(features)}")


def _starts_with_bracket(file: Path) -> bool:
    with file.open("rb") as handle:
        return handle.read(64).lstrip().startswith(b"[")


def decode_image_value(
    value: Any, where: str, image_folder: Path | None = None, max_side: int = DEFAULT_MAX_SIDE
) -> Image.Image | None:
    """An image column value → RGB picture (None when the row has none); `BadRecord`/`BadImage` otherwise.

    Accepted: an undecoded `datasets.Image` value `{"bytes", "path"}`, a decoded PIL image, encoded bytes, or a path
    (a relative one is read under `image_folder`). `where` names the row and column in error messages.
    """
    if isinstance(value, dict):  # undecoded datasets.Image: bytes when embedded, else a path
        data, path = value.get("bytes"), value.get("path")
        value = data if data is not None else path  # empty bytes are a broken picture, not "no picture"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Image.Image):
        image = to_rgb(value)
        if max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return image
    if isinstance(value, (bytes, bytearray)):
        return open_image_bytes(bytes(value), where, max_side)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if image_folder is not None and not path.is_absolute():
            path = image_folder / path
        try:
            return open_image_file(path, max_side=max_side)
        except BadImage as error:
            raise BadImage(error.reason, f"{where}: {error}") from None
    raise BadRecord(
        BAD_FIELD, f"{where}: expected a picture (datasets.Image, bytes or a path), got {type(value).__name__}"
    )
