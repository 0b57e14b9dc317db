"""`SkipLog`: what a loader skipped, how often and why — counted, never a crash mid-epoch.

Every real-data loader drops a record it cannot serve (missing, corrupt or oversized picture, empty conversation,
bad field, failed download) with a short *reason* and the place it happened. The counts live in memory; with
`path` set, each skip is also appended as one JSON line, so skips seen in DataLoader worker processes (each holding
its own copy of the dataset) reach the end-of-run report (`SkipLog.read(path)`, `summary`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from pathlib import Path

logger = logging.getLogger(__name__)

# Reasons shared by the loaders (a loader may add its own).
MISSING_IMAGE = "missing image"
CORRUPT_IMAGE = "corrupt image"
IMAGE_TOO_LARGE = "image too large"
EMPTY_CONVERSATION = "empty conversation"
BAD_FIELD = "bad field"
DOWNLOAD_FAILED = "download failed"


class BadRecord(ValueError):
    """A record a loader cannot serve; `reason` is the short skip reason (e.g. `MISSING_IMAGE`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SkipLog:
    """Skip counts of one loader (`name`), by reason. Thread-safe; `path` makes them visible across processes."""

    def __init__(self, name: str, path: str | os.PathLike[str] | None = None, max_logged: int = 20) -> None:
        self.name = name
        self.path = Path(path) if path is not None else None
        self.counts: Counter[str] = Counter()
        self.max_logged = max_logged
        self._lock = threading.Lock()

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Count one skipped record; the first `max_logged` skips are also logged as warnings."""
        with self._lock:
            self.counts[reason] += 1
            total = sum(self.counts.values())
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                line = json.dumps({"loader": self.name, "reason": reason, "where": where, "detail": detail})
                with self.path.open("a", encoding="utf-8") as handle:  # O_APPEND: safe across worker processes
                    handle.write(line + "\n")
        if total <= self.max_logged:
            logger.warning("%s: skipped %s (%s)%s", self.name, where, reason, f": {detail}" if detail else "")
        elif total == self.max_logged + 1:
            logger.warning("%s: more skips follow; the counts are reported at the end of the run", self.name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self, served: int | None = None) -> str:
        return format_summary(self.name, self.counts, served)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> dict[str, Counter[str]]:
        """{loader name: Counter of reasons} from a skip file (all processes that wrote to it)."""
        result: dict[str, Counter[str]] = {}
        file = Path(path)
        if not file.is_file():
            return result
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed process
            result.setdefault(str(entry.get("loader")), Counter())[str(entry.get("reason"))] += 1
        return result


def format_summary(name: str, counts: Counter[str], served: int | None = None) -> str:
    """One line: "<name>: skipped N record(s) [of M served]: reason a x, reason b y" (or "no records skipped")."""
    total = sum(counts.values())
    if not total:
        return f"{name}: no records skipped"
    reasons = ", ".join(f"{reason} {count}" for reason, count in counts.most_common())
    of = f" (served {served})" if served is not None else ""
    return f"{name}: skipped {total} record(s){of}: {reasons}"
