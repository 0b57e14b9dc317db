"""Build what a run needs from a `TrainingConfig`: the model (fresh or from an earlier stage, with its world-latent
cache when `world_cache_size` > 0) and the datasets."""

from __future__ import annotations

import logging

from theworld.modeling import TheWorld
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.data_sources import build_datasets

__all__ = ["build_datasets", "build_model"]

logger = logging.getLogger(__name__)


def build_model(config: TrainingConfig) -> TheWorld:
    """`model_name` converted with the config's world settings, or (multi-stage) the weights of
    `init_from_checkpoint` with this stage's freeze set. Loading errors become one-line `ConfigError`s.

    With `world_cache_size` > 0 the model caches world latents per picture (`TheWorld.enable_world_cache`, in memory
    and in `world_cache_dir`): the frozen VAE / rollout run once per picture, not once per epoch."""
    try:
        if config.init_from_checkpoint:
            stage_kwargs = {
                key: value
                for key, value in config.model_kwargs().items()
                if key not in ("cosmos_model_name",)  # the checkpoint records where its VAE came from
            }
            model = TheWorld.from_pretrained(config.init_from_checkpoint, **stage_kwargs)
        else:
            model = TheWorld.from_pretrained(config.model_name, **config.model_kwargs())
    except ValueError as error:
        source = "init_from_checkpoint" if config.init_from_checkpoint else "model_name"
        raise ConfigError(f"{source}: {error}") from None
    if config.world_cache_size > 0:
        try:
            model.enable_world_cache(config.world_cache_size, config.world_cache_dir)
        except ValueError as error:
            raise ConfigError(f"world_cache_size / world_cache_dir: {error}", key="world_cache_dir") from None
        logger.info(
            "world-latent cache: %d pictures in memory%s",
            config.world_cache_size,
            f", files in {config.world_cache_dir}" if config.world_cache_dir else "",
        )
    check_max_length(config, model)
    return model


def check_max_length(config: TrainingConfig, model: TheWorld) -> None:
    """`max_length` must leave room for text after one picture's SigLIP block and world block (the config alone
    knows only the world tokens: the SigLIP count comes from the model)."""
    siglip = int(getattr(model.config, "mm_tokens_per_image", 0)) + 2  # + <start_of_image>, <end_of_image>
    picture = siglip + config.world_tokens_per_image()
    if config.max_length <= picture:
        raise ConfigError(
            f"max_length={config.max_length} leaves no room for text: one picture is {picture} tokens "
            f"({siglip} SigLIP + {config.world_tokens_per_image()} world)",
            key="max_length",
        )
