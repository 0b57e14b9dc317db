"""Trainer callbacks for real data: the end-of-run skip report, and re-scanning an image folder each epoch.

- `DataReportCallback`: at each evaluation and at the end of training, the records every loader skipped (counted
  by reason in `<output_dir>/data_skips.jsonl` by all processes and DataLoader workers) are logged as one line per
  loader and written to `<output_dir>/data_report.json` — a run never hides that 3% of its pictures were broken.
- `RescanImagesCallback`: at the start of every epoch after the first, `dataset.rescan()` picks up pictures
  downloaded meanwhile (progressive training while the OpenImages download runs). Under DDP every rank must serve the
  same records, so rank 0's picture list is broadcast when the ranks' scans disagree.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch.distributed as dist
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from theworld.data.skips import SkipLog, format_summary
from theworld.evaluation.results import write_json_atomic

logger = logging.getLogger(__name__)

REPORT_FILE = "data_report.json"


class DataReportCallback(TrainerCallback):
    """Logs and saves the loaders' skip counts (see the module docstring)."""

    def __init__(self, skip_file: str | Path, notes: list[str] | None = None) -> None:
        self.skip_file = Path(skip_file)
        self.notes = list(notes or [])  # e.g. the ingest report of the OpenSpatial JSON

    def report(self) -> dict[str, Any]:
        counts = SkipLog.read(self.skip_file)
        return {
            "skipped": {name: dict(reasons.most_common()) for name, reasons in sorted(counts.items())},
            "notes": self.notes,
        }

    def _emit(self, args: TrainingArguments, state: TrainerState, final: bool) -> None:
        if not state.is_world_process_zero:
            return
        report = self.report()
        if final or report["skipped"]:
            for name, reasons in report["skipped"].items():
                logger.warning("data: %s", format_summary(name, Counter(reasons)))
            if final and not report["skipped"]:
                logger.info("data: no records skipped")
        write_json_atomic(self.skip_file.with_name(REPORT_FILE), {**report, "global_step": state.global_step})

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._emit(args, state, final=False)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._emit(args, state, final=True)


class RescanImagesCallback(TrainerCallback):
    """Calls `dataset.rescan()` at every epoch start after the first (see the module docstring)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.epoch is None or state.epoch < 1:
            return  # the dataset was scanned when it was built
        before = len(self.dataset)
        self.dataset.rescan()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self._agree()
        added = len(self.dataset) - before
        if state.is_world_process_zero:
            logger.info(
                "epoch %d: re-scanned the pictures: %d record(s) now (%+d)",
                round(state.epoch),
                len(self.dataset),
                added,
            )

    def _agree(self) -> None:
        lengths: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(lengths, len(self.dataset))
        if len(set(lengths)) == 1:
            return
        # A picture landed between two ranks' scans: everyone takes rank 0's view, or the shards would overlap.
        images = [self.dataset.images if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(images, src=0)
        self.dataset.set_images(images[0])
