"""OpenSpatialDataset (Spatial-RGPT, `a8cheng/OpenSpatialDataset`): the 32 GB JSON → an Arrow cache → examples.

`ingest_openspatial` streams the JSON array with ijson's C backend, drops the `rle` masks (most of the 32 GB) and
writes the usable records to an on-disk Arrow dataset with `datasets.Dataset.from_generator`: memory stays flat, and
later starts only memory-map the cache. The cache key is the file's identity (name, size, a hash of its first and last
MiB), not its path or mtime, so the same file downloaded again into a fresh $TMPDIR still hits. Unusable records are
skipped and counted by reason in a JSON sidecar of the cache (a cache hit still reports them). `OpenSpatialDataset`
serves the records whose picture is on disk (images first; `rescan()` adds pictures downloaded meanwhile) with each
`<mask>` turned into "Region [i]" text (`theworld.data.regions`).

[Contract] cache rows: `{"index": position in the JSON array, "filename": OpenImages id (folder and extension
stripped), "conversations": [{"from", "value"}] as in the JSON, "bbox": [[x1, y1, x2, y2]], "image_size": [h, w] of
rle[0] or []}`, in JSON order. A truncated or invalid JSON raises one `ValueError` line naming the file, the
byte offset the parser reached (the file position, within 64 KiB after the fault) and the size; `datasets` then
removes the incomplete cache, so no later start takes it as complete.
[Contract] `split_eval(n)`: a picture is held out iff the 64-bit BLAKE2b hash of its id is at most the n-th smallest
hash over all usable records. That depends on the JSON alone, not on which pictures are downloaded yet, so train and
eval never share a picture across rescans and restarts; eval serves at most n records (fewer while pictures are
missing).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets.config
import ijson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Features, List, Value
from datasets.exceptions import DatasetGenerationError
from huggingface_hub import hf_hub_download
from PIL import Image
from tqdm.auto import tqdm

from theworld.data.datasets import normalize_record
from theworld.data.image_files import open_image_file
from theworld.data.image_index import image_id, scan_image_folder
from theworld.data.regions import check_boxes, count_masks, draw_bboxes, masks_to_regions, scale_boxes
from theworld.data.robust import Example, SkippingDataset
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, MISSING_IMAGE, BadRecord, SkipLog

logger = logging.getLogger(__name__)

REPO_ID = "a8cheng/OpenSpatialDataset"
JSON_FILENAME = "result_10_depth_convs.json"
FORMAT_VERSION = 1  # bump when the rows or the skip rules change: old caches are then ignored
NO_GPT_TURN = "no gpt turn"
MASK_MISMATCH = "bbox/mask mismatch"
NOT_A_DICT = "non-dict record"
MISSING_FILENAME = "missing filename"
_IDENTITY_BYTES = 1 << 20
_TURNS, _BOXES = List({"from": Value("string"), "value": Value("string")}), List(List(Value("float64")))
_ROW = {"index": Value("int64"), "filename": Value("string"), "conversations": _TURNS, "bbox": _BOXES}
FEATURES = Features({**_ROW, "image_size": List(Value("int32"))})
StrPath = str | os.PathLike[str]
parse_count = 0  # JSON parses started in this process (a cache hit leaves it unchanged)
Holdout = tuple[Literal["train", "eval"], int]


class OpenSpatialJSONError(ValueError):
    """A JSON file that is not a usable OpenSpatialDataset array (truncated, invalid, no usable record)."""


def fetch_openspatial_json(
    download_dir: StrPath,
    repo_id: str = REPO_ID,
    filename: str = JSON_FILENAME,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """`download_dir/filename`, downloaded from the Hub dataset `repo_id` unless already there (resumes a partial one;
    `endpoint` is a Hub mirror, default $HF_ENDPOINT)."""
    target = Path(download_dir) / filename
    if target.is_file():  # hf_hub_download moves the file into place only once complete
        return target
    options: dict[str, Any] = {"repo_type": "dataset", "local_dir": str(download_dir), "endpoint": endpoint}
    try:
        return Path(hf_hub_download(repo_id, filename, token=token, **options))
    except Exception as error:  # offline, 404, 401, network: all mean "get the file another way"
        # hf_hub_download wraps the telling error (offline mode, "404 Not Found") in a generic LocalEntryNotFoundError.
        cause: BaseException = error.__cause__ or error.__context__ or error
        reason = (str(cause).strip().splitlines() or [""])[0]
        raise FileNotFoundError(
            f"cannot download {filename} from the Hub dataset {repo_id} ({type(cause).__name__}: {reason}); "
            "download it yourself and set train_dataset_path to the file"
        ) from None


def json_identity(path: StrPath) -> str:
    """The cache key of a JSON file: format version, name, size and a BLAKE2b hash of its first and last MiB."""
    file, size = Path(path), os.path.getsize(path)
    with file.open("rb") as handle:
        head = handle.read(_IDENTITY_BYTES)
        handle.seek(max(0, size - _IDENTITY_BYTES))
        tail = handle.read(_IDENTITY_BYTES)
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start != b"[":
        found = repr(start.decode("latin-1")) if start else "an empty file"
        raise OpenSpatialJSONError(f"{file}: expected a JSON array of records starting with '[', found {found}")
    digest = hashlib.blake2b(head + tail, digest_size=12).hexdigest()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", file.name)
    return f"openspatial-v{FORMAT_VERSION}-{name}-{size}-{digest}"


def _row(record: Any, position: int) -> tuple[dict[str, Any] | None, str]:
    """A cache row of one JSON record, or (None, skip reason)."""
    if not isinstance(record, Mapping):
        return None, NOT_A_DICT
    filename = record.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        return None, MISSING_FILENAME
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return None, EMPTY_CONVERSATION if not turns else BAD_FIELD  # missing or [] vs. a string, a dict, ...
    if not all(isinstance(t, Mapping) and all(isinstance(t.get(k), str) for k in ("from", "value")) for t in turns):
        return None, BAD_FIELD
    if not any(turn["from"] in ("gpt", "assistant") for turn in turns):
        return None, NO_GPT_TURN
    try:
        boxes = check_boxes(record.get("bbox", []), 0)
    except BadRecord:
        return None, BAD_FIELD
    if count_masks(turns) > len(boxes):
        return None, MASK_MISMATCH
    rle = record.get("rle")
    size = rle[0].get("size") if isinstance(rle, list) and rle and isinstance(rle[0], Mapping) else None
    valid_size = isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    return {
        "index": position,
        "filename": image_id(filename.strip()),
        "conversations": [{"from": turn["from"], "value": turn["value"]} for turn in turns],
        "bbox": boxes,
        "image_size": size if valid_size else [],
    }, ""


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counts.most_common())


def _items(handle: Any) -> Iterator[Any]:
    try:
        return ijson.get_backend("yajl2_c").items(handle, "item", use_float=True)
    except ImportError:  # ijson without its C extension: ~10x slower but correct
        logger.warning("ijson's yajl2_c backend is unavailable; parsing with the %s backend", ijson.backend_name)
        return ijson.items(handle, "item", use_float=True)


def _generate_rows(json_path: str, stats_path: str) -> Iterator[dict[str, Any]]:
    """Stream the usable rows of `json_path` (the `from_generator` generator; module-level so `datasets` can pickle
    it). At the end it writes the record count and the skip counts to `stats_path`."""
    global parse_count
    parse_count += 1
    size = os.path.getsize(json_path)
    counts: Counter[str] = Counter()
    total = 0
    start = time.perf_counter()
    with open(json_path, "rb") as handle, tqdm(total=size, unit="B", unit_scale=True, desc="Parsing JSON") as bar:
        try:
            for position, record in enumerate(_items(handle)):
                total += 1
                row, reason = _row(record, position)
                if row is None:
                    counts[reason] += 1
                else:
                    yield row
                if not position % 8192:
                    bar.update(handle.tell() - bar.n)
        except (ijson.JSONError, UnicodeDecodeError) as error:
            reason = (str(error).strip().splitlines() or ["invalid JSON"])[0]
            raise OpenSpatialJSONError(
                f"{json_path}: invalid JSON, parsing stopped at byte {handle.tell()} of {size} ({reason}); the file "
                "is truncated or corrupt — download it again"
            ) from None
        bar.update(size - bar.n)
    if total == sum(counts.values()):
        raise OpenSpatialJSONError(f"{json_path}: none of its {total} records is usable (skipped: {_reasons(counts)})")
    elapsed = time.perf_counter() - start
    logger.info("parsed %d records of %s in %.1f s (%.0f records/s)", total, json_path, elapsed, total / elapsed)
    Path(f"{stats_path}.tmp").write_text(json.dumps({"records": total, "skipped": dict(counts)}), encoding="utf-8")
    os.replace(f"{stats_path}.tmp", stats_path)  # atomic: a reader never sees half a sidecar


@dataclass
class IngestStats:
    """What the ingest of one JSON file found (`records` is None when a cache hit lost its sidecar)."""

    json_path: Path
    cache_key: str
    records: int | None
    usable: int
    skipped: Counter[str] = field(default_factory=Counter)
    cache_hit: bool = False


def ingest_openspatial(json_path: StrPath, cache_dir: StrPath | None = None) -> tuple[datasets.Dataset, IngestStats]:
    """The usable records of `json_path` as a memory-mapped Arrow dataset (see the module docstring) and the stats."""
    path = Path(json_path)
    if not path.is_file():
        raise FileNotFoundError(f"train_dataset_path {path} does not exist (expected {JSON_FILENAME})")
    key = json_identity(path)
    cache = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE) / "theworld"
    cache.mkdir(parents=True, exist_ok=True)
    stats_file = cache / f"{key}.stats.json"
    parses = parse_count
    try:
        kwargs = {"json_path": str(path), "stats_path": str(stats_file)}
        rows = datasets.Dataset.from_generator(_generate_rows, FEATURES, str(cache), gen_kwargs=kwargs, fingerprint=key)
    except DatasetGenerationError as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, OpenSpatialJSONError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # our own one-line error, wrapped by datasets
            raise OpenSpatialJSONError(str(cause)) from None
        raise
    stats = IngestStats(path, key, None, len(rows), cache_hit=parse_count == parses)
    if stats_file.is_file():
        saved = json.loads(stats_file.read_text(encoding="utf-8"))
        stats.records, stats.skipped = int(saved["records"]), Counter(saved["skipped"])
    logger.info("OpenSpatial cache %s: %d usable records", "hit" if stats.cache_hit else "written", len(rows))
    return rows, stats


class OpenSpatialDataset(SkippingDataset):
    """The records whose picture is in `image_folder`: `num_samples` keeps the first N (by JSON position),
    `draw_bboxes` outlines and numbers the regions, `holdout=("train" | "eval", n)` is one side of `split_eval(n)`.
    Pictures that fail at access time (truncated, corrupt, huge) are skipped and counted by `SkippingDataset`."""

    def __init__(
        self,
        json_path: StrPath,
        image_folder: StrPath,
        cache_dir: StrPath | None = None,
        num_samples: int | None = None,
        draw_bboxes: bool = False,
        skip_log: SkipLog | StrPath | None = None,
        holdout: Holdout | None = None,
    ) -> None:
        if num_samples is not None and num_samples <= 0:
            raise ValueError(f"num_samples must be positive or None, got {num_samples}")
        if holdout is not None and (holdout[0] not in ("train", "eval") or holdout[1] <= 0):
            raise ValueError(f"holdout must be ('train' | 'eval', positive count), got {holdout!r}")
        super().__init__(skip_log if isinstance(skip_log, SkipLog) else SkipLog("openspatial", skip_log))
        self.image_folder = Path(image_folder)
        if not self.image_folder.is_dir():  # before the (long) ingest
            raise FileNotFoundError(f"image_folder {self.image_folder} does not exist or is not a folder")
        self.num_samples, self.draw_bboxes, self.holdout = num_samples, draw_bboxes, holdout
        self.records, self.stats = ingest_openspatial(json_path, cache_dir)
        self._names = self.records.data.column("filename")
        self._hashes: np.ndarray | None = None
        self.images: dict[str, str] = {}
        self.rows, self.missing_images = self.records.select([]), 0
        self.rescan()
        if not len(self) and holdout is None:
            raise ValueError(
                f"image_folder {self.image_folder}: no picture of the {len(self.records)} usable records of "
                f"{self.stats.json_path.name} is there yet (expected <id>.jpg files, e.g. {self._names[0]}.jpg)"
            )

    def __len__(self) -> int:
        return len(self.rows)

    def rescan(self) -> int:
        """Re-scan `image_folder` and serve the records whose picture appeared; returns the change in length."""
        return self.set_images(scan_image_folder(self.image_folder))

    def set_images(self, images: dict[str, str]) -> int:
        """Serve the records whose id is in `images` ({id: path in image_folder}, e.g. rank 0's scan under DDP), found
        with one Arrow column scan (never a Python list of records); returns the change in length."""
        self.images, before = images, len(self.rows)
        lookup = pc.SetLookupOptions(value_set=pa.array(list(self.images), pa.string()))
        present = pc.call_function("is_in", [self._names], lookup)
        keep = np.asarray(present.to_numpy(zero_copy_only=False), dtype=bool)
        self.missing_images = int((~keep).sum())
        if self.holdout is not None:
            role, count = self.holdout
            if self._hashes is None:  # 64-bit BLAKE2b of each id: stable across processes, unlike hash()
                digests = (hashlib.blake2b(n.encode(), digest_size=8).digest() for n in self._names.to_pylist())
                self._hashes = np.fromiter((int.from_bytes(d, "little") for d in digests), np.uint64, len(self._names))
            hashes, nth = self._hashes, min(count, len(self._hashes)) - 1
            held = hashes <= np.partition(hashes, nth)[nth]  # whole pictures: all records of an id share its hash
            keep &= held if role == "eval" else ~held
            if role == "eval" and keep.sum() > count:  # the boundary picture's extra records: (hash, index) order
                order = np.lexsort((np.arange(len(hashes)), hashes))
                keep[order[np.cumsum(keep[order]) > count]] = False
        indices = np.flatnonzero(keep)
        if self.num_samples is not None:
            indices = indices[: self.num_samples]
        self.rows = self.records.select(indices)
        self._bad = set()  # indices now point at other records
        return len(self.rows) - before

    def split_eval(self, num_eval: int) -> tuple[OpenSpatialDataset, OpenSpatialDataset]:
        """(train, eval) views of the same cache with no picture in both (see the module docstring)."""
        if num_eval <= 0:
            raise ValueError(f"num_eval must be positive, got {num_eval}")
        train, held = copy.copy(self), copy.copy(self)
        train.holdout, held.holdout, held.num_samples = ("train", num_eval), ("eval", num_eval), None
        held.skip_log = SkipLog(f"{self.skip_log.name} eval", self.skip_log.path)  # eval skips are counted apart
        for view in (train, held):
            view.set_images(self.images)
        return train, held

    def describe(self, index: int) -> str:
        return "record {index} (image {filename})".format(**self.rows[index])

    def load_example(self, index: int) -> Example:
        row = self.rows[index]
        path = self.image_folder / self.images.get(row["filename"], f"{row['filename']}.jpg")
        image = open_image_file(path)  # BadImage: deleted since the scan, corrupt, truncated, too large
        conversations, boxes = masks_to_regions(row["conversations"], row["bbox"])
        if self.draw_bboxes and boxes:
            if len(row["image_size"]) == 2:  # the annotated picture's size (rle[0].size)
                annotated = (row["image_size"][1], row["image_size"][0])
            else:  # boxes are in the pixels of the file as stored (open_image_file may have downscaled it)
                with Image.open(path) as header:
                    annotated = header.size
            scaled = scale_boxes(boxes, annotated, image.size)
            image = draw_bboxes(image, scaled, [f"Region [{k}]" for k in range(len(boxes))])
        try:
            example = normalize_record({"conversations": conversations}, row["index"])
        except ValueError as error:
            raise BadRecord(EMPTY_CONVERSATION if "empty" in str(error) else BAD_FIELD, str(error)) from None
        example["image"] = image
        return example

    def ingest_report(self) -> str:
        """One line: records in the JSON, usable, with a picture, served, skip reasons, cache hit or not."""
        stats, missing = self.stats, self.missing_images
        skipped = _reasons(stats.skipped) or "none"
        return (
            f"{self.skip_log.name} {stats.json_path.name}: {'?' if stats.records is None else stats.records} records "
            f"in JSON, {stats.usable} usable (skipped at ingest: {skipped}), {stats.usable - missing} with a picture "
            f"({MISSING_IMAGE} {missing}), serving {len(self)}; cache {'hit' if stats.cache_hit else 'written'} "
            f"({stats.cache_key})"
        )
