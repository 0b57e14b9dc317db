"""Finding checkpoints to resume from: a local directory, `latest` (newest complete one in output_dir), a Hub id."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from theworld.errors import first_line
from theworld.training.config import ConfigError

logger = logging.getLogger(__name__)

LATEST = "latest"
# The Trainer writes trainer_state.json last: a checkpoint without it was interrupted while being written.
COMPLETE_MARKER = "trainer_state.json"
HUB_LAST_CHECKPOINT = "last-checkpoint"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def complete_checkpoints(directory: Path) -> list[Path]:
    """checkpoint-N folders under `directory` that were completely written, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def resolve_resume(value: str | None, output_dir: Path) -> Path | None:
    """None (fresh start), a complete local checkpoint, the newest complete one (`latest`), or a Hub download."""
    if not value:
        return None
    if value == LATEST:
        checkpoints = complete_checkpoints(output_dir)
        if not checkpoints:
            logger.warning("resume_from_checkpoint=latest: no complete checkpoint in %s; starting fresh", output_dir)
            return None
        logger.info("resuming from %s", checkpoints[-1])
        return checkpoints[-1]
    local = Path(value).expanduser()
    if local.exists():
        if not (local / COMPLETE_MARKER).is_file():
            nested = complete_checkpoints(local)
            if nested:
                return nested[-1]
            raise ConfigError(f"resume_from_checkpoint={value!r}: no {COMPLETE_MARKER} (an incomplete checkpoint?)")
        return local
    return download_checkpoint(value)


def download_checkpoint(repo_id: str) -> Path:
    """The newest complete checkpoint of a Hub repo pushed by a run (its checkpoint-N folders or its root)."""
    from huggingface_hub import snapshot_download

    try:
        root = Path(snapshot_download(repo_id))
    except Exception as error:  # network, auth, not found: one line naming the value
        message = first_line(error)
        raise ConfigError(
            f"resume_from_checkpoint={repo_id!r}: not a local path and not downloadable: {message}"
        ) from None
    nested = complete_checkpoints(root)
    if nested:
        return nested[-1]
    if (root / HUB_LAST_CHECKPOINT / COMPLETE_MARKER).is_file():  # pushed with hub_strategy "checkpoint"
        return root / HUB_LAST_CHECKPOINT
    if (root / COMPLETE_MARKER).is_file():
        return root
    raise ConfigError(f"resume_from_checkpoint={repo_id!r}: the Hub repo holds no complete checkpoint")
