"""Activation memory of one training step: per-layer formulas for Gemma 3 and SigLIP, and a meta-device counter.

Why formulas for the transformers and a counter for the rest
------------------------------------------------------------
Activation memory is what autograd *saves for backward*. For the two transformers (Gemma 3's decoder layers and
SigLIP's encoder layers) the planner uses closed formulas, in bytes per token, derived by listing every tensor a
layer saves in transformers 5.23 (`Gemma3DecoderLayer`, `SiglipEncoderLayer`) under each precision regime. The
formulas are exact for the layer code as written (tests/test_plan.py checks them against the tensors a real layer
saves, counted with `torch.autograd.graph.saved_tensors_hooks`); they assume the SDPA attention kernels
(flash / memory-efficient, transformers' default on GPU), which save q, k, v, the output and a log-sum-exp per head,
never the s x s attention matrix. Modules without attention (the world projector, the Wan VAE encoder) are run once
on the meta device with the same hooks: shapes are exact and nothing is computed or allocated.

[Contract] every function returns bytes for `tokens` tokens (batch x sequence), never a fraction of a layer.

Precision regimes (`Regime`)
----------------------------
- `amp`: float32 weights, bf16/fp16 autocast (what `theworld.training` runs: `build_model` loads float32 and the
  Trainer's `bf16=True` turns on autocast). The residual stream stays float32 (embeddings and residual adds are
  float32), matmul inputs are cast to 16 bits *per linear* (q, k, v and gate, up each get their own copy), and
  Gemma's RMSNorm computes in float32, saving float32 copies.
- `pure16`: weights and activations in bf16/fp16 (also what FSDP's mixed-precision policy does: it all-gathers the
  parameters in 16 bits, so the residual stream is 16-bit); RMSNorm still upcasts internally.
- `fp32`: no mixed precision.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

Regime = Literal["amp", "pure16", "fp32"]
REGIMES: tuple[Regime, ...] = ("amp", "pure16", "fp32")


def activation_bytes(regime: Regime) -> int:
    """Bytes of one element of a matmul input/output: 2 in the 16-bit regimes, 4 in float32."""
    return 4 if regime == "fp32" else 2


def residual_bytes(regime: Regime) -> int:
    """Bytes of one element of the residual stream (float32 under autocast over float32 weights)."""
    return 2 if regime == "pure16" else 4


@dataclass(frozen=True)
class DecoderShape:
    """What the Gemma 3 decoder-layer formula needs (from `Gemma3TextConfig`)."""

    hidden: int  # h
    q_dim: int  # num_attention_heads * head_dim
    kv_dim: int  # num_key_value_heads * head_dim
    intermediate: int  # i
    heads: int
    kv_heads: int
    layers: int
    vocab: int  # rows of the embedding matrix = width of the logits

    @classmethod
    def from_config(cls, text_config: Any) -> DecoderShape:
        head_dim = int(text_config.head_dim)
        return cls(
            hidden=int(text_config.hidden_size),
            q_dim=int(text_config.num_attention_heads) * head_dim,
            kv_dim=int(text_config.num_key_value_heads) * head_dim,
            intermediate=int(text_config.intermediate_size),
            heads=int(text_config.num_attention_heads),
            kv_heads=int(text_config.num_key_value_heads),
            layers=int(text_config.num_hidden_layers),
            vocab=int(text_config.vocab_size),
        )


@dataclass(frozen=True)
class EncoderShape:
    """What the SigLIP encoder-layer formula needs (from `SiglipVisionConfig`)."""

    hidden: int
    intermediate: int
    heads: int
    layers: int
    patches: int  # tokens per picture: (image_size / patch_size) ** 2
    patch_pixels: int  # values per patch: channels * patch_size ** 2

    @classmethod
    def from_config(cls, vision_config: Any) -> EncoderShape:
        side = int(vision_config.image_size) // int(vision_config.patch_size)
        return cls(
            hidden=int(vision_config.hidden_size),
            intermediate=int(vision_config.intermediate_size),
            heads=int(vision_config.num_attention_heads),
            layers=int(vision_config.num_hidden_layers),
            patches=side * side,
            patch_pixels=int(vision_config.num_channels) * int(vision_config.patch_size) ** 2,
        )


# ---- Gemma 3 decoder layer ----
def gemma_layer_bytes_per_token(shape: DecoderShape, regime: Regime) -> int:
    """Bytes one `Gemma3DecoderLayer` saves for backward per token, its own input included.

    With h = hidden, q = heads x head_dim, k = kv_heads x head_dim, i = intermediate, n = heads, m = kv_heads:

    - amp:    42h + 12q + 12k + 8i + 8n + 4m + 16
    - pure16: 38h + 12q + 12k + 8i + 8n + 4m + 16
    - fp32:   40h + 16q + 16k + 16i + 8n + 4m + 16

    amp, term by term: layer input (float32) 4h; four RMSNorms on the residual stream, each saving its float32 input
    (or upcast copy) 4h, its float32 normalized output 4h and the inverse RMS 4 → 4 x (8h + 4) minus the input
    already counted = 28h + 16 (the first norm's input *is* the layer input); q/k/v linears: three 16-bit casts of
    the normed input 6h; q_norm / k_norm in float32: 8q + 4n, 8k + 4m; SDPA: q, k, v, output in 16 bits 4q + 4k and
    a float32 log-sum-exp per head 4n (o_proj reads SDPA's output: no new tensor); MLP: two 16-bit casts of its input
    4h, gate output, GELU output, up output and their product 8i.
    """
    h, q, k, i = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    heads = 8 * shape.heads + 4 * shape.kv_heads + 16
    if regime == "amp":
        return 42 * h + 12 * q + 12 * k + 8 * i + heads
    if regime == "pure16":
        return 38 * h + 12 * q + 12 * k + 8 * i + heads
    return 40 * h + 16 * q + 16 * k + 16 * i + heads


def gemma_layer_input_bytes_per_token(shape: DecoderShape, regime: Regime) -> int:
    """What a gradient-checkpointed `Gemma3DecoderLayer` keeps: its input hidden states."""
    return residual_bytes(regime) * shape.hidden


def gemma_head_bytes_per_token(shape: DecoderShape, regime: Regime) -> int:
    """Final RMSNorm (8h + 4) plus `lm_head`'s 16-bit input cast (none in fp32: the normed output is reused)."""
    cast = 0 if regime == "fp32" else activation_bytes(regime) * shape.hidden
    return 8 * shape.hidden + 4 + cast


def logits_saved_bytes_per_token(shape: DecoderShape) -> int:
    """transformers' causal-LM loss upcasts the logits to float32; cross-entropy saves its float32 log-softmax."""
    return 4 * shape.vocab


def logits_peak_extra_bytes_per_token(shape: DecoderShape) -> int:
    """At the start of backward two more float32 vocab-wide buffers live: NLL's gradient and log-softmax's."""
    return 8 * shape.vocab


# ---- SigLIP encoder layer ----
def siglip_layer_bytes_per_token(shape: EncoderShape, regime: Regime) -> int:
    """Bytes one `SiglipEncoderLayer` saves for backward per patch token, its own input included.

    With h = hidden, i = intermediate, n = heads (LayerNorm saves its input plus a mean and an inverse std):

    - amp:    24h + 4i + 4n + 16  (input 4h, LN stats 8, three 16-bit q/k/v casts 6h, SDPA q/k/v/out 8h + LSE 4n,
      second LN's float32 input 4h + 8, fc1's 16-bit input 2h, GELU input and fc2 input 4i)
    - pure16: 16h + 4i + 4n + 8
    - fp32:   32h + 8i + 4n + 16
    """
    h, i, n = shape.hidden, shape.intermediate, shape.heads
    if regime == "amp":
        return 24 * h + 4 * i + 4 * n + 16
    if regime == "pure16":
        return 16 * h + 4 * i + 4 * n + 8
    return 32 * h + 8 * i + 4 * n + 16


def siglip_extra_bytes_per_token(shape: EncoderShape, regime: Regime) -> int:
    """Around the layers (approximate, ~2% of the layers): the patch convolution's input, the post-LayerNorm's input
    and statistics, and the projector's average-pool input."""
    return activation_bytes(regime) * shape.patch_pixels + 2 * residual_bytes(regime) * shape.hidden + 8


# ---- meta-device counting ----
def saved_tensor_bytes(run: Callable[[], Any], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves while `run()` executes (meta tensors work: nothing allocated).

    Storages of `exclude` (the module's parameters: weights are not activations) are not counted; views share
    their base's storage, so a tensor saved twice, or a view of a saved tensor, counts once.
    """
    skipped = {tensor.untyped_storage()._cdata for tensor in exclude}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in skipped:
            seen.setdefault(storage._cdata, storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(seen.values())


def _meta_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A trainable copy of a meta module in `dtype` (the original, shared with the caller, is left untouched)."""
    clone = copy.deepcopy(module)
    nn.Module.to(clone, dtype)  # nn.Module's own `to`: diffusers' override warns about fp32-pinned modules
    clone.requires_grad_(True)
    return clone


def world_projector_bytes(projector: nn.Module, latents_shape: tuple[int, ...], regime: Regime) -> int:
    """Saved bytes of the world projector on latents [B, 16, T, h, w], counted on the meta device."""
    dtype = torch.float32 if regime == "fp32" else torch.bfloat16
    clone = _meta_copy(projector, dtype)
    latents = torch.empty(latents_shape, device="meta", dtype=dtype)
    return saved_tensor_bytes(lambda: clone(latents), exclude=clone.parameters())


def vae_encoder_bytes(vae: nn.Module, pixels_shape: tuple[int, ...], regime: Regime) -> int:
    """Saved bytes of a trainable Wan VAE encoding pixels [B, 3, T, S, S], counted on the meta device.

    Approximation: the VAE runs in the compute dtype throughout (autocast's float32 islands are not modelled).
    """
    dtype = torch.float32 if regime == "fp32" else torch.bfloat16
    clone: Any = _meta_copy(vae, dtype)
    pixels = torch.empty(pixels_shape, device="meta", dtype=dtype)
    return saved_tensor_bytes(lambda: clone.encode(pixels).latent_dist.mean, exclude=clone.parameters())
