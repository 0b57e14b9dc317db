"""Fusion: splice world embeddings into the LM input sequence at the world placeholder tokens.

[Contract] the processor expands, for every image, `<start_of_world>` + N x `<world_soft_token>` + `<end_of_world>`
right before Gemma's `<start_of_image>` block, with N = `config.num_world_tokens()`. Fusion is then a
`masked_scatter` at the placeholders, exactly as Gemma 3 does for `<image_soft_token>`: labels, padding, attention
masks and the KV cache need no special cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from theworld.constants import VAE_TEMPORAL_FACTOR

if TYPE_CHECKING:
    from theworld.modeling.configuration_theworld import TheWorldConfig


def world_placeholder_mask(input_ids: torch.Tensor, world_token_id: int) -> torch.Tensor:
    """[B, L] bool mask of the world placeholders."""
    return input_ids == world_token_id


def scatter_world_embeddings(
    inputs_embeds: torch.Tensor, placeholder_mask: torch.Tensor, world_embeds: torch.Tensor
) -> torch.Tensor:
    """Place `world_embeds` [num_images, N, D] at the placeholders of `inputs_embeds` [B, L, D], in order, in place
    (no second [B, L, D] tensor; `inputs_embeds` must be a tensor the caller owns); returns it.

    Raises `ValueError` when the number of placeholders differs from the number of world embeddings.
    """
    n_tokens = int(placeholder_mask.sum())
    n_features = world_embeds.shape[0] * world_embeds.shape[1]
    if n_tokens != n_features:
        raise ValueError(
            f"World embeddings and world tokens do not match: {n_tokens} world placeholder tokens in input_ids, "
            f"{n_features} world embeddings ({world_embeds.shape[0]} images x {world_embeds.shape[1]} tokens)"
        )
    mask = placeholder_mask.unsqueeze(-1).to(inputs_embeds.device)  # [B, L, 1]
    return inputs_embeds.masked_scatter_(mask, world_embeds.to(inputs_embeds.device, inputs_embeds.dtype))


def world_token_type_ids(input_ids: torch.Tensor, image_token_id: int, world_token_id: int | None) -> torch.Tensor:
    """Gemma 3 token types: 1 for image and world placeholders (bidirectional blocks), 0 for text."""
    types = input_ids == image_token_id
    if world_token_id is not None:
        types = types | (input_ids == world_token_id)
    return types.long()


def check_world_placeholders(placeholders: torch.Tensor, num_images: int, steps: int, config: TheWorldConfig) -> None:
    """One line before any encoding (a rollout is expensive) when the placeholders cannot match the embeddings.

    When the count per image is that of another `num_world_steps`, the message says so (the processor and the
    model were given different steps); any other mismatch gets `scatter_world_embeddings`' message.
    """
    found = int(placeholders.sum())
    per_image = config.num_world_tokens(steps)
    if found == num_images * per_image:
        return
    per_frame = config.tokens_per_world_frame()
    if num_images and found % num_images == 0 and (found // num_images) % per_frame == 0 and found >= per_frame:
        other = VAE_TEMPORAL_FACTOR * (found // num_images // per_frame - 1)
        raise ValueError(
            f"num_world_steps={steps}: input_ids hold {found // num_images} world placeholders per image, which "
            f"is num_world_steps={other} ({per_image} expected); pass the same num_world_steps to the processor "
            "and to the model"
        )
    raise ValueError(
        f"World embeddings and world tokens do not match: {found} world placeholder tokens in input_ids, "
        f"{num_images} images x {per_image} world tokens (num_world_steps={steps})"
    )
