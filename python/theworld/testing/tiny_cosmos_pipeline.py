"""A tiny Cosmos-Predict2 Video2World pipeline in the exact diffusers on-disk layout, built offline.

`build_tiny_cosmos_pipeline(target, vae_dir, seed)` writes, like nvidia/Cosmos-Predict2-2B-Video2World:

    model_index.json    Cosmos2VideoToWorldPipeline and the library/class of each component
    transformer/        CosmosTransformer3DModel (config.json + diffusion_pytorch_model.safetensors)
    vae/                AutoencoderKLWan: a byte-for-byte copy of the tiny VAE in `vae_dir`
    scheduler/          FlowMatchEulerDiscreteScheduler (scheduler_config.json, Karras sigmas)
    text_encoder/       T5EncoderModel (config.json + model.safetensors)
    tokenizer/          T5TokenizerFast (tokenizer.json + tokenizer_config.json)

The real checkpoint's transformer is 2 B parameters and its T5-11B encoder 4.7 B; here both are a few thousand, with
the same classes, field names and relations (transformer `in_channels` = 16 latent channels + 1 condition mask,
`text_embed_dim` = the T5 `d_model`). The T5 tokenizer is a small Unigram model built with the `tokenizers` library
(no SentencePiece file: a fast-only tokenizer is saved). The guardrail is not shipped: it lives in the separate
`cosmos_guardrail` package, which is not installed here, so `model_index.json` records `safety_checker` as
`[null, null]` and a loader passes a stand-in: `Cosmos2VideoToWorldPipeline.from_pretrained(dir,
safety_checker=GuardrailStandIn())`. (`theworld.modeling.rollout` loads the components one by one and never reads
that entry, so it works the same whatever a checkpoint's `model_index.json` says about the guardrail.)

[Contract] the same seed gives byte-identical safetensors; the VAE is the caller's tiny VAE, copied unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from theworld.constants import COSMOS_VAE_SUBFOLDER, VAE_LATENT_CHANNELS

__all__ = [
    "TINY_T5_CONFIG",
    "TINY_TRANSFORMER_CONFIG",
    "build_tiny_cosmos_pipeline",
    "build_tiny_t5_tokenizer",
]

# T5 v1.0 layout like google-t5/t5-11b's encoder (relu feed-forward), shrunk; d_model feeds the transformer.
TINY_T5_D_MODEL = 32
TINY_T5_CONFIG: dict[str, Any] = {
    "d_model": TINY_T5_D_MODEL,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "relu",
    "dropout_rate": 0.0,
    "is_encoder_decoder": True,
    "use_cache": False,
}
# Same fields as the real transformer/config.json (Cosmos-2.0-Diffusion-2B-Video2World), shrunk.
TINY_TRANSFORMER_CONFIG: dict[str, Any] = {
    "in_channels": VAE_LATENT_CHANNELS + 1,  # latents + the condition mask channel
    "out_channels": VAE_LATENT_CHANNELS,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "num_layers": 2,
    "mlp_ratio": 2.0,
    "text_embed_dim": TINY_T5_D_MODEL,
    "adaln_lora_dim": 4,
    "max_size": (128, 240, 240),
    "patch_size": (1, 2, 2),
    "rope_scale": (1.0, 3.0, 3.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": None,
}
TINY_T5_EXTRA_IDS = 8  # the real tokenizer has 100 sentinel tokens <extra_id_0..99> at the end of the vocabulary
T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in every T5 tokenizer

# Words that get a whole piece each: the conditioning prompt of `theworld.modeling.rollout` and Cosmos' default
# negative prompt use them, so the tiny tokenizer splits those prompts into words, as the real one roughly does.
_WORD_LIST = (
    "A The Overall a the of and in with to from is are on as no scene video camera view static keeps filming shown "
    "first frame frames continues naturally same objects stay move moving ways physically plausible realistic "
    "lighting cuts captures series showing ugly scenes motion blur over saturation shaky footage low resolution "
    "grainy texture pixelated images poorly lit areas underexposed overexposed poor color balance washed out colors "
    "choppy sequences jerky movements rate artifacting banding unnatural transitions outdated special effects fake "
    "elements unconvincing visuals edited content jump visual noise flickering quality red green blue yellow square "
    "circle left right"
)
_WORDS = _WORD_LIST.split()
_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()"


def _unigram_vocab() -> list[tuple[str, float]]:
    """T5's id layout: specials, then pieces (scored so whole words beat characters), then sentinels in reverse."""
    vocab: list[tuple[str, float]] = [(token, 0.0) for token in T5_SPECIALS]
    vocab.append(("▁", -3.0))
    seen = {token for token, _ in vocab}
    for word in dict.fromkeys(_WORDS):
        for piece in (f"▁{word}", word):
            if piece not in seen:
                vocab.append((piece, -4.0 - 0.01 * len(vocab)))
                seen.add(piece)
    for char in _CHARACTERS:
        for piece in (f"▁{char}", char):
            if piece not in seen:
                vocab.append((piece, -12.0))
                seen.add(piece)
    vocab.extend((f"<extra_id_{i}>", 0.0) for i in reversed(range(TINY_T5_EXTRA_IDS)))
    return vocab


def build_tiny_t5_tokenizer() -> Any:
    """A T5TokenizerFast over a small Unigram model made with `tokenizers` (Metaspace, `</s>` appended)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import T5Tokenizer  # transformers 5: T5TokenizerFast is this class (tokenizers backend)

    vocab = _unigram_vocab()
    backend = Tokenizer(Unigram(vocab, unk_id=T5_SPECIALS.index("<unk>"), byte_fallback=False))
    # The real normalizer is SentencePiece's precompiled NFKC map (`Precompiled`); plain NFKC is its equivalent here.
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    eos_id = T5_SPECIALS.index("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    sentinels = [f"<extra_id_{i}>" for i in range(TINY_T5_EXTRA_IDS)]
    return T5Tokenizer(
        tokenizer_object=backend,
        vocab=vocab,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=TINY_T5_EXTRA_IDS,
        additional_special_tokens=sentinels,
        model_max_length=512,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_tiny_cosmos_pipeline(target: str | Path, vae_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline into `target` (created; must not exist) around the tiny VAE in `vae_dir`.

    The caller seeds nothing: the transformer and the T5 encoder are drawn from their own seeded generators
    (`seed + 3`, `seed + 4`), so the Gemma and VAE weights built before are unaffected and a seed rebuilds the same
    bytes.
    """
    from diffusers import CosmosTransformer3DModel, FlowMatchEulerDiscreteScheduler
    from transformers import T5Config, T5EncoderModel

    from theworld.testing.tiny_checkpoints import _seeded as seeded

    out = Path(target)
    out.mkdir(parents=True)
    # The VAE: the same files, so `vae/` here and `cosmos/vae` are interchangeable (TheWorld shares one instance).
    vae_out = out / COSMOS_VAE_SUBFOLDER
    vae_out.mkdir()
    for source in sorted(Path(vae_dir).iterdir()):
        if source.is_file():
            shutil.copyfile(source, vae_out / source.name)

    with seeded(seed + 3):
        transformer = CosmosTransformer3DModel(**TINY_TRANSFORMER_CONFIG).eval()
    transformer.save_pretrained(out / "transformer")

    tokenizer = build_tiny_t5_tokenizer()
    t5_config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **TINY_T5_CONFIG,
    )
    with seeded(seed + 4):
        text_encoder = T5EncoderModel(t5_config).float().eval()
    text_encoder.save_pretrained(out / "text_encoder")
    tokenizer.save_pretrained(out / "tokenizer")

    # As in diffusers' Cosmos-Predict2 conversion: Karras sigmas; the pipeline registers its EDM constants
    # (sigma_max 80, sigma_min 0.002, sigma_data 1) when it is built.
    scheduler = FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)
    scheduler.save_pretrained(out / "scheduler")

    import diffusers

    _write_json(
        out / "model_index.json",
        {
            "_class_name": "Cosmos2VideoToWorldPipeline",
            "_diffusers_version": diffusers.__version__,
            "safety_checker": [None, None],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "CosmosTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"],
        },
    )
    return out


def verify_tiny_cosmos_pipeline(target: str | Path) -> None:
    """Load `target` with the plain diffusers API (stand-in guardrail) and run one tiny latent rollout."""
    from diffusers import Cosmos2VideoToWorldPipeline

    from theworld.modeling.rollout_prompt import GuardrailStandIn

    pipe: Any = Cosmos2VideoToWorldPipeline.from_pretrained(str(target), safety_checker=GuardrailStandIn())
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        embeds, negative = pipe.encode_prompt(
            "a red square", negative_prompt="low quality", max_sequence_length=16, device=torch.device("cpu")
        )
        latents = pipe(
            image=torch.zeros(1, 3, 64, 64),
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            height=64,
            width=64,
            num_frames=5,
            num_inference_steps=2,
            output_type="latent",
            generator=torch.Generator().manual_seed(0),
        ).frames
    if tuple(latents.shape) != (1, VAE_LATENT_CHANNELS, 2, 8, 8) or not bool(torch.isfinite(latents).all()):
        raise RuntimeError(f"tiny Cosmos pipeline produced latents of shape {tuple(latents.shape)}")
