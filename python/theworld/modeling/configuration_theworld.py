"""`TheWorldConfig`: Gemma 3's config plus the world-model settings (Cosmos VAE, projection, world tokens).

transformers 5 configs are dataclasses: the world settings are typed fields, validated in `__post_init__` with the bad
value in the message (a `Literal` annotation alone would not reject one).
"""

from __future__ import annotations

from typing import Any

from transformers import Gemma3Config

from theworld.constants import (
    DEFAULT_COSMOS_MODEL,
    DEFAULT_WORLD_POOL_SIZE,
    PROJECTION_MODES,
    VAE_LATENT_CHANNELS,
    VAE_SPATIAL_FACTOR,
    VAE_TEMPORAL_FACTOR,
)

# Cosmos-Predict2 pipelines need height and width divisible by 16 (VAE factor 8 x transformer patch 2).
_WORLD_SIZE_MULTIPLE = 16


class TheWorldConfig(Gemma3Config):
    r"""Configuration of [`TheWorld`]: every field of [`Gemma3Config`] plus:

    enable_world (`bool`): add world tokens (False = the Gemma-only baseline, bit-exact with Gemma 3).
    cosmos_model_name (`str`): Hub id or directory of a Cosmos-Predict2 Video2World checkpoint; its `vae/` is loaded
        with the model, its `transformer/` and `scheduler/` on the first rollout (`text_encoder/` + `tokenizer/` only
        once per checkpoint, to embed the fixed rollout prompt; see `theworld.modeling.rollout`).
    world_image_size (`int`): side of the square picture given to the VAE (multiple of 16).
    world_projection_mode (`str`): `"spatial"` (one token per latent position, features = 16 channels),
        `"pooled"` (one token per `world_pool_size` x `world_pool_size` block of latent positions, their average;
        features = 16 channels) or `"channel"` (one token per latent channel, features = the flattened latent map).
    world_pool_size (`int`): side k of the average-pooling window of the `"pooled"` mode (default 2: 4x fewer world
        tokens than `"spatial"`); must divide the latent side `world_image_size / 8`. Ignored by the other modes.
    num_world_steps (`int`): future frames predicted by a Cosmos rollout (0 = encode the picture only); a multiple of
        4, since the Wan VAE turns 1 + 4k frames into 1 + k latent frames. Can be overridden per call.
    max_world_steps (`int`): upper bound for `num_world_steps` (sizes the temporal embedding table).
    world_rollout_steps (`int`): denoising (Euler) steps of a rollout; 35 is Cosmos-Predict2's default, fewer is
        faster and blurrier.
    world_rollout_guidance (`float`): classifier-free guidance scale of a rollout (7.0 is Cosmos-Predict2's default;
        1.0 disables guidance and halves the transformer calls).
    world_rollout_seed (`int`): seed of the rollout noise: world tokens are a deterministic function of the picture.
    world_projector_hidden_size (`int | None`): hidden width of the projector MLP (None = text hidden size).
    sow_token_id / eow_token_id / world_token_id (`int | None`): ids of `<start_of_world>`, `<end_of_world>` and the
        world placeholder, filled from the tokenizer when a Gemma checkpoint is converted.
    freeze_gemma_vision / freeze_gemma_language / freeze_cosmos_vae (`bool`): the freeze set the model was built with.
    world_base_model (`str | None`): the Gemma 3 checkpoint this model was converted from (a delta checkpoint loads it).
    world_checkpoint_format (`str`): `"full"` or `"delta"` (only what differs from `world_base_model` is stored).
    """

    model_type = "theworld"

    enable_world: bool = True
    cosmos_model_name: str = DEFAULT_COSMOS_MODEL
    world_image_size: int = 256
    world_projection_mode: str = "spatial"
    world_pool_size: int = DEFAULT_WORLD_POOL_SIZE
    num_world_steps: int = 0
    max_world_steps: int = 16
    world_rollout_steps: int = 35
    world_rollout_guidance: float = 7.0
    world_rollout_seed: int = 0
    world_projector_hidden_size: int | None = None
    sow_token_id: int | None = None
    eow_token_id: int | None = None
    world_token_id: int | None = None
    freeze_gemma_vision: bool = True
    freeze_gemma_language: bool = True
    freeze_cosmos_vae: bool = True
    world_base_model: str | None = None
    world_checkpoint_format: str = "full"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_world()

    def validate_world(self) -> None:
        """Raise a one-line `ValueError` naming the first invalid world field and what was expected."""
        if self.world_projection_mode not in PROJECTION_MODES:
            raise ValueError(
                f"world_projection_mode={self.world_projection_mode!r}: expected one of {PROJECTION_MODES}"
            )
        if not isinstance(self.cosmos_model_name, str) or not self.cosmos_model_name.strip():
            raise ValueError(
                f"cosmos_model_name={self.cosmos_model_name!r}: expected a Hub id or a directory with a vae/ subfolder"
            )
        if (
            not isinstance(self.world_image_size, int)
            or self.world_image_size <= 0
            or self.world_image_size % _WORLD_SIZE_MULTIPLE
        ):
            raise ValueError(
                f"world_image_size={self.world_image_size!r}: expected a positive multiple of {_WORLD_SIZE_MULTIPLE}"
            )
        self._validate_pool_size()
        if not isinstance(self.max_world_steps, int) or self.max_world_steps < 0:
            raise ValueError(f"max_world_steps={self.max_world_steps!r}: expected an integer >= 0")
        if not isinstance(self.num_world_steps, int) or self.num_world_steps < 0:
            raise ValueError(f"num_world_steps={self.num_world_steps!r}: expected an integer >= 0")
        if self.num_world_steps > self.max_world_steps:
            raise ValueError(
                f"num_world_steps={self.num_world_steps} exceeds max_world_steps={self.max_world_steps}: "
                "raise max_world_steps or predict fewer steps"
            )
        if self.num_world_steps % VAE_TEMPORAL_FACTOR:
            raise ValueError(
                f"num_world_steps={self.num_world_steps}: expected a multiple of {VAE_TEMPORAL_FACTOR} "
                "(the Wan VAE turns 1 + 4k frames into 1 + k latent frames)"
            )
        rollout_steps = self.world_rollout_steps
        if isinstance(rollout_steps, bool) or not isinstance(rollout_steps, int) or rollout_steps < 2:
            raise ValueError(f"world_rollout_steps={rollout_steps!r}: expected an integer >= 2")
        guidance = self.world_rollout_guidance
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0.0 <= guidance <= 100.0:
            raise ValueError(f"world_rollout_guidance={guidance!r}: expected a number in [0, 100] (1.0 = no guidance)")
        seed = self.world_rollout_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"world_rollout_seed={seed!r}: expected an integer >= 0")
        if self.world_checkpoint_format not in ("full", "delta"):
            raise ValueError(f"world_checkpoint_format={self.world_checkpoint_format!r}: expected 'full' or 'delta'")
        hidden = self.world_projector_hidden_size
        if hidden is not None and (not isinstance(hidden, int) or hidden <= 0):
            raise ValueError(f"world_projector_hidden_size={hidden!r}: expected a positive integer or null")

    def _validate_pool_size(self) -> None:
        pool = self.world_pool_size
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ValueError(f"world_pool_size={pool!r}: expected an integer >= 1")
        side = self.world_latent_size
        if self.world_projection_mode == "pooled" and side % pool:
            divisors = [d for d in range(1, side + 1) if side % d == 0]
            raise ValueError(
                f"world_pool_size={pool}: expected a divisor of the latent side {side} (world_image_size="
                f"{self.world_image_size} / {VAE_SPATIAL_FACTOR}) in pooled mode, one of {divisors}"
            )

    # ---- derived geometry (never stored, so it cannot go stale) ----
    @property
    def world_latent_size(self) -> int:
        """Side of the VAE latent grid: world_image_size / 8."""
        return self.world_image_size // VAE_SPATIAL_FACTOR

    def num_latent_frames(self, num_world_steps: int | None = None) -> int:
        """Latent frames for a rollout of `num_world_steps` future frames: the Wan VAE compresses time by 4."""
        steps = self.num_world_steps if num_world_steps is None else num_world_steps
        return 1 + steps // VAE_TEMPORAL_FACTOR

    @property
    def max_latent_frames(self) -> int:
        return self.num_latent_frames(self.max_world_steps)

    @property
    def world_feature_dim(self) -> int:
        """Width of one world token before projection: 16 latent channels (spatial, pooled) or h*w (channel)."""
        if self.world_projection_mode in ("spatial", "pooled"):
            return VAE_LATENT_CHANNELS
        return self.world_latent_size**2

    @property
    def world_token_grid(self) -> int:
        """Side of the grid of world tokens of one frame in the spatial (latent side) and pooled (side / k) modes."""
        if self.world_projection_mode == "pooled":
            return self.world_latent_size // self.world_pool_size
        return self.world_latent_size

    def tokens_per_world_frame(self) -> int:
        """World tokens of one latent frame: h*w (spatial), (h/k)*(w/k) (pooled) or 16 (channel)."""
        if self.world_projection_mode == "channel":
            return VAE_LATENT_CHANNELS
        return self.world_token_grid**2

    def num_world_tokens(self, num_world_steps: int | None = None) -> int:
        """World placeholder tokens per image (between `<start_of_world>` and `<end_of_world>`)."""
        if not self.enable_world:
            return 0
        return self.num_latent_frames(num_world_steps) * self.tokens_per_world_frame()

    def tokens_per_picture(self, num_world_steps: int | None = None) -> int:
        """Sequence tokens of one picture: the world block (`<start_of_world>` + world tokens + `<end_of_world>`,
        none with enable_world=False), then Gemma's (`<start_of_image>` + `mm_tokens_per_image` + `<end_of_image>`)."""
        world = self.num_world_tokens(num_world_steps) + 2 if self.enable_world else 0
        return world + int(self.mm_tokens_per_image or 0) + 2

    @classmethod
    def from_gemma_config(cls, gemma_config: Gemma3Config, **world_kwargs: Any) -> TheWorldConfig:
        """A TheWorldConfig carrying every field of `gemma_config` plus the given world settings."""
        data = gemma_config.to_dict()
        data.pop("model_type", None)
        data.pop("architectures", None)
        data.pop("transformers_version", None)
        data.update({k: v for k, v in world_kwargs.items() if v is not None})
        return cls(**data)
