"""Build what a run needs from a `TrainingConfig`: the model (fresh or from an earlier stage) and the datasets."""

from __future__ import annotations

import logging

from theworld.modeling import TheWorld
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.data_sources import build_datasets

__all__ = ["build_datasets", "build_model"]

logger = logging.getLogger(__name__)


def build_model(config: TrainingConfig) -> TheWorld:
    """`model_name` converted with the config's world settings, or (multi-stage) the weights of
    `init_from_checkpoint` with this stage's freeze set. Loading errors become one-line `ConfigError`s."""
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
    return model
