"""`CosmosRollout`: future world latents from one picture with Cosmos-Predict2 Video2World (diffusers), no guardrail,
no resident T5.

`CosmosRollout.from_pretrained(cosmos_model_name, encoder=...)` loads the checkpoint's `transformer/` and `scheduler/`
one by one and builds a `Cosmos2VideoToWorldPipeline` around them and the caller's already-loaded VAE (TheWorld's
`CosmosWorldEncoder`), so the VAE is never loaded twice. `rollout(pixels, num_world_steps, seed, ...)` then returns
normalized latents [B, 16, 1 + steps // 4, S/8, S/8], in the space of `CosmosWorldEncoder`.

The text side: the Video2World transformer is conditioned on a T5-11B embedding of a prompt (the encoder alone is
~4.7 B parameters). Rollouts here always use the same, fixed `CONDITIONING_PROMPT` (and Cosmos' own negative prompt
for classifier-free guidance), so both are encoded ONCE per checkpoint: T5 and its tokenizer are loaded, run, and
freed (`del` + `gc.collect()`, before the transformer is loaded, so they are never resident together); the
embeddings go to a safetensors file in a cache directory keyed by the checkpoint and the prompts, and to an in-memory
cache. Later loads, in this process or another, never load T5. The embeddings are not model weights and are never
saved in a TheWorld checkpoint. Cache directory: `prompt_cache_dir`, else `$THEWORLD_PROMPT_CACHE`, else
`$HF_HOME/theworld/cosmos_prompt_embeds`. That text side is in `theworld.modeling.rollout_prompt`.

Frame 0, measured (diffusers 0.42, `tests/test_rollout.py`): the pipeline encodes the conditioning picture (repeated
to `num_frames`) with the causal Wan VAE, whose first latent frame equals the single-picture encoding exactly, but it
draws a posterior *sample* (`retrieve_latents(..., sample_mode="sample")`), not the mean; its output frame 0 is that
normalized sample plus a residual (80·ε − x)·σ_min/σ_max = 2.5e-5·(80·ε − x) from the last Euler step. So Cosmos'
frame 0 is not the conditioning frame of `CosmosWorldEncoder` (the posterior mean): they differ by the posterior
noise. `rollout` therefore replaces frame 0 by the mean encoding; frames 1.. are Cosmos' predictions.

[Contract] `rollout(...)[:, :, :1]` equals `CosmosWorldEncoder(pixels)` (the same VAE, the same normalization);
the same (picture, seed, steps, inference steps, guidance) gives the same latents whatever the batch it is in
(one generator per picture, all seeded with `seed`); `num_world_steps` is a multiple of 4 (the Wan VAE compresses
time by 4: `num_frames = 1 + steps` frames make `1 + steps // 4` latent frames, and other counts would silently drop
frames).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from theworld.constants import VAE_LATENT_CHANNELS, VAE_TEMPORAL_FACTOR
from theworld.errors import first_line
from theworld.modeling.cosmos_encoder import CosmosWorldEncoder, load_cosmos_vae

# The text side (prompt embeddings, their caches, the guardrail stand-in) lives in `rollout_prompt`; re-exported here.
from theworld.modeling.rollout_prompt import (
    CONDITIONING_PROMPT,
    PROMPT_CACHE_ENV,
    PROMPT_CACHE_VERSION,
    PROMPT_MAX_SEQUENCE_LENGTH,
    TEXT_ENCODER_SUBFOLDER,
    TOKENIZER_SUBFOLDER,
    GuardrailStandIn,
    checkpoint_identity,
    clear_prompt_memory_cache,
    default_negative_prompt,
    default_prompt_cache_dir,
    encode_prompts_with_t5,
    load_prompt_embeddings,
    prompt_cache_file,
    prompt_cache_key,
)

logger = logging.getLogger(__name__)

ROLLOUT_FPS = 16  # the pipeline's default frame rate conditioning
DEFAULT_ROLLOUT_STEPS = 35  # Cosmos-Predict2's default number of denoising steps
DEFAULT_ROLLOUT_GUIDANCE = 7.0  # Cosmos-Predict2's default classifier-free guidance scale
TRANSFORMER_SUBFOLDER = "transformer"
SCHEDULER_SUBFOLDER = "scheduler"
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")

__all__ = [
    "CONDITIONING_PROMPT",
    "DEFAULT_ROLLOUT_GUIDANCE",
    "DEFAULT_ROLLOUT_STEPS",
    "HUB_KWARGS",
    "PROMPT_CACHE_ENV",
    "PROMPT_CACHE_VERSION",
    "PROMPT_MAX_SEQUENCE_LENGTH",
    "ROLLOUT_FPS",
    "SCHEDULER_SUBFOLDER",
    "TEXT_ENCODER_SUBFOLDER",
    "TOKENIZER_SUBFOLDER",
    "TRANSFORMER_SUBFOLDER",
    "CosmosRollout",
    "GuardrailStandIn",
    "checkpoint_identity",
    "clear_prompt_memory_cache",
    "cosmos_source",
    "default_negative_prompt",
    "default_prompt_cache_dir",
    "encode_prompts_with_t5",
    "load_prompt_embeddings",
    "prompt_cache_file",
    "prompt_cache_key",
    "validate_world_steps",
]


def validate_world_steps(steps: Any, max_world_steps: int, field: str = "num_world_steps") -> int:
    """`steps` as an int, or a one-line `ValueError` naming `field`: an integer in [0, max], a multiple of 4."""
    if isinstance(steps, torch.Tensor) and steps.numel() == 1:
        steps = steps.item()
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"{field}={steps!r}: expected an integer (0, 4, 8, ...)")
    if steps < 0:
        raise ValueError(f"{field}={steps}: expected an integer >= 0")
    if steps > max_world_steps:
        raise ValueError(
            f"{field}={steps} exceeds max_world_steps={max_world_steps}: raise max_world_steps or predict fewer steps"
        )
    if steps % VAE_TEMPORAL_FACTOR:
        raise ValueError(
            f"{field}={steps}: expected a multiple of {VAE_TEMPORAL_FACTOR} (the Wan VAE turns 1 + 4k frames into "
            f"1 + k latent frames), e.g. {steps - steps % VAE_TEMPORAL_FACTOR} or "
            f"{steps - steps % VAE_TEMPORAL_FACTOR + VAE_TEMPORAL_FACTOR}"
        )
    return steps


def cosmos_source(cosmos_model_name: str | Path) -> str:
    """A checkpoint name as the rollout records it: an existing directory expanded, a Hub id as is."""
    name = str(cosmos_model_name)
    local = Path(name).expanduser()
    return str(local) if local.is_dir() else name


def _load_component(loader: Any, cosmos_model_name: str, subfolder: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(cosmos_model_name, subfolder=subfolder, **kwargs)
    except Exception as error:  # the Hub client raises many types; the user needs one line naming the field
        raise ValueError(
            f"cosmos_model_name={cosmos_model_name!r}: could not load its {subfolder}/ for the world rollout "
            f"(expected a Cosmos-Predict2 Video2World checkpoint): {first_line(error)}"
        ) from None


class CosmosRollout:
    """A Cosmos-Predict2 Video2World pipeline without T5 and without the guardrail, sharing TheWorld's VAE.

    Build it with `CosmosRollout.from_pretrained`; call `rollout(pixels, num_world_steps, seed, ...)`.
    """

    def __init__(
        self,
        pipeline: Any,
        encoder: CosmosWorldEncoder,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor,
        source: str,
    ) -> None:
        self.pipeline = pipeline
        self.encoder = encoder
        self.prompt_embeds = prompt_embeds  # [1, L, D] float32, CPU (moved per call)
        self.negative_prompt_embeds = negative_prompt_embeds
        self.source = source
        pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(
        cls,
        cosmos_model_name: str | Path,
        encoder: CosmosWorldEncoder | None = None,
        dtype: torch.dtype | None = None,
        prompt_cache_dir: str | Path | None = None,
        prompt: str = CONDITIONING_PROMPT,
        negative_prompt: str | None = None,
        **hub_kwargs: Any,
    ) -> CosmosRollout:
        """Load `transformer/` and `scheduler/` of a Cosmos-Predict2 Video2World checkpoint (Hub id or directory).

        encoder: the already-loaded `CosmosWorldEncoder` whose VAE the pipeline shares (default: load `vae/`).
        dtype: of the transformer (default: the encoder's VAE dtype). hub_kwargs: `cache_dir` (the Hub's), `token`,
        `revision`, `local_files_only`, `force_download`. The prompt embeddings come from
        `load_prompt_embeddings` (T5 runs only when they are not cached yet, and is freed before the transformer
        loads).
        """
        from diffusers import Cosmos2VideoToWorldPipeline, CosmosTransformer3DModel, FlowMatchEulerDiscreteScheduler

        name = cosmos_source(cosmos_model_name)
        hub = {k: v for k, v in hub_kwargs.items() if k in HUB_KWARGS}
        unknown = sorted(set(hub_kwargs) - set(HUB_KWARGS))
        if unknown:
            raise ValueError(f"CosmosRollout.from_pretrained: unknown keyword {unknown[0]!r} (expected {HUB_KWARGS})")
        if encoder is None:
            encoder = CosmosWorldEncoder(load_cosmos_vae(name, dtype=dtype, **hub))
        dtype = dtype or encoder.vae_dtype
        # T5 first, and gone before the 2 B transformer arrives: the two are never resident together.
        prompt_embeds, negative = load_prompt_embeddings(
            name, prompt, negative_prompt, prompt_cache_dir, device=encoder.device, hub_kwargs=hub
        )
        transformer: Any = _load_component(
            CosmosTransformer3DModel, name, TRANSFORMER_SUBFOLDER, torch_dtype=dtype, **hub
        )
        scheduler: Any = _load_component(FlowMatchEulerDiscreteScheduler, name, SCHEDULER_SUBFOLDER, **hub)
        if int(transformer.config.in_channels) != VAE_LATENT_CHANNELS + 1:
            raise ValueError(
                f"cosmos_model_name={name!r}: {TRANSFORMER_SUBFOLDER}/ has in_channels="
                f"{transformer.config.in_channels}, expected {VAE_LATENT_CHANNELS + 1} (a Video2World transformer)"
            )
        if int(transformer.config.text_embed_dim) != int(prompt_embeds.shape[-1]):
            raise ValueError(
                f"cosmos_model_name={name!r}: {TRANSFORMER_SUBFOLDER}/ expects text_embed_dim="
                f"{transformer.config.text_embed_dim} but its T5 embeds {prompt_embeds.shape[-1]} features"
            )
        transformer.requires_grad_(False).eval()
        pipeline = Cosmos2VideoToWorldPipeline(
            text_encoder=None,  # pyright: ignore[reportArgumentType]  (prompt embeddings are cached instead)
            tokenizer=None,  # pyright: ignore[reportArgumentType]
            transformer=transformer,
            vae=encoder.vae,  # pyright: ignore[reportArgumentType]
            scheduler=scheduler,
            safety_checker=GuardrailStandIn(),  # pyright: ignore[reportArgumentType]  (see GuardrailStandIn)
        )
        pipeline.transformer.to(encoder.device)
        return cls(pipeline, encoder, prompt_embeds, negative, source=name)

    # ---- state ----
    @property
    def text_encoder(self) -> Any:
        """Always None: T5 is never kept (the rollout runs on cached prompt embeddings)."""
        return self.pipeline.text_encoder

    def use_encoder(self, encoder: CosmosWorldEncoder) -> None:
        """Share another (e.g. re-attached or fine-tuned) VAE wrapper."""
        self.encoder = encoder
        self.pipeline.register_modules(vae=encoder.vae)

    def _to(self, device: torch.device) -> None:
        if self.pipeline.transformer.device != device:
            self.pipeline.transformer.to(device)
        if self.encoder.device != device:
            self.encoder.to(device)

    # ---- the call ----
    @torch.no_grad()
    def rollout(
        self,
        pixels: torch.Tensor,
        num_world_steps: int,
        seed: int = 0,
        num_inference_steps: int = DEFAULT_ROLLOUT_STEPS,
        guidance_scale: float = DEFAULT_ROLLOUT_GUIDANCE,
        first_frame: torch.Tensor | None = None,
        max_world_steps: int | None = None,
    ) -> torch.Tensor:
        """Pictures [B, 3, S, S] in [-1, 1] → normalized latents [B, 16, 1 + steps // 4, S/8, S/8] (float32).

        Frame 0 is the posterior-mean encoding (`first_frame` if the caller already has it, else computed); frames
        1.. are Cosmos' prediction of `num_world_steps` future frames with `num_inference_steps` Euler steps.
        `num_world_steps=0` returns frame 0 only (no diffusion).
        """
        unbounded = num_world_steps if isinstance(num_world_steps, int) else 0
        steps = validate_world_steps(num_world_steps, unbounded if max_world_steps is None else max_world_steps)
        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.shape[2] != pixels.shape[3] or pixels.shape[2] % 16:
            raise ValueError(
                f"rollout pixels: expected [B, 3, S, S] with S a multiple of 16, got {tuple(pixels.shape)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"rollout seed={seed!r}: expected an integer >= 0")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 2:
            raise ValueError(f"world_rollout_steps={num_inference_steps!r}: expected an integer >= 2")
        self._to(pixels.device)
        mean = self.encoder(pixels) if first_frame is None else first_frame  # [B, 16, 1, h, w]
        if steps == 0:
            return mean.float()
        batch, size = pixels.shape[0], pixels.shape[-1]
        device = pixels.device
        output = self.pipeline(
            # The pipeline's image processor expects [0, 1] tensors (it maps them to [-1, 1] itself); at size S it
            # does not resize (nearest interpolation to the same size is the identity).
            image=((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0),
            prompt_embeds=self.prompt_embeds.to(device).expand(batch, -1, -1),
            negative_prompt_embeds=self.negative_prompt_embeds.to(device).expand(batch, -1, -1),
            height=size,
            width=size,
            num_frames=1 + steps,
            num_inference_steps=num_inference_steps,
            guidance_scale=float(guidance_scale),
            fps=ROLLOUT_FPS,
            # One generator per picture, all with `seed`: a picture's rollout does not depend on its batch-mates.
            generator=[torch.Generator().manual_seed(seed) for _ in range(batch)],
            output_type="latent",
            return_dict=False,
        )[0]
        sigma_data = float(self.pipeline.scheduler.config.get("sigma_data", 1.0))
        latents = output.float() / sigma_data  # the pipeline scales normalized latents by sigma_data (1.0)
        # Frame 0: Cosmos returns a posterior sample (see the module docstring); use the deterministic mean.
        return torch.cat([mean.float().to(latents.device), latents[:, :, 1:]], dim=2)
