"""Loading and saving TheWorld: converting a plain Gemma 3 checkpoint, reloading a saved TheWorld (full or delta).

`TheWorld.from_pretrained(path_or_hub_id, **world_settings)`:
- on a Gemma 3 checkpoint (config `model_type` "gemma3"): builds a `TheWorldConfig`, adds the world tokens to the
  tokenizer, loads Gemma's weights, initializes and calibrates the world modules, loads the Cosmos VAE, freezes;
- on a saved TheWorld (model_type "theworld"): restores everything from the directory with no kwargs. A delta
  checkpoint loads `world_base_model` first and then its own few tensors on top.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file
from transformers import AutoConfig, AutoProcessor, Gemma3Config
from transformers.utils.hub import cached_file

from theworld.errors import first_line
from theworld.modeling import hub_loading
from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.cosmos_encoder import CosmosWorldEncoder, load_cosmos_vae
from theworld.modeling.processing_theworld import TheWorldProcessor
from theworld.modeling.tokens import add_world_tokens, ensure_embedding_rows

logger = logging.getLogger(__name__)

# World settings accepted by from_pretrained. Structural ones define parameter shapes, or the token layout the
# projector was trained on, and must match a saved model.
STRUCTURAL_KWARGS = (
    "enable_world",
    "world_image_size",
    "world_projection_mode",
    "world_pool_size",
    "max_world_steps",
    "world_projector_hidden_size",
)
RUNTIME_KWARGS = (
    "cosmos_model_name",
    "num_world_steps",
    "world_rollout_steps",
    "world_rollout_guidance",
    "world_rollout_seed",
    "freeze_gemma_vision",
    "freeze_gemma_language",
    "freeze_cosmos_vae",
)
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")
TRAINABLE_VAE_SUBFOLDER = "world_vae"
WORLD_PREFIXES = ("world_projector.", "world_token_embedding.")
VISION_PREFIXES = ("model.vision_tower.", "model.multi_modal_projector.")
LANGUAGE_PREFIXES = ("model.language_model.", "lm_head.")
EMBEDDING_KEY = "model.language_model.embed_tokens.weight"

# True while a plain Gemma checkpoint is loaded into TheWorld: its world modules are missing by design.
_CONVERTING_GEMMA: contextvars.ContextVar[bool] = contextvars.ContextVar("converting_gemma", default=False)


def _load_config(source: str, hub_kwargs: dict[str, Any]) -> Any:
    try:
        return AutoConfig.from_pretrained(source, **hub_kwargs)
    except Exception as error:  # OSError, EnvironmentError, HF errors: one line naming the path is what helps
        raise ValueError(
            f"{source}: could not read config.json (expected a Gemma 3 or TheWorld checkpoint directory or Hub id): "
            f"{first_line(error)}"
        ) from None


def _apply_overrides(config: TheWorldConfig, overrides: dict[str, Any], source: str) -> TheWorldConfig:
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        if key == "world_pool_size" and config.world_projection_mode != "pooled":
            # Only the pooled mode reads it: a spatial/channel checkpoint takes any value (a training config always
            # passes one) and keeps its own.
            continue
        if key in STRUCTURAL_KWARGS and value != getattr(config, key):
            reason = (
                "it fixes the world token layout the projector was trained on"
                if key == "world_pool_size"
                else "it defines parameter shapes"
            )
            raise ValueError(
                f"{key}={value!r} does not match the checkpoint {source} ({key}={getattr(config, key)!r}); "
                f"{reason}: convert the base Gemma checkpoint again to change it"
            )
        setattr(config, key, value)
    config.validate_world()
    return config


@torch.no_grad()
def calibrate_world_modules(model: Any, num_base_tokens: int) -> None:
    """Match the world side to the text embeddings of a freshly converted checkpoint.

    The projector's output gain becomes the RMS of the scaled text embeddings; the world token rows are drawn from
    the per-dimension mean and spread of the existing rows, so they look like ordinary tokens.
    """
    embed = model.get_input_embeddings()
    rows = embed.weight[:num_base_tokens].float()
    rows = rows[rows.norm(dim=-1) > 0]  # Gemma's padding rows may be zero
    scale = float(embed.embed_scale)
    model.world_projector.output_scale.fill_(float(rows.pow(2).mean().sqrt()) * scale)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(model.world_token_embedding.weight.shape, generator=generator)
    new_rows = rows.mean(0) + noise * rows.std(0)
    model.world_token_embedding.weight.copy_(new_rows.to(model.world_token_embedding.weight.dtype))


def attach_cosmos_vae(model: Any, source: str, hub_kwargs: dict[str, Any]) -> None:
    """Load the VAE (a saved trainable one from `world_vae/` if present, else `cosmos_model_name/vae`)."""
    config: TheWorldConfig = model.config
    vae = None
    if not config.freeze_cosmos_vae:
        try:
            vae = AutoencoderKLWan.from_pretrained(source, subfolder=TRAINABLE_VAE_SUBFOLDER, torch_dtype=model.dtype)
        except Exception:  # no fine-tuned VAE saved with this checkpoint: start from the Cosmos one
            vae = None
    if vae is None:
        vae = load_cosmos_vae(config.cosmos_model_name, dtype=model.dtype, **hub_kwargs)
    encoder = CosmosWorldEncoder(vae).to(model.get_input_embeddings().weight.device)
    model.set_world_encoder(encoder, trainable=not config.freeze_cosmos_vae)
    # The rollout (num_world_steps > 0) loads lazily from the same source: remember how to reach it.
    model.__dict__["_cosmos_hub_kwargs"] = dict(hub_kwargs)


def build_processor(base: Any, config: TheWorldConfig) -> TheWorldProcessor:
    return TheWorldProcessor(
        base.image_processor,
        base.tokenizer,
        chat_template=base.chat_template,
        image_seq_length=base.image_seq_length,
        num_world_tokens=config.num_world_tokens(),
        world_image_size=config.world_image_size,
        world_tokens_per_frame=config.tokens_per_world_frame() if config.enable_world else 0,
        num_world_steps=config.num_world_steps,
        max_world_steps=config.max_world_steps,
    )


def _load_processor(source: str, hub_kwargs: dict[str, Any]) -> Any:
    try:
        return AutoProcessor.from_pretrained(source, **hub_kwargs)
    except Exception as error:
        raise ValueError(f"{source}: could not load the processor/tokenizer: {first_line(error)}") from None


def convert_gemma(
    cls: Any, source: str, gemma_config: Gemma3Config, world_kwargs: dict[str, Any], load_kwargs: dict[str, Any]
) -> Any:
    hub_kwargs = {k: load_kwargs[k] for k in HUB_KWARGS if k in load_kwargs}
    config = TheWorldConfig.from_gemma_config(gemma_config, world_base_model=source, **world_kwargs)
    base_processor = _load_processor(source, hub_kwargs)
    num_base_tokens = len(base_processor.tokenizer)
    token_ids = add_world_tokens(base_processor.tokenizer) if config.enable_world else {}
    token = _CONVERTING_GEMMA.set(True)
    try:
        model = cls.load_weights(source, config=config, **load_kwargs)
    finally:
        _CONVERTING_GEMMA.reset(token)
    if config.enable_world:
        # from_pretrained copies the config it is given: set the ids on the model's own config.
        model.config.sow_token_id, model.config.eow_token_id, model.config.world_token_id = token_ids.values()
        ensure_embedding_rows(model, len(base_processor.tokenizer))
        calibrate_world_modules(model, num_base_tokens)
        attach_cosmos_vae(model, source, hub_kwargs)
    model.processor = build_processor(base_processor, model.config)
    model.freeze()
    return model


def _delta_base_vocab(config: TheWorldConfig, hub_kwargs: dict[str, Any]) -> int:
    base = _load_config(str(config.world_base_model), hub_kwargs)
    return int(base.get_text_config().vocab_size)


def load_world(cls: Any, source: str, config: TheWorldConfig, load_kwargs: dict[str, Any]) -> Any:
    hub_kwargs = {k: load_kwargs[k] for k in HUB_KWARGS if k in load_kwargs}
    if config.world_checkpoint_format == "delta":
        if not config.world_base_model:
            raise ValueError(f"{source}: a delta checkpoint needs world_base_model in its config.json")
        base_config = copy.deepcopy(config)
        base_config.world_checkpoint_format = "full"
        base_vocab = _delta_base_vocab(config, hub_kwargs)
        base_config.get_text_config().vocab_size = base_vocab
        token = _CONVERTING_GEMMA.set(True)  # the world tensors come from the delta file below: not "missing"
        try:
            model = cls.load_weights(config.world_base_model, config=base_config, **load_kwargs)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{source}: cannot load its world_base_model {config.world_base_model!r} (a delta checkpoint applies "
                f"on top of it): {first_line(error)}"
            ) from None
        finally:
            _CONVERTING_GEMMA.reset(token)
        ensure_embedding_rows(model, int(config.get_text_config().vocab_size))
        try:
            delta_file = cached_file(source, "model.safetensors", **hub_kwargs)
        except Exception as error:
            raise ValueError(f"{source}: delta checkpoint without model.safetensors: {first_line(error)}") from None
        delta = load_file(str(delta_file))
        result = model.load_state_dict(delta, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{source}: delta checkpoint has unknown tensors, e.g. {result.unexpected_keys[0]}")
        model.config.world_checkpoint_format = "full"
        model.config.get_text_config().vocab_size = config.get_text_config().vocab_size
    else:
        model = cls.load_weights(source, config=config, **load_kwargs)
    base_processor = _load_processor(source, hub_kwargs)
    model.processor = build_processor(base_processor, model.config)
    if model.config.enable_world:
        attach_cosmos_vae(model, source, hub_kwargs)
    model.freeze()
    return model


def checkpoint_state_dict(model: Any, state_dict: dict[str, torch.Tensor] | None, delta: bool) -> dict[str, Any]:
    """What `save_pretrained` writes: never the VAE; with `delta`, only what differs from the base checkpoint."""
    state = model.state_dict() if state_dict is None else state_dict
    state = {k: v for k, v in state.items() if not k.startswith("cosmos_encoder.")}
    if not delta:
        return state
    config: TheWorldConfig = model.config
    if not config.world_base_model:
        raise ValueError("save_pretrained(delta=True): config.world_base_model is not set (nothing to diff against)")
    prefixes: tuple[str, ...] = WORLD_PREFIXES
    if not config.freeze_gemma_vision:
        prefixes += VISION_PREFIXES
    if not config.freeze_gemma_language:
        prefixes += LANGUAGE_PREFIXES
    keep = {k: v for k, v in state.items() if k.startswith(prefixes)}
    if EMBEDDING_KEY in state and _delta_base_vocab(config, {}) != int(state[EMBEDDING_KEY].shape[0]):
        keep[EMBEDDING_KEY] = state[EMBEDDING_KEY]  # the matrix grew: its new rows differ from the base
    return keep


class WorldLoadingMixin:
    """Mixed into `TheWorld`: `from_pretrained` that converts Gemma 3 checkpoints and reloads TheWorld ones."""

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], *model_args: Any, config: Any = None, **kwargs: Any
    ) -> Any:
        """Load a TheWorld from a Gemma 3 checkpoint (converting it) or from a saved TheWorld.

        World settings (`enable_world`, `cosmos_model_name`, `world_image_size`, `world_projection_mode`,
        `world_pool_size`, `num_world_steps`, `max_world_steps`, `world_rollout_steps`, `world_rollout_guidance`,
        `world_rollout_seed`, `world_projector_hidden_size`, `freeze_gemma_vision`, `freeze_gemma_language`,
        `freeze_cosmos_vae`) are keyword arguments; everything else (`dtype`, `device_map`, Hub options) goes to
        transformers' `from_pretrained`. The world-latent cache is not a setting: see `TheWorld.enable_world_cache`.
        """
        source = str(pretrained_model_name_or_path)
        if isinstance(pretrained_model_name_or_path, Path) or Path(source).expanduser().is_dir():
            source = str(Path(source).expanduser())
        world_kwargs = {k: kwargs.pop(k) for k in (*STRUCTURAL_KWARGS, *RUNTIME_KWARGS) if k in kwargs}
        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        if config is None or isinstance(config, (str, os.PathLike)):
            config = _load_config(str(config or source), hub_kwargs)
        if isinstance(config, TheWorldConfig):
            config = _apply_overrides(config, world_kwargs, source)
            return load_world(cls, source, config, {**kwargs, "model_args": model_args})
        if isinstance(config, Gemma3Config):
            return convert_gemma(cls, source, config, world_kwargs, {**kwargs, "model_args": model_args})
        raise ValueError(
            f"{source}: expected a Gemma 3 or TheWorld checkpoint (model_type 'gemma3' or 'theworld'), "
            f"got model_type={getattr(config, 'model_type', None)!r}"
        )

    @classmethod
    def from_checkpoint_hub(cls, repo_id: str, checkpoint_name: str | None = None, **kwargs: Any) -> Any:
        """Load a training run pushed to the Hub: its final model, or `checkpoint_name` ("checkpoint-500",
        "last-checkpoint"). Downloads only the files loading needs, then `from_pretrained(local_path, **kwargs)`;
        an unknown checkpoint name is a one-line `ValueError` listing the pushed ones.
        """
        return hub_loading.from_checkpoint_hub(cls, repo_id, checkpoint_name, **kwargs)

    def _adjust_missing_and_unexpected_keys(self, loading_info: Any) -> None:
        super()._adjust_missing_and_unexpected_keys(loading_info)  # type: ignore[misc]
        if _CONVERTING_GEMMA.get():
            fresh = {k for k in loading_info.missing_keys if k.startswith(WORLD_PREFIXES)}
            loading_info.missing_keys = set(loading_info.missing_keys) - fresh
            logger.info("%d world tensors not in the Gemma 3 weights: initialized, or read from a delta", len(fresh))

    @classmethod
    def load_weights(cls, source: str, *, config: Any, model_args: tuple[Any, ...] = (), **kwargs: Any) -> Any:
        """transformers' own `from_pretrained` (weights + config), without TheWorld's conversion logic."""
        return super().from_pretrained(source, *model_args, config=config, **kwargs)  # type: ignore[misc]
