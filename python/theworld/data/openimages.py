"""Download OpenImages pictures into a flat folder, resumably, while training reads what is already there.

`read_id_list(path)` reads the official downloader's id list (lines `<split>/<image_id>`, or bare ids of
`default_split`; blank lines and `#` comments ignored). `download_images(refs, out_dir, ...)` fetches
`<base_url>/<split>/<image_id>.jpg` on a thread pool into `<out_dir>/<image_id>.jpg` and returns a `Summary`.

[Contract] a file under its final name `<image_id>.jpg` is complete and fully decodes: each body is written to a
temp file in the same folder, fsync'ed, decoded by `open_image_file`, then renamed (`http_fetch.write_atomic`). A
killed run (SLURM time limit, SIGKILL) leaves only temp files, which the next run removes. So the training loader,
which reads `<out_dir>/<image_id>.jpg`, can run while the download goes on.

Resuming: a run skips ids whose file is present (one directory listing, names only — no per-file stat of 1.7M
files) and ids the state file (JSONL, one line per finished or failed id) records as finished. Failures are recorded
with their reason and retried by the next run. Shards (`shard_refs`) split one list among SLURM array tasks; each
task removes only its own ids' stale temp files, so tasks can share `out_dir`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from theworld.data.http_fetch import fetch_bytes, final_name_of_temp, map_unordered, write_atomic
from theworld.data.image_files import BadImage, open_image_file
from theworld.data.skips import BadRecord

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://open-images-dataset.s3.amazonaws.com"
SPLITS = ("train", "validation", "test", "challenge2018")
_ID = re.compile(r"[0-9a-fA-F]+")  # OpenImages ids are hex; this also keeps "../" out of file names
FIRST_FAILURES = 10  # how many failed ids the summary lists


class ImageRef(NamedTuple):
    """One picture to download: its split (the URL folder) and id (the file name)."""

    split: str
    image_id: str

    @property
    def file_name(self) -> str:
        return f"{self.image_id}.jpg"


def parse_ref(text: str, where: str, default_split: str = "train") -> ImageRef:
    """`"train/000a1249af2bc5f0"` or a bare id → `ImageRef`; a one-line `ValueError` naming `where` otherwise."""
    split, _, image_id = text.strip().rpartition("/")
    split = split or default_split
    if split not in SPLITS or not _ID.fullmatch(image_id):
        shown = text.strip() if len(text.strip()) <= 80 else text.strip()[:77] + "..."
        raise ValueError(
            f"{where}: expected '<split>/<image_id>' (split one of {', '.join(SPLITS)}; a hex id) or a bare id, "
            f"got {shown!r}"
        )
    return ImageRef(split, image_id)


def read_id_list(path: str | os.PathLike[str], default_split: str = "train") -> list[ImageRef]:
    """The ids of an id list file, in order, without duplicates. Raises one-line errors naming the line."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such id list (expected a text file of '<split>/<image_id>' lines)")
    refs: dict[ImageRef, None] = {}  # ordered set
    with file.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                refs.setdefault(parse_ref(text, f"{file}:{number}", default_split))
    return list(refs)


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` (0 <= i < n) → (i, n); one-line `ValueError` otherwise."""
    index, slash, count = text.partition("/")
    if slash and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count):
        return int(index), int(count)
    raise ValueError(f"--shard: expected 'i/n' with 0 <= i < n (e.g. 3/16), got {text!r}")


def shard_refs(refs: Sequence[ImageRef], index: int, count: int) -> list[ImageRef]:
    """Every `count`-th ref from `index`: the shards of one list are disjoint and cover it."""
    return list(refs[index::count])


@dataclass
class Summary:
    """What a `download_images` run did; `failures` maps image id → (reason, one-line message)."""

    requested: int = 0
    already_present: int = 0
    downloaded: int = 0
    stale_temps_removed: int = 0
    elapsed_seconds: float = 0.0
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every requested picture is now on disk."""
        return not self.failures

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for reason, _ in self.failures.values()).most_common())

    def to_dict(self) -> dict[str, Any]:
        first = list(self.failures.items())[:FIRST_FAILURES]
        return {
            "requested": self.requested,
            "already_present": self.already_present,
            "downloaded": self.downloaded,
            "failed": len(self.failures),
            "failures_by_reason": self.by_reason(),
            "first_failures": [{"id": key, "reason": reason, "message": msg} for key, (reason, msg) in first],
            "stale_temps_removed": self.stale_temps_removed,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
        }

    def format(self) -> str:
        lines = [
            f"{self.requested} requested: {self.already_present} already present, {self.downloaded} downloaded, "
            f"{len(self.failures)} failed ({self.elapsed_seconds:.0f} s)"
        ]
        if self.failures:
            lines.append("failures by reason: " + ", ".join(f"{r} {n}" for r, n in self.by_reason().items()))
            lines += [f"  {key}: {msg}" for key, (_, msg) in list(self.failures.items())[:FIRST_FAILURES]]
            lines.append("run the same command again to retry the failures")
        return "\n".join(lines)


def _read_state(path: Path) -> dict[str, str]:
    """{image id: "ok" or the failure reason} from a state file; the last line of an id wins."""
    state: dict[str, str] = {}
    if not path.is_file():
        return state
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                state[str(entry["id"])] = "ok" if entry["status"] == "ok" else str(entry.get("reason"))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # the last line of a killed run may be cut
    return state


class _StateFile:
    """Appends one JSON line per finished or failed id (flushed: a SIGKILL loses at most the line being written)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut = False
        if path.is_file() and path.stat().st_size > 0:
            with path.open("rb") as existing:
                existing.seek(-1, os.SEEK_END)
                cut = existing.read(1) != b"\n"
        self._handle = path.open("a", encoding="utf-8")
        if cut:
            self._handle.write("\n")  # start after a line cut by a killed run, not inside it

    def record(self, ref: ImageRef, reason: str | None = None) -> None:
        entry: dict[str, str] = {"id": ref.image_id, "split": ref.split, "status": "ok" if reason is None else "failed"}
        if reason is not None:
            entry["reason"] = reason
        self._handle.write(json.dumps(entry) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _scan(out_dir: Path, wanted: set[str]) -> tuple[set[str], int]:
    """(names present in `out_dir`, number of stale temp files of `wanted` names removed) — one listing pass."""
    present: set[str] = set()
    removed = 0
    with os.scandir(out_dir) as entries:
        for entry in entries:
            final = final_name_of_temp(entry.name)
            if final is None:
                present.add(entry.name)
            elif final in wanted:  # only our own ids: another shard's temps may be in use right now
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return present, removed


def download_images(
    ids: Iterable[ImageRef | str],
    out_dir: str | os.PathLike[str],
    base_url: str = DEFAULT_BASE_URL,
    workers: int = 16,
    retries: int = 3,
    timeout: float = 30.0,
    state_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    summary_file: str | os.PathLike[str] | None = None,
    backoff: float = 0.5,
) -> Summary:
    """Download every id not yet on disk into `out_dir/<image_id>.jpg`; see the module docstring.

    `ids` are `ImageRef`s or strings in the id-list format. Failures never stop the run: they are counted in the
    returned `Summary` (also written to `summary_file` as JSON) and recorded in `state_file` for the next run.
    """
    started = time.monotonic()
    refs = list(dict.fromkeys(ref if isinstance(ref, ImageRef) else parse_ref(ref, "ids") for ref in ids))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state = _read_state(Path(state_file)) if state_file is not None else {}
    present, removed = _scan(folder, {ref.file_name for ref in refs})
    todo = [ref for ref in refs if ref.file_name not in present and state.get(ref.image_id) != "ok"]
    summary = Summary(requested=len(refs), already_present=len(refs) - len(todo), stale_temps_removed=removed)
    logger.info(
        "OpenImages: %d requested, %d already present, %d to download into %s (%d stale temp files removed)",
        len(refs),
        summary.already_present,
        len(todo),
        folder,
        removed,
    )
    root = base_url.rstrip("/")

    def download(ref: ImageRef) -> None:
        url = f"{root}/{ref.split}/{ref.file_name}"
        data = fetch_bytes(url, timeout=timeout, retries=retries, backoff=backoff)
        try:
            write_atomic(folder / ref.file_name, data, verify=open_image_file)  # full decode before the rename
        except BadImage as error:  # its message names the temp file; the URL says more
            raise BadRecord(error.reason, f"{url}: the body is not a usable picture ({error.reason})") from None

    writer = _StateFile(Path(state_file)) if state_file is not None else None
    bar = tqdm(total=len(todo), unit="img", desc="OpenImages", disable=not progress, dynamic_ncols=True)
    try:
        if writer is not None:  # files found on disk but not yet in the state: record them once
            for ref in refs:
                if ref.file_name in present and ref.image_id not in state:
                    writer.record(ref)
        for ref, future in map_unordered(download, todo, workers=workers, max_in_flight=4 * workers):
            try:
                future.result()
            except BadRecord as error:  # FetchError or BadImage: counted, recorded, retried next run
                summary.failures[ref.image_id] = (error.reason, str(error))
                if writer is not None:
                    writer.record(ref, error.reason)
                bar.set_postfix(failed=len(summary.failures), refresh=False)
            else:
                summary.downloaded += 1
                if writer is not None:
                    writer.record(ref)
            bar.update()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    summary.elapsed_seconds = time.monotonic() - started
    if summary_file is not None:
        Path(summary_file).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_file).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    logger.info("OpenImages: %s", summary.format().splitlines()[0])
    return summary
