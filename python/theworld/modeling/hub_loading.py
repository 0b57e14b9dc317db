"""Loading a training run pushed to the Hub: its final model (the repo root) or one of its pushed checkpoints.

A run pushed by `scripts/train_hf.py` (`push_to_hub`) holds the final model at the repo root and, depending on
`hub_strategy`, its checkpoints in `checkpoint-N/` (`all_checkpoints`) or `last-checkpoint/` (`checkpoint`), plus
TensorBoard logs. `TheWorld.from_checkpoint_hub(repo_id, checkpoint_name=None)` downloads only what loading needs
(never the optimizer, scheduler or RNG state, nor the logs or the other checkpoints) and hands the local folder to
`TheWorld.from_pretrained`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download

from theworld.errors import first_line

CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last-checkpoint"  # where hub_strategy "checkpoint" pushes
# snapshot_download's keyword arguments; the rest goes to from_pretrained.
DOWNLOAD_KWARGS = ("revision", "token", "cache_dir", "force_download", "local_files_only")
# Patterns are fnmatch patterns over repo paths, where "*" also matches "/".
MODEL_FILES = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"]  # config, weights, tokenizer, processor
ROOT_IGNORE = ["checkpoint-*", f"{LAST_CHECKPOINT}/*", "logs/*", "runs/*"]  # other runs' folders, TensorBoard
TRAINING_STATE = ["*.pt", "*.pth", "*training_args.bin"]  # optimizer, scheduler, scaler, RNG state: resume only
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _download(repo_id: str, allow: list[str], ignore: list[str], hub_kwargs: dict[str, Any]) -> Path:
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow, ignore_patterns=ignore, **hub_kwargs))
    except Exception as error:  # network, auth, not found: the Hub client's errors share no base class
        raise ValueError(f"{repo_id}: could not download from the Hub: {first_line(error)}") from None


def _checkpoint_order(name: str) -> tuple[int, int]:
    match = _CHECKPOINT.match(name)
    return (0, int(match.group(1))) if match else (1, 0)  # checkpoint-N by step, then last-checkpoint


def available_checkpoints(repo_id: str, hub_kwargs: dict[str, Any]) -> list[str]:
    """The checkpoint folders of a pushed run (checkpoint-N by step, then last-checkpoint); fetches their configs."""
    folders = ["checkpoint-*", LAST_CHECKPOINT]
    root = _download(repo_id, [f"{folder}/{CONFIG_FILE}" for folder in folders], [], hub_kwargs)
    names = [
        child.name
        for child in root.iterdir()
        if (child / CONFIG_FILE).is_file() and (_CHECKPOINT.match(child.name) or child.name == LAST_CHECKPOINT)
    ]
    return sorted(names, key=_checkpoint_order)


def download_pushed_run(repo_id: str, checkpoint_name: str | None = None, **hub_kwargs: Any) -> Path:
    """The local folder holding the run's final model (`checkpoint_name=None`) or that checkpoint.

    `hub_kwargs` are `snapshot_download` options (`revision`, `token`, `cache_dir`, `force_download`,
    `local_files_only`). A checkpoint the repo does not have is a one-line `ValueError` listing those it has.
    """
    if checkpoint_name is None:
        root = _download(repo_id, MODEL_FILES, ROOT_IGNORE + TRAINING_STATE, hub_kwargs)
        if not (root / CONFIG_FILE).is_file():
            checkpoints = available_checkpoints(repo_id, hub_kwargs)
            raise ValueError(
                f"{repo_id}: no model at the repo root (no {CONFIG_FILE}); "
                f"pass checkpoint_name, one of: {', '.join(checkpoints) or 'none pushed'}"
            )
        return root
    name = checkpoint_name.strip("/")
    root = _download(repo_id, [f"{name}/{pattern}" for pattern in MODEL_FILES], TRAINING_STATE, hub_kwargs)
    if not (root / name / CONFIG_FILE).is_file():
        checkpoints = available_checkpoints(repo_id, hub_kwargs)
        raise ValueError(
            f"{repo_id}: no checkpoint {name!r}; available: {', '.join(checkpoints) or 'none'} "
            "(checkpoints are pushed with hub_strategy all_checkpoints or checkpoint)"
        )
    return root / name


def from_checkpoint_hub(cls: Any, repo_id: str, checkpoint_name: str | None = None, **kwargs: Any) -> Any:
    """`cls.from_pretrained` on the downloaded run or checkpoint; `kwargs` as for `from_pretrained`.

    Hub options (`revision`, `token`, `cache_dir`, ...) apply to the download; all but `revision` (which names a
    commit of this repo, not of the base checkpoints) are also passed on, for the base Gemma a delta checkpoint loads.
    """
    hub_kwargs = {key: kwargs[key] for key in DOWNLOAD_KWARGS if key in kwargs}
    kwargs.pop("revision", None)
    local = download_pushed_run(repo_id, checkpoint_name, **hub_kwargs)
    return cls.from_pretrained(local, **kwargs)
