"""The memory planner: parameters and per-GPU training memory of a training config, for four freeze sets.

This module is the memory model (`plan_memory` -> `MemoryPlan`); its tables, JSON and command line
(`python -m theworld.plan --config ...`) are in `theworld.plan.report`.

The model is built on the meta device (`theworld.plan.meta`), so parameter counts are the real modules' and nothing
is allocated. Memory per GPU is the sum of the rows below (GiB = 2**30 bytes, the unit of PyTorch's allocator
messages), for each freeze set: projection only, + vision, + language, full (incl. the VAE).

Accounting (T = parameters that receive gradients, P = all parameters, N = GPUs; FSDP divides what it shards by N)
-------------------------------------------------------------------------------------------------------------
- weights: P x 4 bytes with float32 weights (what `theworld.training.build.build_model` loads; bf16/fp16 run as
  autocast on top), P x 2 with `--weights-dtype bf16`. FSDP (full shard) shards the model's own parameters; modules
  kept outside the model tree (a frozen VAE, the rollout's Cosmos transformer, loaded in the VAE's dtype) stay whole
  on each GPU. The rollout's T5 encoder is counted in the parameter table but not here: `theworld.modeling.rollout`
  runs it once on its fixed prompt and frees it before the transformer loads.
- master weights: T x 4 with bf16 weights only (a float32 copy the optimizer updates); float32 weights are their own
  master copy.
- gradients: T x (weight bytes), gradients have the parameters' dtype.
- optimizer: AdamW's two moments, T x 8 (float32; torch keeps them in the parameter dtype, float32 here; with bf16
  weights the planner assumes a mixed-precision optimizer keeping float32 moments, the usual 2+2+4+8 = 16 B/param).
- DDP gradient buckets: T x (weight bytes) with DDP over N > 1 GPUs (DDP copies gradients into its all-reduce
  buckets; a single GPU is not wrapped).
- 16-bit weight copies: under autocast over float32 weights, every matmul/convolution weight on the backward path
  is cast to 16 bits and that copy is saved for backward (frozen ones too: the input gradient needs it), 2 bytes
  per weight; with gradient checkpointing only the lm_head copy and one layer's stay. Under FSDP these are instead
  the all-gathered units: the embedding/lm_head unit (kept gathered) plus two decoder layers (the current one and the
  prefetched next) in the compute dtype.
- activations: what autograd saves (see `theworld.plan.activations` for the per-layer formulas), for the micro-batch
  of one GPU; the LM always backpropagates (the world projector upstream of it trains), SigLIP and the VAE only when
  they train. Gradient checkpointing keeps each layer's input instead of its activations.
- peak temporaries: the larger of the loss's vocab-wide float32 gradient buffers at the start of backward, and one
  layer's backward working set (two layers' worth with checkpointing: the recomputed activations plus their
  gradients).
Not modelled: the CUDA context and library workspaces (~0.5-1 GiB), NCCL buffers, allocator fragmentation, the
dataloader's pinned memory; see docs/training/memory.md.

[Contract] a plan's total per freeze set is the sum of its rows; planning leaves the meta model with the config's
freeze set; nothing here allocates tensor storage or downloads weights.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from theworld.constants import VAE_LATENT_CHANNELS
from theworld.plan import activations as act
from theworld.plan.meta import (
    FREEZE_SETS,
    FreezeSet,
    MetaWorld,
    ModelFacts,
    ParameterCounts,
    PlanError,
    apply_freeze_set,
    build_meta_world,
    count_parameters,
    freeze_set_of,
    model_facts,
)
from theworld.training.config import TrainingConfig

logger = logging.getLogger(__name__)

Strategy = Literal["ddp", "fsdp"]
ComputeDtype = Literal["bf16", "fp16", "fp32"]
WeightsDtype = Literal["fp32", "bf16"]
GIB = 2**30
_COMPUTE_OF_MIXED_PRECISION: dict[str, ComputeDtype] = {"bf16": "bf16", "fp16": "fp16", "no": "fp32"}

MEMORY_ROWS: dict[str, str] = {
    "weights": "weights",
    "master_weights": "master weights (fp32)",
    "gradients": "gradients",
    "optimizer": "optimizer (AdamW m, v)",
    "ddp_buckets": "DDP gradient buckets",
    "working_copies": "16-bit weight copies (autocast)",
    "activations": "activations (saved)",
    "peak_temporaries": "peak temporaries",
}


@dataclass(frozen=True)
class PlanOptions:
    """How the run is launched; `None` takes the training config's value."""

    gpus: int = 1
    strategy: Strategy = "ddp"
    batch_size: int | None = None  # per GPU (the config's batch_size)
    seq_text_len: int | None = None  # text tokens per example (None = max_length minus image and world tokens)
    dtype: ComputeDtype | None = None  # compute precision (None = the config's mixed_precision)
    weights_dtype: WeightsDtype = "fp32"
    gradient_checkpointing: bool | None = None  # None = the config's use_gradient_checkpointing

    def validate(self) -> None:
        if self.gpus < 1:
            raise PlanError(f"--gpus {self.gpus}: expected an integer >= 1")
        if self.strategy not in ("ddp", "fsdp"):
            raise PlanError(f"--strategy {self.strategy!r}: expected 'ddp' or 'fsdp'")
        if self.batch_size is not None and self.batch_size < 1:
            raise PlanError(f"--batch-size {self.batch_size}: expected an integer >= 1")
        if self.seq_text_len is not None and self.seq_text_len < 0:
            raise PlanError(f"--seq-text-len {self.seq_text_len}: expected an integer >= 0")
        if self.dtype not in (None, "bf16", "fp16", "fp32"):
            raise PlanError(f"--dtype {self.dtype!r}: expected bf16, fp16 or fp32")
        if self.weights_dtype not in ("fp32", "bf16"):
            raise PlanError(f"--weights-dtype {self.weights_dtype!r}: expected fp32 or bf16")


@dataclass(frozen=True)
class SequenceLength:
    """Tokens of one example: text + Gemma's image tokens + world placeholders + `<start_of_world>`/`<end_of_world>`."""

    text: int
    image: int
    world: int
    markers: int

    @property
    def total(self) -> int:
        return self.text + self.image + self.world + self.markers


@dataclass(frozen=True)
class RunSettings:
    """The resolved settings the plan was computed for."""

    gpus: int
    strategy: Strategy
    batch_size: int
    dtype: ComputeDtype
    weights_dtype: WeightsDtype
    gradient_checkpointing: bool
    regime: act.Regime  # weights as stored + compute: amp (fp32 weights, 16-bit autocast), pure16 or fp32
    activation_regime: act.Regime  # what activations are saved in: FSDP's mixed precision gathers 16-bit weights


@dataclass
class MemoryPlan:
    """Parameters and per-GPU memory (bytes) of one training config under every freeze set."""

    config_path: str | None
    sources: dict[str, str]
    world: dict[str, Any]
    settings: RunSettings
    sequence: SequenceLength
    parameters: ParameterCounts
    freeze_sets: list[FreezeSet]
    config_freeze_set: str
    memory: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, freeze_key: str) -> int:
        return sum(self.memory[freeze_key].values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts in parameters, memory in bytes (and GiB)."""
        return {
            "config": self.config_path,
            "sources": self.sources,
            "world": self.world,
            "settings": asdict(self.settings),
            "sequence": {**asdict(self.sequence), "total": self.sequence.total},
            "config_freeze_set": self.config_freeze_set,
            "freeze_sets": [asdict(freeze) for freeze in self.freeze_sets],
            "parameters": {
                "total": self.parameters.total,
                "trainable": self.parameters.trainable,
            },
            "memory_bytes": {key: {**rows, "total": self.total(key)} for key, rows in self.memory.items()},
            "memory_gib": {
                key: {name: round(value / GIB, 3) for name, value in {**rows, "total": self.total(key)}.items()}
                for key, rows in self.memory.items()
            },
        }


# ---- settings ----
def resolve_settings(config: TrainingConfig, options: PlanOptions) -> RunSettings:
    options.validate()
    dtype: ComputeDtype = options.dtype or _COMPUTE_OF_MIXED_PRECISION[config.mixed_precision]
    if options.weights_dtype == "bf16" and dtype == "fp32":
        raise PlanError("--weights-dtype bf16 with --dtype fp32: 16-bit weights need a 16-bit compute dtype")
    if dtype == "fp32":
        regime: act.Regime = "fp32"
    else:
        regime = "amp" if options.weights_dtype == "fp32" else "pure16"
    # FSDP's mixed-precision policy all-gathers the parameters in 16 bits: the forward runs in 16 bits end to end.
    activation_regime: act.Regime = "pure16" if options.strategy == "fsdp" and regime == "amp" else regime
    checkpointing = (
        config.use_gradient_checkpointing if options.gradient_checkpointing is None else options.gradient_checkpointing
    )
    return RunSettings(
        gpus=options.gpus,
        strategy=options.strategy,
        batch_size=options.batch_size or config.batch_size,
        dtype=dtype,
        weights_dtype=options.weights_dtype,
        gradient_checkpointing=bool(checkpointing),
        regime=regime,
        activation_regime=activation_regime,
    )


def sequence_length(meta: MetaWorld, config: TrainingConfig, seq_text_len: int | None) -> SequenceLength:
    """Gemma's image tokens + `num_world_tokens` + the 2 world markers + text (default: what `max_length` leaves)."""
    world_config = meta.world_config
    image = int(world_config.mm_tokens_per_image or 0)
    world = world_config.num_world_tokens()
    markers = 2 if world_config.enable_world else 0
    text = seq_text_len
    if text is None:
        text = config.max_length - image - world - markers
        if text < 0:
            raise PlanError(
                f"max_length={config.max_length} is shorter than one picture's {image} image + {world + markers} "
                "world tokens: pass --seq-text-len"
            )
    return SequenceLength(text=text, image=image, world=world, markers=markers)


# ---- memory ----
def _weight_bytes(settings: RunSettings) -> int:
    """Bytes of one stored weight (and of its gradient)."""
    return 2 if settings.weights_dtype == "bf16" else 4


def _working_copies(
    settings: RunSettings, facts: ModelFacts, freeze: FreezeSet, trains: bool, enable_world: bool
) -> int:
    """Bytes of 16-bit weight copies held through a step: autocast's saved casts (DDP) or FSDP's gathered units."""
    compute = act.activation_bytes(settings.regime)
    if settings.strategy == "fsdp":
        # The embedding/lm_head unit stays gathered; decoder or SigLIP layers are gathered one (plus one prefetched)
        # at a time; a unit that trains also holds its unsharded gradients until the reduce-scatter, the largest
        # being the embedding/lm_head's when the language model trains.
        largest = max(facts.lm_largest_layer, facts.vision_largest_layer)
        unit_grads = max(
            0 if freeze.freeze_language else max(facts.lm_head, facts.lm_largest_layer),
            0 if freeze.freeze_vision else facts.vision_largest_layer,
        )
        return compute * (facts.lm_head + 2 * largest + unit_grads)
    if settings.regime != "amp" or not trains:
        return 0  # weights already in the compute dtype (or no backward at all)
    checkpointing = settings.gradient_checkpointing
    copies = facts.lm_head + (facts.lm_largest_layer_matrices if checkpointing else facts.lm_layer_matrices)
    if enable_world:
        copies += facts.world_matrices
    if not freeze.freeze_vision:
        layers = facts.vision_largest_layer_matrices if checkpointing else facts.vision_layer_matrices
        copies += layers + facts.vision_other_matrices  # the patch convolution and Gemma's projector
    if not freeze.freeze_vae:
        copies += facts.vae_encoder_matrices  # diffusers' Wan VAE does not support gradient checkpointing
    return 2 * copies


def _activations(
    meta: MetaWorld, settings: RunSettings, sequence: SequenceLength, freeze: FreezeSet
) -> tuple[int, int]:
    """(saved for backward, peak temporaries) in bytes for one GPU's micro-batch."""
    regime = settings.activation_regime
    world_config = meta.world_config
    decoder = act.DecoderShape.from_config(world_config.get_text_config())
    batch = settings.batch_size
    tokens = batch * sequence.total
    checkpointing = settings.gradient_checkpointing
    layer = act.gemma_layer_bytes_per_token(decoder, regime)
    kept = act.gemma_layer_input_bytes_per_token(decoder, regime) if checkpointing else layer
    saved = tokens * (
        decoder.layers * kept
        + act.gemma_head_bytes_per_token(decoder, regime)
        + act.logits_saved_bytes_per_token(decoder)
    )
    if world_config.enable_world:
        side = world_config.world_latent_size
        latents = (batch, VAE_LATENT_CHANNELS, world_config.num_latent_frames(), side, side)
        saved += act.world_projector_bytes(meta.model.world_projector, latents, regime)
    working = (2 if checkpointing else 1) * tokens * layer  # one layer's backward (+ its recomputed activations)
    if not freeze.freeze_vision:
        vision = act.EncoderShape.from_config(world_config.vision_config)
        vision_layer = act.siglip_layer_bytes_per_token(vision, regime)
        vision_kept = act.residual_bytes(regime) * vision.hidden if checkpointing else vision_layer
        patches = batch * vision.patches  # one picture per example
        saved += patches * (vision.layers * vision_kept + act.siglip_extra_bytes_per_token(vision, regime))
        working = max(working, (2 if checkpointing else 1) * patches * vision_layer)
    if not freeze.freeze_vae and meta.vae is not None:
        size = world_config.world_image_size
        saved += act.vae_encoder_bytes(meta.vae, (batch, 3, 1, size, size), regime)
    return saved, max(tokens * act.logits_peak_extra_bytes_per_token(decoder), working)


def memory_rows(
    meta: MetaWorld, facts: ModelFacts, settings: RunSettings, sequence: SequenceLength, freeze: FreezeSet
) -> dict[str, int]:
    """Bytes per GPU, row by row (`MEMORY_ROWS`), for one freeze set (applied to the meta model here)."""
    apply_freeze_set(meta, freeze)
    model = meta.model
    in_tree = sum(p.numel() for p in model.parameters())  # a trainable VAE is a submodule, a frozen one is not
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with_grads = trainable - (facts.vae_unused if not freeze.freeze_vae else 0)
    outside = facts.external_frozen + (
        sum(p.numel() for p in meta.vae.parameters()) if meta.vae is not None and freeze.freeze_vae else 0
    )
    shards = settings.gpus if settings.strategy == "fsdp" else 1
    weight = _weight_bytes(settings)
    trains = trainable > 0
    rows = dict.fromkeys(MEMORY_ROWS, 0)
    rows["weights"] = in_tree * weight // shards + outside * weight
    if settings.weights_dtype == "bf16":
        rows["master_weights"] = with_grads * 4 // shards
    rows["gradients"] = with_grads * weight // shards
    rows["optimizer"] = with_grads * 8 // shards
    if settings.strategy == "ddp" and settings.gpus > 1:
        rows["ddp_buckets"] = with_grads * weight
    rows["working_copies"] = _working_copies(settings, facts, freeze, trains, meta.world_config.enable_world)
    if trains:
        rows["activations"], rows["peak_temporaries"] = _activations(meta, settings, sequence, freeze)
    return rows


def plan_memory(
    config: TrainingConfig, options: PlanOptions | None = None, config_path: str | None = None
) -> MemoryPlan:
    """Build `config`'s model on the meta device and plan parameters and per-GPU memory for every freeze set."""
    options = options or PlanOptions()
    settings = resolve_settings(config, options)
    meta = build_meta_world(config)
    own = freeze_set_of(config)
    freeze_sets = list(FREEZE_SETS) + ([own] if own.key == "config" else [])
    parameters = count_parameters(meta, tuple(freeze_sets))
    facts = model_facts(meta)
    logger.debug("model facts for %s: %s", config_path or "config", facts)
    sequence = sequence_length(meta, config, options.seq_text_len)
    world_config = meta.world_config
    plan = MemoryPlan(
        config_path=config_path,
        sources={name: source.describe() for name, source in meta.sources.items()},
        world={
            "enable_world": world_config.enable_world,
            "world_projection_mode": world_config.world_projection_mode,
            "world_image_size": world_config.world_image_size,
            "num_world_steps": world_config.num_world_steps,
            "tokenizer_size": meta.tokenizer_size,
            "embedding_rows": int(world_config.get_text_config().vocab_size),
        },
        settings=settings,
        sequence=sequence,
        parameters=parameters,
        freeze_sets=freeze_sets,
        config_freeze_set=own.key,
    )
    try:
        for freeze in freeze_sets:
            plan.memory[freeze.key] = memory_rows(meta, facts, settings, sequence, freeze)
    finally:
        apply_freeze_set(meta, own)
    return plan


# The output and the command line moved to `theworld.plan.report` (which imports this module); re-exported here.
from theworld.plan.report import build_parser, format_count, format_plan, main, memory_unit  # noqa: E402

__all__ = [
    "GIB",
    "MEMORY_ROWS",
    "ComputeDtype",
    "MemoryPlan",
    "PlanOptions",
    "RunSettings",
    "SequenceLength",
    "Strategy",
    "WeightsDtype",
    "build_parser",
    "format_count",
    "format_plan",
    "main",
    "memory_rows",
    "memory_unit",
    "plan_memory",
    "resolve_settings",
    "sequence_length",
]
