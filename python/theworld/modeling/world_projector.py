"""World-side trainable modules: the latent → LM projector (with temporal embeddings) and the world token rows.

Scale matters: Gemma multiplies its text embeddings by sqrt(hidden) before the decoder. The projector therefore ends
in an RMS norm whose gain is set to the RMS of the (scaled) text embeddings, so world tokens neither swamp nor vanish
beside the text at initialization. A tiny model with an unscaled projector could not learn a task it learned without
world tokens.

Token layouts (`world_projection_mode`): "spatial" gives one token per latent position, "pooled" one token per k x k
block of positions (their average: the same 16 features, k² times fewer tokens, so the LM's sequence shrinks while
every latent value still contributes), "channel" one token per latent channel.
"""

from __future__ import annotations

import torch
from torch import nn

from theworld.modeling.configuration_theworld import TheWorldConfig

_NORM_EPS = 1e-6


class WorldProjector(nn.Module):
    """Normalized latents [B, 16, T, h, w] → world embeddings [B, T * tokens_per_frame, hidden].

    spatial: one token per latent position (features = 16 channels), raster order within a frame;
    pooled: one token per k x k block (k = `world_pool_size`), the block's mean, raster order of the blocks;
    channel: one token per latent channel (features = the flattened h*w map).
    """

    def __init__(self, config: TheWorldConfig) -> None:
        super().__init__()
        self.mode = config.world_projection_mode
        self.pool_size = config.world_pool_size
        in_dim = config.world_feature_dim
        out_dim = config.get_text_config().hidden_size
        hidden = config.world_projector_hidden_size or out_dim
        self.temporal_embedding = nn.Parameter(torch.zeros(config.max_latent_frames, in_dim))  # [T_max, F]
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, out_dim)
        # Per-channel gain after RMS normalization; set to the text embeddings' RMS at init (see module docstring).
        self.output_scale = nn.Parameter(torch.ones(out_dim))

    def tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, T, h, w] → [B, T, N, F] (N tokens per frame of width F) for the configured mode."""
        if self.mode == "pooled":
            latents = self.pool(latents)
        batch, channels, frames, height, width = latents.shape
        if self.mode in ("spatial", "pooled"):
            return latents.permute(0, 2, 3, 4, 1).reshape(batch, frames, height * width, channels)
        return latents.permute(0, 2, 1, 3, 4).reshape(batch, frames, channels, height * width)

    def pool(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, T, h, w] → [B, C, T, h/k, w/k]: the mean of each k x k block (k = `world_pool_size`)."""
        k = self.pool_size
        height, width = latents.shape[-2:]
        if height % k or width % k:
            raise ValueError(
                f"world latents of {height}x{width} cannot be pooled by world_pool_size={k}: expected sides divisible "
                f"by {k} (world_image_size = 8 x latent side)"
            )
        # [B, C, T, h/k, k, w/k, k] → mean over the two window axes: exactly avg_pool with stride = kernel = k.
        return latents.unflatten(3, (height // k, k)).unflatten(5, (width // k, k)).mean(dim=(4, 6))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(latents.to(self.fc1.weight.dtype))  # [B, T, N, F]
        frames = tokens.shape[1]
        if frames > self.temporal_embedding.shape[0]:
            raise ValueError(f"world latents have {frames} frames, more than max_world_steps allows")
        tokens = tokens + self.temporal_embedding[:frames][None, :, None, :]
        hidden = self.fc2(self.act(self.fc1(tokens)))  # [B, T, N, D]
        rms = hidden.float().pow(2).mean(-1, keepdim=True).add(_NORM_EPS).rsqrt()
        hidden = (hidden.float() * rms).to(hidden.dtype) * self.output_scale
        return hidden.flatten(1, 2)  # [B, T * N, D]


class WorldTokenEmbedding(nn.Module):
    """Embedding rows of `<start_of_world>`, `<end_of_world>` and the world placeholder.

    They live outside Gemma's embedding matrix so they train with the projector while the LM stays frozen (a frozen
    matrix cannot have three trainable rows, and weight decay would move the others). They are multiplied by Gemma's
    `embed_scale` like every text embedding.
    """

    def __init__(self, config: TheWorldConfig) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3, config.get_text_config().hidden_size))

    def token_ids(self, config: TheWorldConfig) -> list[int]:
        ids = [config.sow_token_id, config.eow_token_id, config.world_token_id]
        if any(i is None for i in ids):
            raise ValueError(
                "sow_token_id/eow_token_id/world_token_id are not set in the config: load the model with "
                "TheWorld.from_pretrained so the world tokens are added to the tokenizer"
            )
        return [int(i) for i in ids if i is not None]

    def overwrite(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        token_ids: list[int],
        positions: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """Write the embeddings of the world special tokens into `inputs_embeds` [B, L, D] in place; returns it.

        `positions` [B, L] marks where `input_ids` hold any of `token_ids` (the forward's check for world tokens).
        `inputs_embeds` must be a fresh tensor the caller owns (the embedding lookup's output); only the
        `<start_of_world>`/`<end_of_world>` rows (and `<world_soft_token>` rows, replaced later by the world
        embeddings) are written, so no second [B, L, D] tensor is made.
        """
        ids = input_ids.new_tensor(token_ids)
        which = (input_ids[positions].unsqueeze(-1) == ids).int().argmax(-1)  # index into token_ids per position
        rows = (self.weight * scale.to(self.weight.dtype)).to(inputs_embeds.dtype)  # [3, D]
        inputs_embeds[positions] = rows[which]
        return inputs_embeds
