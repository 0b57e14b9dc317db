"""Special token strings, default model ids and other names shared across the package.

Token *ids* are never hard-coded: they are read from the tokenizer and stored on the model config.
"""

from __future__ import annotations

# Default backbones (Hub ids). The loading code is the same for these and for local directories.
DEFAULT_GEMMA_MODEL = "google/gemma-3-4b-it"
DEFAULT_COSMOS_MODEL = "nvidia/Cosmos-Predict2-2B-Video2World"

# Subfolder of a Cosmos-Predict2 repo that holds the Wan VAE (diffusers `AutoencoderKLWan`).
COSMOS_VAE_SUBFOLDER = "vae"

# World tokens added to Gemma's tokenizer. The processor expands one `WORLD_TOKEN` per world embedding, wrapped in
# `SOW_TOKEN` ... `EOW_TOKEN`, right before each image's `<start_of_image>` block (world first, then SigLIP).
SOW_TOKEN = "<start_of_world>"
EOW_TOKEN = "<end_of_world>"
WORLD_TOKEN = "<world_soft_token>"
WORLD_SPECIAL_TOKENS = (SOW_TOKEN, EOW_TOKEN, WORLD_TOKEN)

# Gemma 3's own special token strings (their ids come from the tokenizer).
GEMMA_BOI_TOKEN = "<start_of_image>"
GEMMA_EOI_TOKEN = "<end_of_image>"
GEMMA_IMAGE_TOKEN = "<image_soft_token>"
GEMMA_START_OF_TURN = "<start_of_turn>"
GEMMA_END_OF_TURN = "<end_of_turn>"

# Wan VAE geometry (diffusers `AutoencoderKLWan` as used by Cosmos-Predict2).
VAE_LATENT_CHANNELS = 16
VAE_SPATIAL_FACTOR = 8
VAE_TEMPORAL_FACTOR = 4

# How world latents become tokens (`TheWorldConfig.world_projection_mode`): "spatial" = one token per latent position,
# "pooled" = one token per k x k block of positions (average pool, k = `world_pool_size`), "channel" = one token per
# latent channel. The order is the order in which docs and errors list them.
PROJECTION_MODES = ("spatial", "pooled", "channel")
DEFAULT_WORLD_POOL_SIZE = 2
