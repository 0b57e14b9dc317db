"""`SkippingDataset`: a map-style dataset that never crashes mid-epoch on a bad record.

A subclass implements `load_example(index)`, raising `BadRecord` (or `BadImage`) for a record it cannot serve.
`__getitem__` then serves the next good record instead (index + 1, + 2, ... wrapping around), counts the skip with
its reason in `skip_log` once per record and process, and remembers the bad index so later epochs skip it at no cost.
Only when `max_tries` records in a row are bad does it raise — one line that names the loader and the reasons, since
that means the data (usually `image_folder`) is wrong, not one picture.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from theworld.data.skips import BadRecord, SkipLog

Example = dict[str, Any]


class SkippingDataset(Dataset[Example]):
    """Base class; see the module docstring. Subclasses define `__len__`, `load_example` and `describe`."""

    max_tries = 64

    def __init__(self, skip_log: SkipLog) -> None:
        self.skip_log = skip_log
        self._bad: set[int] = set()

    def __len__(self) -> int:
        raise NotImplementedError

    def load_example(self, index: int) -> Example:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Where record `index` comes from, for the skip log (e.g. "record 12 (image 000a1b.jpg)")."""
        return f"record {index}"

    def __getitem__(self, index: int) -> Example:
        size = len(self)
        if not size:
            raise IndexError(f"{self.skip_log.name}: the dataset is empty")
        for attempt in range(min(self.max_tries, size)):
            current = (int(index) + attempt) % size
            if current in self._bad:
                continue
            try:
                return self.load_example(current)
            except BadRecord as error:
                self._bad.add(current)
                self.skip_log.skip(error.reason, self.describe(current), str(error))
        raise RuntimeError(
            f"{self.skip_log.name}: {min(self.max_tries, size)} records in a row from index {index} cannot be served "
            f"({self.skip_log.summary()}); check the dataset paths"
        )
