"""The rollout's text side: the fixed conditioning prompt, its T5 embeddings (encoded once, cached on disk and in
memory), and the guardrail stand-in of `Cosmos2VideoToWorldPipeline`.

Rollouts always use the same `CONDITIONING_PROMPT` (and Cosmos' own negative prompt for classifier-free guidance), so
`load_prompt_embeddings` encodes both ONCE per checkpoint: T5 and its tokenizer are loaded, run, and freed (`del` +
`gc.collect()`), the embeddings go to a safetensors file keyed by the checkpoint and the prompts, and to an in-memory
cache (`clear_prompt_memory_cache` forgets it). Cache directory: `prompt_cache_dir`, else `$THEWORLD_PROMPT_CACHE`
(`PROMPT_CACHE_ENV`), else `$HF_HOME/theworld/cosmos_prompt_embeds`. `theworld.modeling.rollout` (`CosmosRollout`)
uses them; see its docstring for the whole picture.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch

from theworld.errors import first_line

logger = logging.getLogger(__name__)

# The conditioning prompt of every rollout. A world model used as a sensor should predict how the pictured scene
# goes on by itself, so the prompt asks for exactly that and names no content (one prompt fits every picture).
CONDITIONING_PROMPT = (
    "A static camera keeps filming the scene shown in the first frame. The scene continues naturally: the same "
    "objects stay in view and move in physically plausible ways, with realistic lighting and no cuts."
)
PROMPT_MAX_SEQUENCE_LENGTH = 512  # the pipeline's default: the transformer was trained with 512 T5 tokens
PROMPT_CACHE_ENV = "THEWORLD_PROMPT_CACHE"
PROMPT_CACHE_VERSION = "theworld-cosmos-prompt/1"  # bump if the cached tensors' meaning changes
TEXT_ENCODER_SUBFOLDER = "text_encoder"
TOKENIZER_SUBFOLDER = "tokenizer"

# key -> (prompt_embeds [1, L, D], negative_prompt_embeds [1, L, D]) on the CPU: loads in one process share them.
_PROMPT_MEMORY_CACHE: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
_PROMPT_LOCK = threading.Lock()


def default_negative_prompt() -> str:
    """Cosmos-Predict2's own negative prompt (diffusers' `DEFAULT_NEGATIVE_PROMPT`)."""
    from diffusers.pipelines.cosmos.pipeline_cosmos2_video2world import DEFAULT_NEGATIVE_PROMPT

    return DEFAULT_NEGATIVE_PROMPT


class GuardrailStandIn:
    """Takes the place of `cosmos_guardrail.CosmosSafetyChecker` in `Cosmos2VideoToWorldPipeline`.

    Why that is safe here: the guardrail screens text prompts and decoded videos. Our prompt is the fixed
    `CONDITIONING_PROMPT` (passed as embeddings, so the pipeline has no text to screen), and rollouts are requested
    with `output_type="latent"`: the latents feed a language model and never become pixels, except in
    `theworld.modeling.imagine`, a local visualization of the prediction that is written to a file and published
    nowhere. The stand-in fails closed: if a caller ever asked the pipeline for text or pixel screening through it,
    it raises instead of passing content unchecked. It also keeps `cosmos_guardrail` (and its large checkpoint) out
    of the process entirely.
    """

    def to(self, *args: Any, **kwargs: Any) -> GuardrailStandIn:
        """The pipeline moves its checker between devices around the (skipped) checks: nothing to move."""
        return self

    def check_text_safety(self, prompt: str) -> bool:
        raise RuntimeError(
            "GuardrailStandIn: text screening was requested; TheWorld's rollout passes prompt embeddings only"
        )

    def check_video_safety(self, frames: Any) -> Any:
        raise RuntimeError(
            "GuardrailStandIn: video screening was requested; TheWorld's rollout must use output_type='latent'"
        )


def default_prompt_cache_dir() -> Path:
    """`$THEWORLD_PROMPT_CACHE`, else `$HF_HOME/theworld/cosmos_prompt_embeds` (beside the Hub's model cache)."""
    explicit = os.environ.get(PROMPT_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "theworld" / "cosmos_prompt_embeds"


def checkpoint_identity(cosmos_model_name: str, hub_kwargs: dict[str, Any]) -> str:
    """What the cached embeddings depend on: a Hub id and revision, or a local directory and its text files.

    A local directory is identified by its path and the names, sizes and modification times of the files in
    `text_encoder/` and `tokenizer/`, so a directory rebuilt in place (a new tiny checkpoint) gets a new key.
    """
    local = Path(cosmos_model_name).expanduser()
    if not local.is_dir():
        return f"hub:{cosmos_model_name}@{hub_kwargs.get('revision') or 'main'}"
    parts = [f"dir:{local.resolve()}"]
    for sub in (TEXT_ENCODER_SUBFOLDER, TOKENIZER_SUBFOLDER):
        for path in sorted((local / sub).glob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{sub}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)


def prompt_cache_key(identity: str, prompt: str, negative_prompt: str, max_sequence_length: int) -> str:
    payload = json.dumps(
        {
            "version": PROMPT_CACHE_VERSION,
            "checkpoint": identity,
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "max_sequence_length": max_sequence_length,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def prompt_cache_file(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"cosmos-prompt-{key}.safetensors"


def _read_cached_embeddings(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            prompt_embeds = handle.get_tensor("prompt_embeds")
            negative = handle.get_tensor("negative_prompt_embeds")
    except Exception as error:  # a truncated or foreign file: recompute (and overwrite) rather than fail
        logger.warning("prompt embedding cache %s is unreadable (%s): encoding the prompt again", path, error)
        return None
    if metadata.get("key") != key or prompt_embeds.ndim != 3 or prompt_embeds.shape != negative.shape:
        logger.warning("prompt embedding cache %s does not match this checkpoint/prompt: encoding again", path)
        return None
    return prompt_embeds, negative


def _write_cached_embeddings(
    path: Path, key: str, identity: str, embeddings: tuple[torch.Tensor, torch.Tensor]
) -> None:
    from safetensors.torch import save_file

    tensors = {"prompt_embeds": embeddings[0].contiguous(), "negative_prompt_embeds": embeddings[1].contiguous()}
    metadata = {"key": key, "format": PROMPT_CACHE_VERSION, "checkpoint": identity.splitlines()[0]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)  # atomic: a reader sees the old file or the complete new one
    except OSError as error:  # a read-only cache only costs a T5 run next time: warn, keep going
        logger.warning("could not write the prompt embedding cache %s: %s", path, error)


def encode_prompts_with_t5(
    cosmos_model_name: str,
    prompt: str,
    negative_prompt: str,
    max_sequence_length: int = PROMPT_MAX_SEQUENCE_LENGTH,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    hub_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the checkpoint's T5 encoder and tokenizer, embed both prompts exactly as the pipeline does, free T5.

    The pipeline's own `encode_prompt` runs (on a text-only pipeline), so padding, masking and zeroed padding
    positions match what `Cosmos2VideoToWorldPipeline` computes from a string. Returns float32 CPU tensors.
    """
    from diffusers import Cosmos2VideoToWorldPipeline
    from transformers import T5EncoderModel, T5Tokenizer  # transformers 5: T5TokenizerFast is T5Tokenizer

    hub = dict(hub_kwargs or {})
    where = f"cosmos_model_name={cosmos_model_name!r}"
    try:
        tokenizer: Any = T5Tokenizer.from_pretrained(cosmos_model_name, subfolder=TOKENIZER_SUBFOLDER, **hub)
        text_encoder: Any = T5EncoderModel.from_pretrained(
            cosmos_model_name, subfolder=TEXT_ENCODER_SUBFOLDER, dtype=dtype, **hub
        )
    except Exception as error:  # Hub/OS errors of many types: one line that names the checkpoint and the folders
        raise ValueError(
            f"{where}: could not load {TEXT_ENCODER_SUBFOLDER}/ and {TOKENIZER_SUBFOLDER}/ to embed the rollout "
            f"prompt (expected a Cosmos-Predict2 Video2World checkpoint): {first_line(error)}"
        ) from None
    text_encoder.requires_grad_(False).eval()
    if device is not None:
        text_encoder.to(device)
    text_pipe: Any = Cosmos2VideoToWorldPipeline(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=None,  # pyright: ignore[reportArgumentType]  (only the text side is needed here)
        vae=None,  # pyright: ignore[reportArgumentType]
        scheduler=None,  # pyright: ignore[reportArgumentType]
        safety_checker=GuardrailStandIn(),  # pyright: ignore[reportArgumentType]
    )
    try:
        with torch.no_grad():
            prompt_embeds, negative = text_pipe.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=True,
                max_sequence_length=max_sequence_length,
                device=text_encoder.device,
            )
        result = (prompt_embeds.float().cpu(), negative.float().cpu())
    finally:
        # [Contract] no T5 module stays referenced after this call: the pipeline, the encoder and the tokenizer go.
        del text_pipe, text_encoder, tokenizer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


def load_prompt_embeddings(
    cosmos_model_name: str,
    prompt: str = CONDITIONING_PROMPT,
    negative_prompt: str | None = None,
    prompt_cache_dir: str | Path | None = None,
    max_sequence_length: int = PROMPT_MAX_SEQUENCE_LENGTH,
    device: torch.device | str | None = None,
    hub_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds, negative_prompt_embeds), each [1, L, D] float32 on the CPU: memory cache, disk cache, or T5."""
    hub = dict(hub_kwargs or {})
    negative_prompt = default_negative_prompt() if negative_prompt is None else negative_prompt
    identity = checkpoint_identity(cosmos_model_name, hub)
    key = prompt_cache_key(identity, prompt, negative_prompt, max_sequence_length)
    with _PROMPT_LOCK:
        cached = _PROMPT_MEMORY_CACHE.get(key)
        if cached is not None:
            return cached
        path = prompt_cache_file(prompt_cache_dir if prompt_cache_dir is not None else default_prompt_cache_dir(), key)
        cached = _read_cached_embeddings(path, key)
        if cached is None:
            logger.info("encoding the Cosmos rollout prompt with T5 once (cached in %s)", path)
            cached = encode_prompts_with_t5(
                cosmos_model_name, prompt, negative_prompt, max_sequence_length, device=device, hub_kwargs=hub
            )
            _write_cached_embeddings(path, key, identity, cached)
        _PROMPT_MEMORY_CACHE[key] = cached
        return cached


def clear_prompt_memory_cache() -> None:
    """Forget the in-memory prompt embeddings (the disk cache stays)."""
    with _PROMPT_LOCK:
        _PROMPT_MEMORY_CACHE.clear()
