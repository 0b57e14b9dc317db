"""`TrainingConfig`: every setting of a training run, typed, defaulted and validated when it is built.

A run is described by a JSON file of `TrainingConfig` keys (`configs/*.json`), optionally overridden by `--KEY VALUE`
on the command line (`theworld.training.cli_args`). Every mistake is a `ConfigError` with a one-line message naming
the key, where it came from and what was expected, so a typo fails in the first second of a run rather than after an
8 GB model has been loaded.

- Keys starting with "_" or "//" are comments.
- `$VAR`, `${VAR}` and a leading `~` are expanded in path-like values (`PATH_KEYS`); an unset variable is an error,
  except `TMPDIR`, which falls back to the system temporary directory as POSIX tools do.
- `hf_token` is never written or shown: `repr()` masks it and `to_dict()` / `to_json()` leave it out.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from transformers import SchedulerType

from theworld.constants import (
    DEFAULT_COSMOS_MODEL,
    DEFAULT_GEMMA_MODEL,
    DEFAULT_WORLD_POOL_SIZE,
    VAE_LATENT_CHANNELS,
    VAE_SPATIAL_FACTOR,
    VAE_TEMPORAL_FACTOR,
)
from theworld.training.config_values import (
    _MASK,
    HF_TOKEN_FILE,
    ConfigError,
    _check_type,
    _one_of,
    _require,
    _unpack,
    expand_path,
    is_comment,
    parse_as,
    reject_duplicate_keys,
    resolve_hf_token,
)

logger = logging.getLogger(__name__)

MixedPrecision = Literal["bf16", "fp16", "no"]
HubStrategy = Literal["every_save", "end", "checkpoint", "all_checkpoints"]
DatasetName = Literal["synthetic_spatial", "spatial_rgpt", "vsr", "llava_pretrain", "datacomp", "hf"]
ProjectionMode = Literal["spatial", "pooled", "channel"]  # = theworld.constants.PROJECTION_MODES
STREAMING_DATASETS = ("datacomp", "hf")

# Values that may name files or directories. Hub ids never contain "$" or start with "~", so expanding the model
# names too is safe: "google/gemma-3-4b-it" passes through unchanged, "${THEWORLD_TINY_DIR}/gemma" becomes a path.
PATH_KEYS = (
    "output_dir",
    "image_folder",
    "train_dataset_path",
    "eval_dataset_path",
    "init_from_checkpoint",
    "model_name",
    "cosmos_model_name",
    "data_cache_dir",
    "download_dir",
    "image_cache_dir",
    "world_cache_dir",
)
# What `TheWorld.from_pretrained` takes from a training config (see theworld.modeling.loading).
MODEL_KWARGS = (
    "enable_world",
    "cosmos_model_name",
    "world_image_size",
    "world_projection_mode",
    "world_pool_size",  # only in pooled mode: the other modes ignore it (see model_kwargs)
    "num_world_steps",
    "freeze_gemma_vision",
    "freeze_gemma_language",
    "freeze_cosmos_vae",
)
MAX_WORLD_STEPS = 16
_POSITIVE = (
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "num_epochs",
    "world_image_size",
    "world_pool_size",
    "save_steps",
    "logging_steps",
    "eval_steps",
    "max_length",
    "download_timeout",
)
_POSITIVE_OR_NULL = (
    "projector_learning_rate",
    "vision_learning_rate",
    "language_learning_rate",
    "save_total_limit",
    "num_samples",
)
_NON_NEGATIVE = (
    "download_retries",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "dataloader_num_workers",
    "num_eval_samples",
    "seed",
    "world_cache_size",
)
_WORLD_SIZE_MULTIPLE = 16  # Cosmos-Predict2 needs sides divisible by 16 (VAE factor 8 x patch 2)


@dataclass(repr=False)
class TrainingConfig:
    """One training run: model and world settings, optimization, logging, Hub, data. Validated on construction."""

    # ---- model: what `TheWorld.from_pretrained` gets (see `model_kwargs`) ----
    model_name: str = DEFAULT_GEMMA_MODEL  # Gemma 3 or saved TheWorld: Hub id or directory
    cosmos_model_name: str = DEFAULT_COSMOS_MODEL  # its vae/ subfolder is loaded
    enable_world: bool = True  # False = the Gemma-only baseline
    num_world_steps: int = 0
    world_projection_mode: ProjectionMode = "spatial"
    world_pool_size: int = DEFAULT_WORLD_POOL_SIZE  # pooled mode: k x k average pool of the latent grid (k | side)
    world_image_size: int = 256
    freeze_gemma_vision: bool = True
    freeze_gemma_language: bool = True
    freeze_cosmos_vae: bool = True
    init_from_checkpoint: str | None = None  # start from these weights (a saved TheWorld) instead of model_name
    world_cache_size: int = 0  # world latents kept in memory per picture (LRU; frozen VAE only); 0 = no cache
    world_cache_dir: str | None = None  # also keep the cached world latents on disk here (shared by later runs)

    # ---- optimization ----
    learning_rate: float = 1e-4
    projector_learning_rate: float | None = None  # None = learning_rate
    vision_learning_rate: float | None = None  # None = learning_rate
    language_learning_rate: float | None = None  # None = learning_rate
    batch_size: int = 4  # per device
    gradient_accumulation_steps: int = 4
    num_epochs: int = 1
    max_steps: int = -1  # -1 = run num_epochs
    warmup_steps: int = 0  # > 0 takes precedence over warmup_ratio
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"  # any transformers SchedulerType
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 = no clipping
    use_gradient_checkpointing: bool = True
    mixed_precision: MixedPrecision = "bf16"
    seed: int = 42
    dataloader_num_workers: int = 4

    # ---- checkpoints and logging ----
    output_dir: str = "${HOME}/theworld-runs/default"
    save_steps: int = 500
    save_total_limit: int | None = 3  # None = keep every checkpoint
    logging_steps: int = 10
    eval_steps: int = 500
    log_to_wandb: bool = False
    wandb_project: str = "theworld"
    wandb_run_name: str | None = None

    # ---- Hugging Face Hub ----
    push_to_hub: bool = False
    hub_model_id: str | None = None  # None = derived from output_dir by transformers
    hub_strategy: HubStrategy = "every_save"
    hub_private_repo: bool | None = None  # None = the namespace's default visibility
    hf_token: str | None = field(default=None, compare=False)  # never serialized; see resolve_hf_token

    # ---- data ----
    dataset_name: DatasetName = "synthetic_spatial"
    image_folder: str | None = None
    train_dataset_path: str | None = None
    eval_dataset_path: str | None = None
    hf_dataset_id: str | None = None  # a Hub dataset id or local dataset dir ("hf": required; others: their source)
    hf_dataset_split: str = "train"  # "hf": the training split
    hf_eval_split: str | None = None  # "hf": the evaluation split (None = no evaluation set)
    image_key: str = "image"
    text_key: str = "text"
    label_key: str = "label"
    conversations_key: str = "conversations"
    data_cache_dir: str | None = None  # Arrow caches of parsed datasets; None = the datasets library's cache
    download_dir: str = "${TMPDIR}/theworld-data"  # where a missing dataset file (e.g. the OpenSpatial JSON) is fetched
    image_cache_dir: str | None = None  # datacomp: keep fetched pictures here and reuse them
    streaming: bool = False  # datacomp / hf: stream the records instead of materializing them
    download_timeout: float = 10.0  # seconds per HTTP request (datacomp pictures)
    download_retries: int = 3  # extra attempts per picture after the first
    rescan_images: bool = True  # spatial_rgpt: re-scan image_folder at each epoch for newly downloaded pictures
    question_template: str | None = None  # e.g. "Is this true: {question}?"; None = the text as is
    num_samples: int | None = None  # None = the whole training set
    num_eval_samples: int | None = None  # None = the whole eval set, 0 = no evaluation
    draw_bboxes: bool = False  # draw the regions a question refers to (Spatial-RGPT style)
    synthetic_relations: str = "left_of,above,bigger,in_front"  # synthetic_spatial: comma-separated relations
    synthetic_colors: str | None = None  # synthetic_spatial: "red,blue" fixes the subject and object colours
    blank_siglip_images: bool = False  # world-only probe: SigLIP sees grey pictures, only world tokens see the image
    max_length: int = 2048  # tokens per example, world and image tokens included

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = _check_type(spec.name, getattr(self, spec.name), _FIELD_TYPES[spec.name])
            if spec.name in PATH_KEYS and isinstance(value, str):
                value = expand_path(spec.name, value)
            setattr(self, spec.name, value)
        self._validate()

    def _validate(self) -> None:
        for key in _POSITIVE:
            _require(getattr(self, key) > 0, key, getattr(self, key), "> 0")
        for key in _POSITIVE_OR_NULL:
            value = getattr(self, key)
            _require(value is None or value > 0, key, value, "> 0 or null")
        for key in _NON_NEGATIVE:
            value = getattr(self, key)
            _require(value is None or value >= 0, key, value, ">= 0")
        _require(self.max_steps == -1 or self.max_steps > 0, "max_steps", self.max_steps, "> 0, or -1 to use epochs")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        steps = self.num_world_steps
        _require(0 <= steps <= MAX_WORLD_STEPS, "num_world_steps", steps, f"in [0, {MAX_WORLD_STEPS}]")
        _require(
            steps % VAE_TEMPORAL_FACTOR == 0,
            "num_world_steps",
            steps,
            f"a multiple of {VAE_TEMPORAL_FACTOR} (the Wan VAE compresses {VAE_TEMPORAL_FACTOR} frames into one)",
        )
        _require(
            self.world_image_size % _WORLD_SIZE_MULTIPLE == 0,
            "world_image_size",
            self.world_image_size,
            f"a multiple of {_WORLD_SIZE_MULTIPLE}",
        )
        self._validate_world_tokens_and_cache()
        schedulers = tuple(s.value for s in SchedulerType)
        _require(self.lr_scheduler_type in schedulers, "lr_scheduler_type", self.lr_scheduler_type, _one_of(schedulers))
        if not self.enable_world and self.freeze_gemma_vision and self.freeze_gemma_language:
            raise ConfigError(
                "nothing to train: enable_world=false and freeze_gemma_vision / freeze_gemma_language are both true",
                key="enable_world",
            )
        if self.dataset_name == "hf" and not self.hf_dataset_id:
            raise ConfigError("dataset_name='hf' needs hf_dataset_id (a Hub dataset id)", key="hf_dataset_id")
        if self.streaming and self.dataset_name not in STREAMING_DATASETS:
            raise ConfigError(
                f"streaming=true: dataset_name={self.dataset_name!r} is not streamed; "
                f"expected {_one_of(STREAMING_DATASETS)}",
                key="streaming",
            )
        if self.streaming and self.max_steps <= 0:
            raise ConfigError(
                "streaming=true needs max_steps > 0: a stream has no length to count epochs by", key="max_steps"
            )
        world_tokens = self.world_tokens_per_image()
        if self.max_length <= world_tokens:
            raise ConfigError(
                f"max_length={self.max_length} leaves no room for text: one picture alone is {world_tokens} "
                f"world tokens at world_image_size={self.world_image_size} ({self.world_projection_mode} mode)",
                key="max_length",
            )

    def _validate_world_tokens_and_cache(self) -> None:
        side = self.world_image_size // VAE_SPATIAL_FACTOR
        if self.world_projection_mode == "pooled" and side % self.world_pool_size:
            divisors = [d for d in range(1, side + 1) if side % d == 0]
            raise ConfigError(
                f"world_pool_size={self.world_pool_size}: expected a divisor of the latent side {side} "
                f"(world_image_size={self.world_image_size} / {VAE_SPATIAL_FACTOR}) in pooled mode, one of {divisors}",
                key="world_pool_size",
            )
        if self.world_cache_dir is not None and self.world_cache_size == 0:
            raise ConfigError(
                "world_cache_dir is set but world_cache_size=0 turns the world-latent cache off; "
                "expected world_cache_size > 0 (rows kept in memory) or world_cache_dir null",
                key="world_cache_dir",
            )
        if self.world_cache_size > 0 and (not self.enable_world or not self.freeze_cosmos_vae):
            why = "enable_world=false (no world latents)" if not self.enable_world else "freeze_cosmos_vae=false"
            raise ConfigError(
                f"world_cache_size={self.world_cache_size}: the world-latent cache needs a frozen VAE and world "
                f"tokens, but {why}; expected world_cache_size=0",
                key="world_cache_size",
            )

    def world_tokens_per_frame(self) -> int:
        """World tokens of one latent frame (same as `TheWorldConfig.tokens_per_world_frame`)."""
        side = self.world_image_size // VAE_SPATIAL_FACTOR
        if self.world_projection_mode == "channel":
            return VAE_LATENT_CHANNELS
        if self.world_projection_mode == "pooled":
            side //= self.world_pool_size
        return side * side

    def world_tokens_per_image(self) -> int:
        """World tokens one picture adds to a sequence, `<start_of_world>` and `<end_of_world>` included."""
        if not self.enable_world:
            return 0
        return (1 + self.num_world_steps // VAE_TEMPORAL_FACTOR) * self.world_tokens_per_frame() + 2

    def model_kwargs(self) -> dict[str, Any]:
        """World settings and freeze flags for `TheWorld.from_pretrained(config.model_name, **kwargs)`."""
        return {
            key: getattr(self, key)
            for key in MODEL_KWARGS
            if key != "world_pool_size" or self.world_projection_mode == "pooled"
        }

    def warmup(self) -> float:
        """Value for transformers' `TrainingArguments.warmup_steps`: steps if > 0, else the ratio (a float < 1)."""
        return self.warmup_steps if self.warmup_steps > 0 else self.warmup_ratio

    # ---- (de)serialization ----
    def to_dict(self) -> dict[str, Any]:
        """Every key but `hf_token` (a secret: it must not end up in a run directory or on the Hub)."""
        return {spec.name: getattr(self, spec.name) for spec in fields(self) if spec.name != "hf_token"}

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as JSON (without `hf_token`), also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def __repr__(self) -> str:
        parts = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            shown = _MASK if spec.name == "hf_token" and value is not None else repr(value)
            parts.append(f"{spec.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], overrides: dict[str, str] | None = None, source: str = "config"
    ) -> TrainingConfig:
        """Build from `data` (JSON values) and then `overrides` (command-line strings, parsed to each key's type).

        Errors name `source` (the file) or "command line" for a key that came from `overrides`.
        """
        overrides = overrides or {}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if is_comment(key):
                continue
            check_key(key, source)
            values[key] = value
        if values.get("hf_token"):
            logger.warning("%s: hf_token is set in a config file; prefer --hf_token or the HF_TOKEN variable", source)
        for key, text in overrides.items():
            check_key(key, "command line", option=True)
            values[key] = parse_value(key, text)
        try:
            return cls(**values)
        except ConfigError as error:
            origin = "command line" if error.key in overrides else source
            raise ConfigError(f"{origin}: {error}", key=error.key) from None

    @classmethod
    def from_json(cls, path: str | os.PathLike[str], overrides: dict[str, str] | None = None) -> TrainingConfig:
        """Read a JSON config file, apply command-line `overrides` ({key: string value}) and validate."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the config file ({error.strerror or error})") from None
        try:
            data = json.loads(text, object_pairs_hook=reject_duplicate_keys(path))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of TrainingConfig keys, got {type(data).__name__}")
        return cls.from_dict(data, overrides, source=str(path))


# ---- keys and values ----
def field_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in fields(TrainingConfig))


def check_key(key: str, source: str, option: bool = False) -> None:
    """Raise a `ConfigError` naming `key`, `source` and the closest valid key when `key` is not a config key."""
    if key in _FIELD_TYPES:
        return
    shown = f"--{key}" if option else repr(key)
    close = difflib.get_close_matches(key, field_names(), n=1, cutoff=0.5)
    hint = f"did you mean {'--' if option else ''}{close[0]}?" if close else "see TrainingConfig for the valid keys"
    raise ConfigError(f"{source}: unknown key {shown} ({hint})", key=key)


def is_flag(key: str) -> bool:
    """True for a bool key (a bare `--KEY` on the command line means true)."""
    return _unpack(_FIELD_TYPES[key])[0] is bool


def parse_value(key: str, text: Any) -> Any:
    """A command-line string parsed to the type of `key`: bools true/false/1/0, ints, floats, null/None."""
    return parse_as(key, text, _FIELD_TYPES[key])


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainingConfig)


_FIELD_TYPES = _field_types()

__all__ = [
    "HF_TOKEN_FILE",
    "MAX_WORLD_STEPS",
    "MODEL_KWARGS",
    "PATH_KEYS",
    "STREAMING_DATASETS",
    "ConfigError",
    "DatasetName",
    "HubStrategy",
    "MixedPrecision",
    "ProjectionMode",
    "TrainingConfig",
    "check_key",
    "expand_path",
    "field_names",
    "is_comment",
    "is_flag",
    "parse_value",
    "resolve_hf_token",
]
