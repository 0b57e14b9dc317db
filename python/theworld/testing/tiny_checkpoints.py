"""Offline tiny checkpoints in the exact on-disk formats of the real backbones.

`build_tiny_checkpoints(out_dir)` writes three directories:

* `out_dir/gemma`: a randomly initialised, tiny Gemma 3 laid out like google/gemma-3-4b-it in transformers-5 format
  (config.json, model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json,
  chat_template.jinja, processor_config.json / preprocessor_config.json), loadable by plain
  `Gemma3ForConditionalGeneration.from_pretrained`, `AutoProcessor.from_pretrained` and `AutoTokenizer`.
* `out_dir/cosmos/vae`: a tiny diffusers `AutoencoderKLWan` laid out like the `vae/` subfolder of
  nvidia/Cosmos-Predict2-2B-Video2World, whose `latents_mean` / `latents_std` are its own latent statistics,
  measured on generated pictures.
* `out_dir/cosmos_pipeline`: a tiny but complete Cosmos-Predict2 Video2World pipeline in the diffusers layout of
  nvidia/Cosmos-Predict2-2B-Video2World (model_index.json, transformer/, vae/ = the same VAE files byte for byte,
  scheduler/, text_encoder/ = a tiny T5 encoder, tokenizer/ = a tiny T5 tokenizer), loadable with
  `Cosmos2VideoToWorldPipeline.from_pretrained(dir, safety_checker=GuardrailStandIn())`; see
  `theworld.testing.tiny_cosmos_pipeline`. `out_dir/cosmos` keeps only `vae/`, as before, so the outputs of earlier
  factory versions are unchanged byte for byte.

All are built in a temporary directory inside `out_dir` and moved into place; a marker file `out_dir/.complete`
(holding `FACTORY_VERSION` and the seed) is written last, so an interrupted build never looks complete and a
complete one is reused. The same seed gives byte-identical safetensors.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from theworld.constants import (
    COSMOS_VAE_SUBFOLDER,
    GEMMA_BOI_TOKEN,
    GEMMA_END_OF_TURN,
    GEMMA_EOI_TOKEN,
    GEMMA_IMAGE_TOKEN,
    VAE_LATENT_CHANNELS,
)
from theworld.testing.pictures import make_pictures, pictures_to_video_batch

if TYPE_CHECKING:
    from diffusers import AutoencoderKLWan
    from transformers import Gemma3ForConditionalGeneration, GemmaTokenizer

__all__ = [
    "FACTORY_VERSION",
    "MARKER_FILE",
    "TINY_IMAGE_SIZE",
    "TINY_MM_TOKENS_PER_IMAGE",
    "TINY_TEXT_HIDDEN_SIZE",
    "TINY_VAE_CONFIG",
    "TINY_VISION_HIDDEN_SIZE",
    "TINY_VOCAB_ROWS",
    "TinyCheckpoints",
    "build_tiny_checkpoints",
    "is_complete",
]

logger = logging.getLogger(__name__)

# Bump when anything written by the factory changes: directories built by another version are rebuilt.
FACTORY_VERSION = "theworld-tiny-checkpoints/2"  # 2: adds cosmos_pipeline/ (gemma/ and cosmos/ unchanged)
MARKER_FILE = ".complete"
GEMMA_DIR = "gemma"
COSMOS_DIR = "cosmos"
COSMOS_PIPELINE_DIR = "cosmos_pipeline"
_BUILT_DIRS = (GEMMA_DIR, COSMOS_DIR, COSMOS_PIPELINE_DIR)

# Geometry the rest of the library (and its tests) may rely on.
TINY_VOCAB_ROWS = 1024
TINY_TEXT_HIDDEN_SIZE = 64
TINY_VISION_HIDDEN_SIZE = 32
TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8
TINY_MM_TOKENS_PER_IMAGE = 16

TINY_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": TINY_TEXT_HIDDEN_SIZE,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "sliding_window": 32,
    "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 2048,
    "vocab_size": TINY_VOCAB_ROWS,
    "tie_word_embeddings": True,
}
TINY_VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "image_size": TINY_IMAGE_SIZE,
    "patch_size": TINY_PATCH_SIZE,
    "hidden_size": TINY_VISION_HIDDEN_SIZE,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vision_use_head": False,  # as in the real config: Gemma 3 uses SigLIP's last hidden state, not its pooling head
}
# Same field names as the real Cosmos-Predict2 vae/config.json; spatial factor 8 (three spatial downsamplings),
# temporal factor 4 (two of the three `temperal_downsample` entries).
TINY_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 16,
    "z_dim": VAE_LATENT_CHANNELS,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
}
N_CALIBRATION_PICTURES = 64
_CALIBRATION_SEED_OFFSET = 1_000_000  # calibration pictures use seeds far from the ones tests draw by default


@dataclass(frozen=True)
class TinyCheckpoints:
    """Paths of a built set of tiny checkpoints."""

    gemma: Path  # loadable like google/gemma-3-4b-it
    cosmos: Path  # the vae/ subfolder of nvidia/Cosmos-Predict2-2B-Video2World only
    cosmos_pipeline: Path  # the whole Video2World pipeline (transformer, vae, scheduler, T5): rollouts need it


def _marker_text(seed: int) -> str:
    return f"{FACTORY_VERSION}\nseed={seed}\n"


def is_complete(out_dir: str | Path, seed: int = 0) -> bool:
    """Whether `out_dir` holds a complete build of this factory version with this seed."""
    out = Path(out_dir)
    marker = out / MARKER_FILE
    try:
        text = marker.read_text(encoding="utf-8")
    except OSError:
        return False
    return text == _marker_text(seed) and all((out / name).is_dir() for name in _BUILT_DIRS)


@contextlib.contextmanager
def _seeded(seed: int) -> Generator[None, None, None]:
    """Seed torch, random and numpy for the block, restoring the caller's generator states afterwards."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def _build_lock(out: Path) -> Generator[None, None, None]:
    """An exclusive advisory lock on `out/.lock`, so parallel builders of one directory do not interleave."""
    lock_path = out / ".lock"
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------------------------------------------
# Gemma 3
# ----------------------------------------------------------------------------------------------------------------


def _token_id(tokenizer: GemmaTokenizer, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        raise RuntimeError(f"tiny tokenizer has no id for {token!r}")
    return token_id


def _gemma_config(tokenizer: GemmaTokenizer) -> Any:
    from transformers import Gemma3Config

    if len(tokenizer) > TINY_VOCAB_ROWS:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens but the embedding has {TINY_VOCAB_ROWS} rows")
    boi_id, eoi_id, image_id = (_token_id(tokenizer, t) for t in (GEMMA_BOI_TOKEN, GEMMA_EOI_TOKEN, GEMMA_IMAGE_TOKEN))
    text_config = {
        **TINY_TEXT_CONFIG,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    return Gemma3Config(
        text_config=text_config,
        vision_config=dict(TINY_VISION_CONFIG),
        mm_tokens_per_image=TINY_MM_TOKENS_PER_IMAGE,
        boi_token_index=boi_id,
        eoi_token_index=eoi_id,
        image_token_index=image_id,
        tie_word_embeddings=True,
    )


def _reinit_projector(model: Gemma3ForConditionalGeneration, seed: int) -> float:
    """Give the (zero-initialised) multimodal projection a seeded normal init; return its std.

    Text embeddings are initialised with std `initializer_range` and multiplied by sqrt(text_hidden) (Gemma's scaled
    embedding), so their RMS is about 0.02 * 8 = 0.16. The projector's input is RMS-normed (RMS ≈ 1 over
    `vision_hidden` features), so a std of `0.16 / sqrt(vision_hidden)` makes image features about as large as text
    embeddings. The std is computed from the config, not measured: a measured one differs in its last bits with the
    number of threads, and the weights would no longer be byte-identical across machines.
    """
    config: Any = model.config
    text_rms = config.text_config.initializer_range * math.sqrt(config.text_config.hidden_size)
    std = text_rms / math.sqrt(config.vision_config.hidden_size)
    projector: Any = model.model.multi_modal_projector
    weight: torch.Tensor = projector.mm_input_projection_weight
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=generator, dtype=torch.float32) * std)
    return std


def _build_gemma(target: Path, seed: int) -> None:
    from transformers import Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor, GenerationConfig
    from transformers.image_utils import PILImageResampling

    from theworld.testing.tiny_tokenizer import GEMMA3_CHAT_TEMPLATE, build_tiny_gemma_tokenizer

    tokenizer = build_tiny_gemma_tokenizer()
    config = _gemma_config(tokenizer)
    with _seeded(seed):
        model = Gemma3ForConditionalGeneration(config).float().eval()
    std = _reinit_projector(model, seed)
    logger.debug("tiny gemma: projector re-initialised with std %.4f", std)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, _token_id(tokenizer, GEMMA_END_OF_TURN)],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(target)

    image_processor = Gemma3ImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        resample=PILImageResampling.BILINEAR,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=TINY_MM_TOKENS_PER_IMAGE,
    )
    processor.save_pretrained(target)
    # transformers 5 folds the image processor into processor_config.json; the real repos also ship it on its own.
    image_processor.save_pretrained(target)


def _verify_gemma(target: Path) -> None:
    """Load the written directory back with the plain transformers API and check the invariants."""
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration, Gemma3Processor

    from theworld.testing.pictures import make_picture

    processor: Any = AutoProcessor.from_pretrained(target)
    if not isinstance(processor, Gemma3Processor):
        raise RuntimeError(f"AutoProcessor loaded {type(processor).__name__}, expected Gemma3Processor")
    model: Any = Gemma3ForConditionalGeneration.from_pretrained(target).eval()
    config: Any = model.config
    tokenizer: Any = processor.tokenizer
    if config.image_token_id != tokenizer.image_token_id:
        raise RuntimeError(f"config.image_token_id {config.image_token_id} != tokenizer's {tokenizer.image_token_id}")
    if processor.image_seq_length != config.mm_tokens_per_image:
        raise RuntimeError("processor.image_seq_length != config.mm_tokens_per_image")
    pixels = processor.image_processor(images=[make_picture(0)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        features = model.get_image_features(pixel_values=pixels).pooler_output
    if features.shape != (1, TINY_MM_TOKENS_PER_IMAGE, TINY_TEXT_HIDDEN_SIZE) or not bool(features.abs().gt(0).any()):
        raise RuntimeError(f"bad image features from the tiny gemma: shape {tuple(features.shape)}")


# ----------------------------------------------------------------------------------------------------------------
# Cosmos (Wan VAE)
# ----------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(n: int) -> Generator[None, None, None]:
    """Run the block with `n` intra-op threads, then restore the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def encode_latent_means(vae: AutoencoderKLWan, videos: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """`latent_dist.mean` of (B, 3, T, H, W) videos in [-1, 1], encoded in chunks: (B, z_dim, T', H/8, W/8).

    Runs single-threaded: on a busy 2-core machine the Wan VAE's 3-D convolutions ran 5-7x slower with two threads
    (the threads spin-wait on each other) and only ~1.3x faster with two threads on an idle one.
    """
    outputs: list[torch.Tensor] = []
    with torch.no_grad(), _torch_threads(1):
        for start in range(0, videos.shape[0], batch_size):
            encoded: Any = vae.encode(videos[start : start + batch_size])
            outputs.append(encoded.latent_dist.mean)
    return torch.cat(outputs, dim=0)


def latent_statistics(latents: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (B, C, T, H, W) latents over batch, time and space."""
    per_channel = latents.transpose(0, 1).reshape(latents.shape[1], -1).double()
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def _build_cosmos(target: Path, seed: int) -> None:
    from diffusers import AutoencoderKLWan

    with _seeded(seed + 2):
        vae = AutoencoderKLWan(**TINY_VAE_CONFIG).eval()
    if vae.dtype != torch.float32:
        raise RuntimeError(f"tiny VAE built in {vae.dtype}, expected float32 (torch default dtype changed?)")
    seeds = range(_CALIBRATION_SEED_OFFSET, _CALIBRATION_SEED_OFFSET + N_CALIBRATION_PICTURES)
    videos = torch.from_numpy(pictures_to_video_batch(make_pictures(seeds, TINY_IMAGE_SIZE)))
    latents = encode_latent_means(vae, videos)
    mean, std = latent_statistics(latents)
    if min(std) <= 1e-6:
        raise RuntimeError(f"tiny VAE has a dead latent channel: std {std}")
    vae.register_to_config(latents_mean=mean, latents_std=std)
    logger.debug("tiny vae latents_mean %s latents_std %s", mean, std)
    vae.save_pretrained(target / COSMOS_VAE_SUBFOLDER)
    saved: Any = AutoencoderKLWan.load_config(str(target), subfolder=COSMOS_VAE_SUBFOLDER)
    if saved["latents_mean"] != mean or saved["latents_std"] != std:
        raise RuntimeError("tiny VAE config was not saved with its measured latent statistics")


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _build_cosmos_pipeline(target: Path, vae_dir: Path, seed: int) -> None:
    from theworld.testing.tiny_cosmos_pipeline import build_tiny_cosmos_pipeline, verify_tiny_cosmos_pipeline

    build_tiny_cosmos_pipeline(target, vae_dir, seed)
    # One thread: the Wan VAE's 3-D convolutions (see encode_latent_means); fork_rng: the caller's RNG is untouched.
    with _torch_threads(1), torch.random.fork_rng(devices=[]):
        verify_tiny_cosmos_pipeline(target)


def build_tiny_checkpoints(out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> TinyCheckpoints:
    """Build (or reuse) the tiny Gemma 3 and Cosmos checkpoints under `out_dir`.

    A complete build of this factory version and seed is returned as is unless `overwrite`. Otherwise the
    directories are built in a temporary directory inside `out_dir`, moved to `out_dir/gemma`, `out_dir/cosmos` and
    `out_dir/cosmos_pipeline`, and the marker `out_dir/.complete` is written last. The pipeline is built after (and
    with its own seeded generators, not the global ones) the Gemma and VAE weights, which stay byte-identical to
    factory version 1.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = TinyCheckpoints(gemma=out / GEMMA_DIR, cosmos=out / COSMOS_DIR, cosmos_pipeline=out / COSMOS_PIPELINE_DIR)
    if not overwrite and is_complete(out, seed):
        logger.info("tiny checkpoints already complete in %s", out)
        return result

    with _build_lock(out):
        if not overwrite and is_complete(out, seed):  # another process finished while we waited
            return result
        started = time.perf_counter()
        _remove(out / MARKER_FILE)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=out))
        try:
            _build_gemma(staging / GEMMA_DIR, seed)
            _verify_gemma(staging / GEMMA_DIR)
            _build_cosmos(staging / COSMOS_DIR, seed)
            _build_cosmos_pipeline(staging / COSMOS_PIPELINE_DIR, staging / COSMOS_DIR / COSMOS_VAE_SUBFOLDER, seed)
            for name in _BUILT_DIRS:
                _remove(out / name)
                os.replace(staging / name, out / name)
            marker_tmp = staging / MARKER_FILE
            marker_tmp.write_text(_marker_text(seed), encoding="utf-8")
            os.replace(marker_tmp, out / MARKER_FILE)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("built tiny checkpoints in %s (%.1f s)", out, time.perf_counter() - started)
    return result
