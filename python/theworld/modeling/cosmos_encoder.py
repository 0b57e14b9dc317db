"""`CosmosWorldEncoder`: pictures in [-1, 1] → normalized Cosmos-Predict2 (Wan VAE) latents.

Only the VAE is loaded (`AutoencoderKLWan.from_pretrained(name, subfolder="vae")`, 127 M parameters for the real
model): the Cosmos text encoder (T5, ~4.7 B), transformer and safety checker are not needed to encode a picture.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan
from torch import nn

from theworld.constants import COSMOS_VAE_SUBFOLDER, VAE_LATENT_CHANNELS
from theworld.errors import first_line

logger = logging.getLogger(__name__)


def load_cosmos_vae(cosmos_model_name: str | Path, dtype: torch.dtype | None = None, **hub_kwargs: object) -> nn.Module:
    """Load the Wan VAE of a Cosmos-Predict2 checkpoint (Hub id or local directory) with a one-line error."""
    name = str(cosmos_model_name)
    if not name.strip():
        raise ValueError("cosmos_model_name is empty: expected a Hub id or a directory with a vae/ subfolder")
    local = Path(name).expanduser()
    if local.is_dir():
        name = str(local)
    if local.is_dir() and not (local / COSMOS_VAE_SUBFOLDER / "config.json").is_file():
        raise ValueError(
            f"cosmos_model_name={name!r}: directory has no {COSMOS_VAE_SUBFOLDER}/config.json "
            "(expected a Cosmos-Predict2 checkpoint with a vae/ subfolder)"
        )
    try:
        vae = AutoencoderKLWan.from_pretrained(name, subfolder=COSMOS_VAE_SUBFOLDER, torch_dtype=dtype, **hub_kwargs)
    except Exception as error:  # the Hub client raises many types; the user needs one line that names the field
        first = first_line(error)
        raise ValueError(
            f"cosmos_model_name={name!r}: could not load its {COSMOS_VAE_SUBFOLDER}/ VAE "
            f"(expected a local Cosmos-Predict2 directory or a reachable Hub id): {first}"
        ) from None
    vae_config: Any = vae.config
    z_dim = int(vae_config.z_dim)
    if z_dim != VAE_LATENT_CHANNELS or len(vae_config.latents_mean) != z_dim or len(vae_config.latents_std) != z_dim:
        raise ValueError(
            f"cosmos_model_name={name!r}: expected a Wan VAE with {VAE_LATENT_CHANNELS} latent channels and as many "
            f"latents_mean/latents_std entries, got z_dim={z_dim}"
        )
    return vae


class CosmosWorldEncoder(nn.Module):
    """Encode world pixels [B, 3, H, W] (or videos [B, 3, T, H, W]) in [-1, 1] to latents [B, 16, T', H/8, W/8].

    Deterministic: the posterior mean (`latent_dist.mean`) is used, not a sample. Latents are normalized with the
    VAE's own `latents_mean` / `latents_std`, as Cosmos does before its transformer.
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        config: Any = vae.config
        shape = (1, int(config.z_dim), 1, 1, 1)
        self.latents_mean: torch.Tensor
        self.latents_std: torch.Tensor
        self.register_buffer("latents_mean", torch.tensor(config.latents_mean, dtype=torch.float32).view(shape))
        self.register_buffer("latents_std", torch.tensor(config.latents_std, dtype=torch.float32).view(shape))

    @property
    def device(self) -> torch.device:
        return self.latents_mean.device

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim == 4:
            pixels = pixels.unsqueeze(2)  # [B, 3, H, W] -> [B, 3, 1, H, W]: one frame
        if pixels.ndim != 5 or pixels.shape[1] != 3:
            raise ValueError(f"world pixels: expected [B, 3, H, W] or [B, 3, T, H, W], got {tuple(pixels.shape)}")
        if pixels.device != self.device:
            # The frozen VAE lives outside the model's module tree (it is not saved), so follow the inputs here.
            self.to(pixels.device)
        posterior = self.vae.encode(pixels.to(self.vae_dtype)).latent_dist  # type: ignore[operator]
        latents = posterior.mean.float()  # [B, 16, T', H/8, W/8]
        return (latents - self.latents_mean) / self.latents_std
