"""TheWorld and its Cosmos modules built on the meta device from config files, and their parameter counts.

Config files come from, in order: a local directory (a checkpoint, or the tiny ones of `theworld.testing`), the
configs shipped in this package (`configs/<hub id>/...`: google/gemma-3-4b-it and
nvidia/Cosmos-Predict2-2B-Video2World, no weights), else the Hub (only `config.json` files are fetched, through
transformers' / diffusers' own loaders, so `HF_HUB_OFFLINE` and the local cache apply).

The model is the real thing: `TheWorld(TheWorldConfig.from_gemma_config(...))`, the Wan VAE wrapped in
`CosmosWorldEncoder` and attached with `set_world_encoder`, frozen with the model's own `freeze()`; parameter counts
come from the modules (`trainable_parameter_table`), not from formulas. On the meta device nothing is allocated:
building gemma-3-4b-it + the VAE takes about 0.1 s.

[Contract] `count_parameters` leaves the model with the training config's freeze set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, Gemma3Config, T5Config, T5EncoderModel
from transformers.modeling_layers import GradientCheckpointingLayer

from theworld.constants import COSMOS_VAE_SUBFOLDER
from theworld.errors import first_line
from theworld.modeling import TheWorld, TheWorldConfig
from theworld.modeling.cosmos_encoder import CosmosWorldEncoder
from theworld.modeling.loading import STRUCTURAL_KWARGS
from theworld.modeling.tokens import EMBEDDING_ROW_MULTIPLE
from theworld.training.config import TrainingConfig

logger = logging.getLogger(__name__)

SHIPPED_CONFIGS = Path(__file__).with_name("configs")
# len(tokenizer) of the shipped checkpoints (their tokenizers are not shipped): gemma-3-4b-it has 262,145 tokens for
# 262,208 embedding rows, so the three world tokens fit without growing the matrix (see theworld.modeling.tokens).
KNOWN_TOKENIZER_SIZES: dict[str, int] = {"google/gemma-3-4b-it": 262_145}
NUM_WORLD_SPECIAL_TOKENS = 3
TRANSFORMER_SUBFOLDER = "transformer"
TEXT_ENCODER_SUBFOLDER = "text_encoder"

# Components, in table order: the four of `FreezeMixin` plus the rollout's frozen Cosmos modules.
COMPONENTS = ("gemma_vision", "gemma_language", "world_projector", "cosmos_vae", "cosmos_transformer", "t5_encoder")
# Of the rollout's modules only the transformer stays on the GPU: `theworld.modeling.rollout` runs T5 once on its fixed
# prompt, caches the embeddings and frees T5 before the transformer loads, so T5 is never resident during training.
RESIDENT_EXTRAS = ("cosmos_transformer",)


class PlanError(ValueError):
    """A bad planner input; the message is one line naming the field or file."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class FreezeSet:
    """Which parts are frozen (True = frozen); the world projector and world token rows always train."""

    key: str
    label: str
    freeze_vision: bool
    freeze_language: bool
    freeze_vae: bool


FREEZE_SETS: tuple[FreezeSet, ...] = (
    FreezeSet("projection", "projection", True, True, True),
    FreezeSet("vision", "+ vision", False, True, True),
    FreezeSet("language", "+ language", False, False, True),
    FreezeSet("full", "full", False, False, False),
)


def freeze_set_of(config: TrainingConfig) -> FreezeSet:
    """The training config's freeze set: one of `FREEZE_SETS`, or a custom one keyed "config"."""
    flags = (config.freeze_gemma_vision, config.freeze_gemma_language, config.freeze_cosmos_vae)
    for candidate in FREEZE_SETS:
        if (candidate.freeze_vision, candidate.freeze_language, candidate.freeze_vae) == flags:
            return candidate
    return FreezeSet("config", "config", *flags)


@dataclass(frozen=True)
class ConfigSource:
    """Where a model's config files were read: `kind` is "local", "shipped" or "hub"."""

    name: str
    location: str
    kind: Literal["local", "shipped", "hub"]

    def describe(self) -> str:
        if self.kind == "shipped":
            return f"{self.name} (config shipped with theworld.plan)"
        if self.kind == "local":
            return f"{self.name} (local directory)"
        return f"{self.name} (Hub config)"


def resolve_source(name: str, required: str) -> ConfigSource:
    """A local directory if `name` is one, else the shipped copy if it has `required`, else the Hub id itself."""
    local = Path(name).expanduser()
    if local.is_dir():
        return ConfigSource(name, str(local), "local")
    shipped = SHIPPED_CONFIGS / name
    if (shipped / required).is_file():
        return ConfigSource(name, str(shipped), "shipped")
    return ConfigSource(name, name, "hub")


@dataclass
class MetaWorld:
    """The meta-device model of one training config."""

    model: TheWorld
    vae: nn.Module | None  # the Wan VAE inside the model's `CosmosWorldEncoder` (None with enable_world=False)
    extras: dict[str, nn.Module] = field(default_factory=dict)  # "cosmos_transformer", "t5_encoder" (rollout)
    sources: dict[str, ConfigSource] = field(default_factory=dict)
    tokenizer_size: int | None = None  # None = unknown (the world tokens are assumed to fit the embedding)

    @property
    def world_config(self) -> TheWorldConfig:
        return self.model.config


# ---- loading configs ----
def _load_gemma_config(source: ConfigSource, key: str) -> Gemma3Config:
    try:
        config = AutoConfig.from_pretrained(source.location)
    except Exception as error:  # OSError, HF hub errors: one line naming the field is what helps
        raise PlanError(
            f"{key}={source.name!r}: could not read config.json (expected a Gemma 3 or TheWorld checkpoint "
            f"directory, a shipped config or a reachable Hub id): {first_line(error)}"
        ) from None
    if not isinstance(config, Gemma3Config):
        raise PlanError(
            f"{key}={source.name!r}: expected a Gemma 3 or TheWorld config, "
            f"got model_type={getattr(config, 'model_type', None)!r}"
        )
    return config


def _load_diffusers_config(model_class: Any, source: ConfigSource, subfolder: str, why: str) -> dict[str, Any]:
    try:
        return dict(model_class.load_config(source.location, subfolder=subfolder))
    except Exception as error:
        raise PlanError(
            f"cosmos_model_name={source.name!r}: could not read {subfolder}/config.json ({why}): {first_line(error)}"
        ) from None


def _tokenizer_size(source: ConfigSource) -> int | None:
    """len(tokenizer) of a local checkpoint (read with AutoTokenizer), of a shipped one (known), else None."""
    if source.kind == "local":
        directory = Path(source.location)
        if any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            try:
                return len(AutoTokenizer.from_pretrained(source.location))
            except Exception as error:  # a broken tokenizer only costs the exact row count: say so, go on
                logger.warning(
                    "%s: could not read the tokenizer (%s); assuming the world tokens fit", source.name, error
                )
    return KNOWN_TOKENIZER_SIZES.get(source.name)


def _world_config(config: TrainingConfig, gemma: Gemma3Config, key: str, name: str) -> TheWorldConfig:
    """The TheWorldConfig `build_model` would produce for this training config (without loading anything)."""
    kwargs = config.model_kwargs()
    if isinstance(gemma, TheWorldConfig):
        # A saved TheWorld: structural settings must match it (as TheWorld.from_pretrained enforces), and an
        # init_from_checkpoint keeps the VAE source its checkpoint records (as training.build.build_model does).
        for structural in STRUCTURAL_KWARGS:
            if structural in kwargs and kwargs[structural] != getattr(gemma, structural):
                raise PlanError(
                    f"{structural}={kwargs[structural]!r} does not match the checkpoint {key}={name!r} "
                    f"({structural}={getattr(gemma, structural)!r}); it defines parameter shapes"
                )
        if config.init_from_checkpoint:
            kwargs.pop("cosmos_model_name")
    try:
        return TheWorldConfig.from_gemma_config(gemma, **kwargs)
    except ValueError as error:
        raise PlanError(f"{key}={name!r}: {first_line(error)}") from None


def _grow_vocab(world_config: TheWorldConfig, tokenizer_size: int | None, converting: bool) -> None:
    """Give the text config the embedding rows `ensure_embedding_rows` would grow to (usually none: Gemma pads)."""
    if tokenizer_size is None:
        return
    needed = tokenizer_size + (NUM_WORLD_SPECIAL_TOKENS if converting and world_config.enable_world else 0)
    text_config = world_config.get_text_config()
    rows = int(text_config.vocab_size)
    if needed > rows:
        multiple = EMBEDDING_ROW_MULTIPLE
        text_config.vocab_size = -(-needed // multiple) * multiple


def build_meta_world(config: TrainingConfig) -> MetaWorld:
    """TheWorld of `config` on the meta device, with its VAE (and, for num_world_steps > 0, the Cosmos transformer and
    T5 encoder a rollout needs) attached, frozen as `config` says."""
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    key = "init_from_checkpoint" if config.init_from_checkpoint else "model_name"
    name = config.init_from_checkpoint or config.model_name
    gemma_source = resolve_source(name, "config.json")
    gemma = _load_gemma_config(gemma_source, key)
    world_config = _world_config(config, gemma, key, name)
    tokenizer_size = _tokenizer_size(gemma_source)
    _grow_vocab(world_config, tokenizer_size, converting=not isinstance(gemma, TheWorldConfig))

    sources = {"model": gemma_source}
    vae_config: dict[str, Any] | None = None
    extra_configs: dict[str, Any] = {}
    if world_config.enable_world:
        cosmos_source = resolve_source(world_config.cosmos_model_name, f"{COSMOS_VAE_SUBFOLDER}/config.json")
        sources["cosmos"] = cosmos_source
        vae_config = _load_diffusers_config(
            AutoencoderKLWan, cosmos_source, COSMOS_VAE_SUBFOLDER, "the Wan VAE that encodes world pictures"
        )
        if world_config.num_world_steps > 0:
            why = "num_world_steps > 0 needs the Cosmos transformer and its T5 text encoder"
            extra_configs["cosmos_transformer"] = _load_diffusers_config(
                CosmosTransformer3DModel, cosmos_source, TRANSFORMER_SUBFOLDER, why
            )
            try:
                extra_configs["t5_encoder"] = T5Config.from_pretrained(
                    cosmos_source.location, subfolder=TEXT_ENCODER_SUBFOLDER
                )
            except Exception as error:
                raise PlanError(
                    f"cosmos_model_name={cosmos_source.name!r}: could not read {TEXT_ENCODER_SUBFOLDER}/config.json "
                    f"({why}): {first_line(error)}"
                ) from None

    with torch.device("meta"):
        model = TheWorld(world_config)
        # diffusers' `from_config` is typed to maybe return (model, unused kwargs); it returns the model here.
        vae: Any = AutoencoderKLWan.from_config(vae_config) if vae_config is not None else None
        encoder = CosmosWorldEncoder(vae) if vae is not None else None
        extras: dict[str, nn.Module] = {}
        if "cosmos_transformer" in extra_configs:
            transformer: Any = CosmosTransformer3DModel.from_config(extra_configs["cosmos_transformer"])
            extras["cosmos_transformer"] = transformer
            extras["t5_encoder"] = T5EncoderModel(extra_configs["t5_encoder"])
    for module in extras.values():
        module.requires_grad_(False)  # the rollout runs them frozen, for inference only
    if encoder is not None:
        model.set_world_encoder(encoder, trainable=not world_config.freeze_cosmos_vae)
    model.freeze()
    return MetaWorld(model=model, vae=vae, extras=extras, sources=sources, tokenizer_size=tokenizer_size)


# ---- counting ----
@dataclass(frozen=True)
class ParameterCounts:
    """Parameters per component (`total`) and trainable per component under each freeze set (`trainable`)."""

    total: dict[str, int]
    trainable: dict[str, dict[str, int]]

    def total_all(self) -> int:
        return sum(self.total.values())

    def trainable_all(self, freeze_key: str) -> int:
        return sum(self.trainable[freeze_key].values())


def apply_freeze_set(meta: MetaWorld, freeze: FreezeSet) -> None:
    """Freeze the meta model with the model's own `freeze()` (so the counts are exactly what training sees)."""
    meta.model.freeze(vision=freeze.freeze_vision, language=freeze.freeze_language, vae=freeze.freeze_vae)


def _extra_rows(meta: MetaWorld) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in meta.extras[name].parameters()) if name in meta.extras else 0
        for name in COMPONENTS[4:]
    }


def count_parameters(meta: MetaWorld, freeze_sets: tuple[FreezeSet, ...]) -> ParameterCounts:
    """Total and trainable parameters per component for every freeze set, read from `trainable_parameter_table`."""
    config = meta.world_config
    own = (config.freeze_gemma_vision, config.freeze_gemma_language, config.freeze_cosmos_vae)
    extra = _extra_rows(meta)
    total: dict[str, int] = {}
    trainable: dict[str, dict[str, int]] = {}
    try:
        for freeze in freeze_sets:
            apply_freeze_set(meta, freeze)
            rows = meta.model.trainable_parameter_table()
            total = {name: count for name, _, count in rows} | extra
            trainable[freeze.key] = {name: count for name, count, _ in rows} | dict.fromkeys(extra, 0)
    finally:
        meta.model.freeze(*own)
    return ParameterCounts(total=total, trainable=trainable)


def numel(module: nn.Module | None, matrices_only: bool = False) -> int:
    """Parameters of `module` (each shared tensor once); `matrices_only` keeps the weights of matmuls and
    convolutions (ndim >= 2, embedding lookups excluded), the ones autocast copies to 16 bits."""
    if module is None:
        return 0
    lookups = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    seen: set[int] = set()
    count = 0
    for parameter in module.parameters():
        if id(parameter) in seen or (matrices_only and (parameter.ndim < 2 or id(parameter) in lookups)):
            continue
        seen.add(id(parameter))
        count += parameter.numel()
    return count


@dataclass(frozen=True)
class ModelFacts:
    """Sizes the memory model needs, read from the meta modules (independent of the freeze set)."""

    lm_layer_matrices: int  # matmul weights of all decoder layers (16-bit autocast copies)
    lm_largest_layer: int  # parameters of the largest decoder layer (an FSDP unit)
    lm_largest_layer_matrices: int
    lm_head: int  # the lm_head matrix (tied to the input embeddings in Gemma 3)
    vision_layer_matrices: int  # matmul weights of all SigLIP encoder layers
    vision_other_matrices: int  # SigLIP's patch convolution + Gemma's multimodal projector
    vision_largest_layer: int
    vision_largest_layer_matrices: int
    world_matrices: int
    vae_encoder_matrices: int
    vae_unused: int  # the VAE's decoder: never run to encode, so a trainable VAE gets no gradients there
    external_frozen: int  # the rollout's resident Cosmos transformer (outside the model, frozen); T5 is not kept


def _checkpointed_layers(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks (`Gemma3DecoderLayer`, `SiglipEncoderLayer`): the units gradient checkpointing recomputes
    and FSDP wraps (the model's `_no_split_modules`)."""
    return [m for m in module.modules() if isinstance(m, GradientCheckpointingLayer)]


def model_facts(meta: MetaWorld) -> ModelFacts:
    model: Any = meta.model
    lm_layers = _checkpointed_layers(model.model.language_model)
    vision_layers = _checkpointed_layers(model.model.vision_tower)
    world = model.world_projector if meta.world_config.enable_world else None
    vae: Any = meta.vae
    return ModelFacts(
        lm_layer_matrices=sum(numel(layer, matrices_only=True) for layer in lm_layers),
        lm_largest_layer=max(numel(layer) for layer in lm_layers),
        lm_largest_layer_matrices=max(numel(layer, matrices_only=True) for layer in lm_layers),
        lm_head=model.lm_head.weight.numel(),
        vision_layer_matrices=sum(numel(layer, matrices_only=True) for layer in vision_layers),
        vision_other_matrices=numel(model.model.vision_tower, True)
        + numel(model.model.multi_modal_projector, True)
        - sum(numel(layer, matrices_only=True) for layer in vision_layers),
        vision_largest_layer=max((numel(layer) for layer in vision_layers), default=0),
        vision_largest_layer_matrices=max((numel(layer, matrices_only=True) for layer in vision_layers), default=0),
        world_matrices=numel(world, matrices_only=True),
        vae_encoder_matrices=numel(vae.encoder, True) + numel(vae.quant_conv, True) if vae is not None else 0,
        vae_unused=numel(vae.decoder) + numel(vae.post_quant_conv) if vae is not None else 0,
        external_frozen=sum(numel(meta.extras[name]) for name in RESIDENT_EXTRAS if name in meta.extras),
    )
