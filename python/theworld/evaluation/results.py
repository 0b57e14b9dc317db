"""Resumable per-sample results: one JSONL line per evaluated item, written as it comes, and an atomic summary.

A killed evaluation loses at most the batch in flight: `ResultsFile` appends each finished item (flushed and
fsynced per `add` call), and a restarted run reads the file back and skips the ids it holds. The first line is a
header with the run's settings; a restart with different settings (another model, split or ablation) is refused with
one line instead of mixing two runs in one file. A last line cut by the kill is dropped (and the file truncated to the
last complete line) rather than failing the resume.

[Contract] `records()` lists each item id once, in the order items were finished; re-running a finished evaluation
computes nothing and yields the same summary.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HEADER_KEY = "__run__"


class ResultsFile:
    """Append-only JSONL of `{"id": ..., ...}` records for one evaluation run described by `run` (JSON values)."""

    def __init__(self, path: str | os.PathLike[str], run: Mapping[str, Any], resume: bool = True) -> None:
        self.path = Path(path)
        self.run = json.loads(json.dumps(dict(run)))  # normalized JSON values, so comparison with the file is exact
        self._records: dict[str, dict[str, Any]] = {}
        if self.path.exists() and resume:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps({HEADER_KEY: self.run}, sort_keys=True) + "\n")
        if self._records:
            logger.info("%s: resuming, %d item(s) already done", self.path, len(self._records))

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            logger.warning(
                "%s: dropping an incomplete last line (a killed run); the item will be recomputed", self.path
            )
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))
        lines = complete.decode("utf-8").splitlines()
        if not lines:
            raise ValueError(
                f"{self.path}: empty results file without its header line; delete it or pick another --output-dir"
            )
        try:
            header = json.loads(lines[0])[HEADER_KEY]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"{self.path}: line 1 is not a results header; delete it or pick another --output-dir"
            ) from None
        if header != self.run:
            changed = sorted(k for k in set(header) | set(self.run) if header.get(k) != self.run.get(k))
            raise ValueError(
                f"{self.path}: written by a different run (differs in {', '.join(changed)}); "
                "use another --output-dir or delete the file"
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                self._records[str(record["id"])] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{self.path}:{number}: not a results record with an 'id'") from None

    def done(self) -> set[str]:
        return set(self._records)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._records

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append finished items (each with an "id") and make them durable before returning."""
        lines = []
        for record in records:
            item = dict(record)
            if "id" not in item:
                raise ValueError("ResultsFile.add: every record needs an 'id'")
            self._records[str(item["id"])] = item
            lines.append(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())


def read_results(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(run header, records) of a results file, e.g. to re-judge saved predictions without the model."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such results file")
    lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        header = json.loads(lines[0])[HEADER_KEY] if lines else None
    except (json.JSONDecodeError, KeyError, TypeError):
        header = None
    if header is None:
        raise ValueError(f"{file}: not a results file (line 1 must be the run header)")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut by a killed run
                break
            raise ValueError(f"{file}:{number}: invalid JSON") from None
    return header, records


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented JSON via a temporary file + rename: a reader never sees half a summary."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=file.parent, prefix=f".{file.name}.", delete=False) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
        temp = Path(handle.name)
    os.replace(temp, file)
    return file
