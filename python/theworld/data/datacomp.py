"""DataComp (`mlfoundations/datacomp_small`): caption examples streamed from parquet metadata and image URLs.

DataComp ships metadata only — `uid`, `url`, `text` (the caption), `sha256` of the picture's bytes, sizes, CLIP
scores, face boxes — and every picture must be fetched from the web, where many URLs are dead, slow, or answer with
a web page. `DataCompDataset` is a torch `IterableDataset` that reads the metadata with
`datasets.load_dataset(..., streaming=True)`, fetches pictures on a small thread pool (`http_fetch.map_unordered`:
bounded in flight, so a dead URL's timeout does not stall the stream), verifies sha256, decodes defensively
(`open_image_bytes`: HTML, truncated, CMYK, 16-bit, oversized, decompression bombs), and yields examples.
`materialize_datacomp` fetches N good examples up front into a map-style dataset (small test configs).

[Contract] an example is `{"image": RGB PIL, "messages": [{"role": "user", "content": prompt},
{"role": "assistant", "content": caption}]}`. A row that cannot be served (empty caption, failed fetch, sha256
mismatch, undecodable picture) is counted in `skip_log` with its reason, on every pass, and never raised — unless
`max_consecutive_failures` rows in a row fail, which means no network, not bad rows. Rows are split by
(rank, world_size) and by DataLoader worker, so no row is served twice; order within a shard follows fetch
completion, not the file. Caveat for DDP with the HF Trainer: accelerate either dispatches batches from rank 0 or
slices one shared stream, so keep rank=0, world_size=1 there; pass them only when each process reads its own rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.utils.data
from PIL import Image
from torch.utils.data import Dataset, IterableDataset

from theworld.data.http_fetch import DEFAULT_MAX_BYTES, SHA256_MISMATCH, fetch_bytes, map_unordered, write_atomic
from theworld.data.image_files import DEFAULT_MAX_SIDE, BadImage, open_image_bytes, open_image_file
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, BadRecord, SkipLog

logger = logging.getLogger(__name__)

Example = dict[str, Any]
DEFAULT_PROMPT = "Describe this image."
HTML_PAGE = "html page, not an image"  # skip reason: the URL now serves a web page (moved or expired picture)
COLUMNS = ("uid", "url", "text", "sha256")  # what the loader reads; the other metadata columns are not decoded
_HEX = re.compile(r"[0-9a-fA-F]{8,64}")
_BATCH = 1024  # metadata rows read per Arrow batch


@dataclass(frozen=True)
class _Row:
    index: int  # position in the metadata (all files, in order)
    uid: str
    url: str
    caption: str
    sha256: str | None


def _open_metadata(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], split: str) -> Any:
    """A streaming `datasets.IterableDataset` over parquet files, a glob, a local dataset dir or a Hub dataset id."""
    from datasets import load_dataset  # a heavy import, only needed when iterating

    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        files = [text] if text.endswith(".parquet") or "*" in text else None
    else:
        text = ""
        files = [os.fspath(item) for item in source]
    if files is not None:
        missing = [f for f in files if "*" not in f and not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(f"DataComp: no such metadata file {missing[0]} (expected DataComp parquet files)")
        return load_dataset("parquet", data_files=files, split=split, streaming=True)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return load_dataset(str(folder), split=split, streaming=True)
    if text.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"DataComp: no such metadata folder {text} (expected DataComp parquet files)")
    return load_dataset(text, split=split, streaming=True)  # a Hub dataset id, e.g. mlfoundations/datacomp_small


class DataCompDataset(IterableDataset[Example]):
    """Caption examples from DataComp metadata; see the module docstring for the contract.

    `timeout`/`retries`: per request (config keys `download_timeout`, `download_retries`); `num_samples`: stop after
    that many served examples in total (split evenly over shards); `image_cache_dir`: keep fetched pictures as
    `<dir>/<uid[:2]>/<uid>` and reuse them without a request; `fetch_workers`: parallel requests per shard;
    `max_consecutive_failures`: raise when that many rows in a row fail (no network on this node, wrong source)
    rather than skip a whole dataset silently.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        split: str = "train",
        prompt: str = DEFAULT_PROMPT,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        num_samples: int | None = None,
        image_cache_dir: str | os.PathLike[str] | None = None,
        fetch_workers: int = 16,
        max_side: int = DEFAULT_MAX_SIDE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify_sha256: bool = True,
        rank: int = 0,
        world_size: int = 1,
        max_consecutive_failures: int | None = 1000,
        skip_log: SkipLog | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"DataComp: expected 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if num_samples is not None and num_samples < 0:
            raise ValueError(f"DataComp: num_samples must be >= 0 or None, got {num_samples}")
        if not prompt.strip():
            raise ValueError("DataComp: prompt must not be empty (it is the user turn of every example)")
        self.source = source
        self.split = split
        self.prompt = prompt
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.num_samples = num_samples
        self.image_cache_dir = Path(image_cache_dir) if image_cache_dir is not None else None
        self.fetch_workers = max(1, fetch_workers)
        self.max_side, self.max_bytes = max_side, max_bytes
        self.verify_sha256 = verify_sha256
        self.rank, self.world_size = rank, world_size
        self.max_consecutive_failures = max_consecutive_failures
        self.skip_log = skip_log if skip_log is not None else SkipLog("datacomp")
        self.served = 0  # examples served by this copy of the dataset (per process)

    # -- sharding ---------------------------------------------------------------------------------------------------
    def _shard(self) -> tuple[int, int]:
        """(this iterator's shard id, number of shards) over ranks x DataLoader workers."""
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def _rows(self, shard: int, shards: int) -> Iterator[_Row]:
        """This shard's rows with a caption; rows without one are skipped here, before any request."""
        metadata = _open_metadata(self.source, self.split)
        names = getattr(metadata, "column_names", None)
        if names is not None:
            missing = [c for c in ("uid", "url", "text") if c not in names]
            if missing:
                raise ValueError(
                    f"DataComp: {self.source}: missing column(s) {missing}; expected DataComp metadata with "
                    f"{list(COLUMNS)}, found {names}"
                )
            metadata = metadata.select_columns([c for c in COLUMNS if c in names])
        index = 0
        # `iter(batch_size=...)` rather than `for row in metadata`: the latter shards by file on its own inside a
        # DataLoader worker, which would combine with the row split below and drop rows.
        for batch in metadata.iter(batch_size=_BATCH):
            count = len(batch["url"])
            for offset in range(count):
                if (index + offset) % shards == shard:
                    row = self._row(index + offset, batch, offset)
                    if row is not None:
                        yield row
            index += count

    def _row(self, index: int, batch: dict[str, list[Any]], offset: int) -> _Row | None:
        uid, url, text = batch["uid"][offset], batch["url"][offset], batch["text"][offset]
        sha = batch["sha256"][offset] if "sha256" in batch else None
        where = f"row {index} (uid {uid})"
        if not isinstance(url, str) or not url.strip():
            self.skip_log.skip(BAD_FIELD, where, "field 'url' is empty or not a string")
            return None
        caption = text.replace("<image>", "").strip() if isinstance(text, str) else ""
        if not caption:
            self.skip_log.skip(EMPTY_CONVERSATION, where, "field 'text' (the caption) is empty")
            return None
        return _Row(index, str(uid), url.strip(), caption, sha if isinstance(sha, str) and sha else None)

    # -- one picture (runs on the fetch threads) --------------------------------------------------------------------
    def _cache_path(self, row: _Row) -> Path | None:
        if self.image_cache_dir is None:
            return None
        key = row.uid if _HEX.fullmatch(row.uid) else hashlib.sha256(row.url.encode()).hexdigest()
        return self.image_cache_dir / key[:2] / key

    def _picture(self, row: _Row) -> Image.Image:
        cached = self._cache_path(row)
        if cached is not None and cached.is_file():  # only verified pictures ever get this name
            return open_image_file(cached, self.max_side)
        data = fetch_bytes(row.url, self.timeout, self.retries, self.backoff, self.max_bytes)
        if self.verify_sha256 and row.sha256 and hashlib.sha256(data).hexdigest() != row.sha256.lower():
            # A moved picture often answers with a web page: say so rather than just "sha256 mismatch".
            reason = HTML_PAGE if _looks_like_html(data) else SHA256_MISMATCH
            raise BadRecord(reason, f"{row.url}: {reason} (the bytes do not match the metadata's sha256)")
        if cached is None:
            return self._decode(row.url, data)
        decoded: list[Image.Image] = []
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, data, verify=lambda path: decoded.append(self._decode(row.url, data)))
        return decoded[0]

    def _decode(self, url: str, data: bytes) -> Image.Image:
        """Decode fetched bytes defensively; a failure names the URL and its reason (a web page is called one)."""
        try:
            return open_image_bytes(data, url, self.max_side)
        except BadImage as error:
            reason = HTML_PAGE if _looks_like_html(data) else error.reason
            detail = str(error).replace(f"{url}: ", "")
            raise BadRecord(reason, f"{url}: {reason} ({detail})") from None

    def _example(self, row: _Row, image: Image.Image) -> Example:
        messages = [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": row.caption}]
        return {"image": image, "messages": messages}

    # -- the stream -------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Example]:
        shard, shards = self._shard()
        quota = None
        if self.num_samples is not None:  # split the total over the shards: together they serve num_samples
            quota = self.num_samples // shards + (1 if shard < self.num_samples % shards else 0)
            if quota == 0:
                return
        failures_in_a_row = 0
        stream = map_unordered(self._picture, self._rows(shard, shards), self.fetch_workers)
        try:
            for row, future in stream:
                try:
                    image = future.result()
                except BadRecord as error:
                    self.skip_log.skip(error.reason, f"row {row.index} ({row.url})", str(error))
                    failures_in_a_row += 1
                    limit = self.max_consecutive_failures
                    if limit is not None and failures_in_a_row >= limit:
                        raise RuntimeError(
                            f"DataComp: {failures_in_a_row} pictures in a row could not be fetched "
                            f"({self.skip_log.summary(self.served)}); check network access from this node"
                        ) from None
                    continue
                failures_in_a_row = 0
                self.served += 1
                yield self._example(row, image)
                if quota is not None:
                    quota -= 1
                    if quota == 0:
                        return
        finally:
            stream.close()  # cancel queued fetches at once; running ones end within their timeout


def _looks_like_html(data: bytes) -> bool:
    head = data[:256].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


class ExampleList(Dataset[Example]):
    """A map-style dataset over examples already in memory (from `materialize_datacomp`)."""

    def __init__(self, examples: list[Example], skip_log: SkipLog) -> None:
        self.examples = examples
        self.skip_log = skip_log

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


def materialize_datacomp(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], num_samples: int = 100, **kwargs: Any
) -> ExampleList:
    """Fetch `num_samples` good examples up front (a small, fixed set for tests and short runs).

    `kwargs` go to `DataCompDataset`. Fewer good rows than asked is a warning; none at all is a one-line error.
    """
    if num_samples < 1:
        raise ValueError(f"materialize_datacomp: num_samples must be >= 1, got {num_samples}")
    dataset = DataCompDataset(source, num_samples=num_samples, **kwargs)
    examples = list(dataset)
    summary = dataset.skip_log.summary(len(examples))
    if not examples:
        raise ValueError(f"DataComp: no picture of {source} could be served ({summary})")
    if len(examples) < num_samples:
        logger.warning("DataComp: only %d of %d examples could be served (%s)", len(examples), num_samples, summary)
    else:
        logger.info("DataComp: materialized %d examples (%s)", len(examples), summary)
    return ExampleList(examples, dataset.skip_log)
