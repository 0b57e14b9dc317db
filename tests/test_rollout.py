"""World rollout (num_world_steps > 0) on the tiny Cosmos-Predict2 Video2World pipeline: latents, world tokens,
determinism, the T5-free and guardrail-free loading, generation, saving, and one-line errors."""

from __future__ import annotations

import copy
import gc
import json
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AutoencoderKLWan, Cosmos2VideoToWorldPipeline, CosmosTransformer3DModel
from transformers import AutoProcessor, T5EncoderModel

from tests.conftest import ROLLOUT_STEPS
from tests.helpers import QUESTION, one_line_error, pictures
from theworld import TheWorld, TheWorldConfig, TheWorldProcessor
from theworld.modeling import rollout as rollout_module
from theworld.modeling.generation import build_user_messages
from theworld.modeling.rollout import CosmosRollout
from theworld.modeling.rollout_prompt import (
    CONDITIONING_PROMPT,
    GuardrailStandIn,
    clear_prompt_memory_cache,
    load_prompt_embeddings,
    prompt_cache_file,
)
from theworld.testing import TinyCheckpoints
from theworld.testing.tiny_cosmos_pipeline import build_tiny_cosmos_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(rollout_model: TheWorld) -> TheWorld:
    return rollout_model


@pytest.fixture(scope="module")
def rollout(model: TheWorld) -> CosmosRollout:
    return model.world_rollout()


def _pixels(model: TheWorld, n: int, offset: int = 0) -> torch.Tensor:
    return model.processor.world_pixels(pictures(n, offset))


def _inputs(model: TheWorld, n: int, num_world_steps: int | None) -> Any:
    processor = model.processor
    text = processor.apply_chat_template(
        build_user_messages(QUESTION, True), add_generation_prompt=True, tokenize=False
    )
    return processor(
        text=[text] * n,
        images=[[picture] for picture in pictures(n)],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
        num_world_steps=num_world_steps,
    )


# ----------------------------------------------------------------------------------------------------------------
# The tiny pipeline: the real diffusers layout, loadable with the plain API and a stand-in guardrail
# ----------------------------------------------------------------------------------------------------------------


def test_tiny_pipeline_is_a_diffusers_video2world_checkpoint(tiny: TinyCheckpoints) -> None:
    root = tiny.cosmos_pipeline
    index = json.loads((root / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == "Cosmos2VideoToWorldPipeline"
    assert index["transformer"] == ["diffusers", "CosmosTransformer3DModel"]
    assert index["text_encoder"] == ["transformers", "T5EncoderModel"]
    assert index["tokenizer"] == ["transformers", "T5TokenizerFast"]
    for sub in ("transformer", "vae", "scheduler", "text_encoder", "tokenizer"):
        assert (root / sub).is_dir(), sub
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):  # the same VAE as cosmos/vae, byte for byte
        assert (root / "vae" / name).read_bytes() == (tiny.cosmos / "vae" / name).read_bytes()
    pipe: Any = Cosmos2VideoToWorldPipeline.from_pretrained(str(root), safety_checker=GuardrailStandIn())
    assert isinstance(pipe.transformer, CosmosTransformer3DModel) and isinstance(pipe.vae, AutoencoderKLWan)
    assert isinstance(pipe.text_encoder, T5EncoderModel)
    # Relations the real checkpoint has: in_channels = latents + mask, text_embed_dim = T5 d_model.
    assert pipe.transformer.config["in_channels"] == 17
    assert pipe.transformer.config["text_embed_dim"] == pipe.text_encoder.config.d_model
    tokens = pipe.tokenizer(CONDITIONING_PROMPT).input_ids
    assert tokens[-1] == pipe.tokenizer.eos_token_id and pipe.tokenizer.unk_token_id not in tokens
    assert pipe.tokenizer.decode(tokens, skip_special_tokens=True) == CONDITIONING_PROMPT
    del pipe
    gc.collect()


def test_tiny_pipeline_is_byte_identical_for_a_seed(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    weights = ("transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")
    again = build_tiny_cosmos_pipeline(tmp_path / "again", tiny.cosmos / "vae", seed=0)
    for name in (*weights, "tokenizer/tokenizer.json", "scheduler/scheduler_config.json", "model_index.json"):
        assert (again / name).read_bytes() == (tiny.cosmos_pipeline / name).read_bytes(), name
    other = build_tiny_cosmos_pipeline(tmp_path / "other", tiny.cosmos / "vae", seed=1)
    for name in weights:
        assert (other / name).read_bytes() != (tiny.cosmos_pipeline / name).read_bytes(), name
    with pytest.raises(FileExistsError):
        build_tiny_cosmos_pipeline(tmp_path / "again", tiny.cosmos / "vae", seed=0)  # never over an existing one


# ----------------------------------------------------------------------------------------------------------------
# Latents
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, 4, 8])
def test_latent_shapes_and_frame_zero(model: TheWorld, rollout: CosmosRollout, steps: int) -> None:
    pixels = _pixels(model, 2)
    latents = rollout.rollout(pixels, steps, seed=0, num_inference_steps=ROLLOUT_STEPS)
    assert tuple(latents.shape) == (2, 16, 1 + steps // 4, 8, 8)
    assert latents.dtype == torch.float32 and bool(torch.isfinite(latents).all())
    encoder = model.world_encoder
    assert encoder is not None
    with torch.no_grad():
        assert torch.equal(latents[:, :, :1], encoder(pixels))  # frame 0 = the encoder's normalized mean, exactly
    for t in range(1, latents.shape[2]):
        assert (latents[:, :, t] - latents[:, :, 0]).abs().mean() > 1e-3  # predicted frames are new content


def test_cosmos_own_frame_zero_is_a_posterior_sample_not_the_mean(model: TheWorld, rollout: CosmosRollout) -> None:
    """The finding documented in theworld.modeling.rollout: why frame 0 is replaced by the mean."""
    pixels = _pixels(model, 1)
    encoder = rollout.encoder
    pipe = rollout.pipeline
    raw = pipe(
        image=(pixels + 1) / 2,
        prompt_embeds=rollout.prompt_embeds,
        negative_prompt_embeds=rollout.negative_prompt_embeds,
        height=64,
        width=64,
        num_frames=5,
        num_inference_steps=ROLLOUT_STEPS,
        guidance_scale=1.0,
        generator=[torch.Generator().manual_seed(3)],
        output_type="latent",
        return_dict=False,
    )[0]
    video = pixels.unsqueeze(2).repeat(1, 1, 5, 1, 1)  # the pipeline pads the picture to num_frames
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        mean = encoder(pixels)
        assert torch.equal(encoder(video)[:, :, :1], mean)  # the causal VAE: frame 0 sees the picture only
        sample = encoder.vae.encode(video).latent_dist.sample(generator)  # type: ignore[operator]
    normalized_sample = (sample[:, :, :1] - encoder.latents_mean) / encoder.latents_std
    assert (raw[:, :, :1] - normalized_sample).abs().max() < 0.05  # the sample + a σ_min/σ_max residual
    assert (raw[:, :, :1] - mean).abs().max() > 0.5  # ...which is not the deterministic mean


def test_same_seed_same_latents_and_batch_does_not_matter(model: TheWorld, rollout: CosmosRollout) -> None:
    pixels = _pixels(model, 2)
    first = rollout.rollout(pixels, 4, seed=0, num_inference_steps=ROLLOUT_STEPS)
    again = rollout.rollout(pixels, 4, seed=0, num_inference_steps=ROLLOUT_STEPS)
    other = rollout.rollout(pixels, 4, seed=1, num_inference_steps=ROLLOUT_STEPS)
    alone = rollout.rollout(pixels[1:], 4, seed=0, num_inference_steps=ROLLOUT_STEPS)
    assert torch.equal(first, again)
    assert (first[:, :, 1:] - other[:, :, 1:]).abs().max() > 1e-2
    assert torch.equal(first[:, :, 0], other[:, :, 0])  # the picture's own frame does not depend on the seed
    assert torch.allclose(first[1:], alone, atol=1e-4)  # one generator per picture


# ----------------------------------------------------------------------------------------------------------------
# World tokens
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, 4, 8])
def test_world_tokens_match_processor_placeholders(model: TheWorld, steps: int) -> None:
    inputs = _inputs(model, 2, steps)
    per_image = int((inputs["input_ids"] == model.config.world_token_id).sum()) // 2
    assert per_image == model.config.num_world_tokens(steps) == (1 + steps // 4) * 64
    assert per_image == model.processor.world_tokens_for_steps(steps)
    with torch.no_grad():
        world = model.encode_world(inputs["world_pixel_values"], steps)
        output: Any = model(**inputs, num_world_steps=steps)
    assert tuple(world.shape) == (2, per_image, 64)
    assert torch.allclose(output.world_hidden_states, world)
    assert bool(torch.isfinite(output.logits).all())


def test_processor_steps_for_a_block_of_calls(model: TheWorld) -> None:
    processor = model.processor
    other = copy.deepcopy(processor)
    world_id = model.config.world_token_id

    def count(proc: Any, **kwargs: Any) -> int:
        batch = proc(text="<start_of_image>", images=pictures(1), return_tensors="pt", **kwargs)
        return int((batch["input_ids"] == world_id).sum())

    with processor.using_world_steps(8):
        assert count(processor) == 192  # the block's steps
        assert count(processor, num_world_steps=4) == 128  # an explicit keyword wins
        assert count(other) == 64  # another processor is not affected
    assert count(processor) == 64
    with pytest.raises(ValueError) as error, processor.using_world_steps(3):
        pass
    assert "num_world_steps=3" in one_line_error(error)


def test_temporal_embeddings_make_frames_distinguishable(model: TheWorld) -> None:
    encoder = model.world_encoder
    assert encoder is not None
    with torch.no_grad():
        frame = encoder(_pixels(model, 1))  # [1, 16, 1, 8, 8]
        twice = frame.repeat(1, 1, 2, 1, 1)  # the same latent at t = 0 and t = 1
        tokens = model.world_projector(twice).view(1, 2, 64, -1)
        assert (tokens[:, 0] - tokens[:, 1]).abs().max() > 1e-3
        same_table = copy.deepcopy(model.world_projector)
        same_table.temporal_embedding[1].copy_(same_table.temporal_embedding[0])
        tied = same_table(twice).view(1, 2, 64, -1)
    assert torch.equal(tied[:, 0], tied[:, 1])  # the difference comes from the temporal embedding alone


# ----------------------------------------------------------------------------------------------------------------
# Loading: no T5 resident, no guardrail, VAE shared, nothing saved
# ----------------------------------------------------------------------------------------------------------------


def test_t5_is_freed_and_prompt_embeddings_are_cached(
    tiny: TinyCheckpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_prompt_memory_cache()
    loaded: list[weakref.ReferenceType[Any]] = []
    original = T5EncoderModel.from_pretrained

    def recording(*args: Any, **kwargs: Any) -> Any:
        encoder = original(*args, **kwargs)
        loaded.append(weakref.ref(encoder))
        return encoder

    monkeypatch.setattr(T5EncoderModel, "from_pretrained", recording)
    built = CosmosRollout.from_pretrained(tiny.cosmos_pipeline, prompt_cache_dir=tmp_path)
    gc.collect()
    assert len(loaded) == 1 and loaded[0]() is None  # T5 ran once and is gone
    assert not any(isinstance(obj, T5EncoderModel) for obj in gc.get_objects())
    assert built.text_encoder is None and built.pipeline.tokenizer is None
    files = list(tmp_path.glob("cosmos-prompt-*.safetensors"))
    assert len(files) == 1
    first = (built.prompt_embeds, built.negative_prompt_embeds)
    assert first[0].shape == (1, 512, 32) and not torch.equal(first[0], first[1])

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("T5 was loaded although the prompt embeddings are cached")

    monkeypatch.setattr(T5EncoderModel, "from_pretrained", forbidden)
    clear_prompt_memory_cache()
    from_disk = load_prompt_embeddings(str(tiny.cosmos_pipeline), prompt_cache_dir=tmp_path)
    assert torch.equal(from_disk[0], first[0]) and torch.equal(from_disk[1], first[1])
    files[0].unlink()
    from_memory = load_prompt_embeddings(str(tiny.cosmos_pipeline), prompt_cache_dir=tmp_path)  # the memory cache
    assert from_memory[0] is from_disk[0]
    assert "cosmos_guardrail" not in sys.modules


def test_a_corrupt_cache_file_is_recomputed(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    clear_prompt_memory_cache()
    good = load_prompt_embeddings(str(tiny.cosmos_pipeline), prompt_cache_dir=tmp_path)
    (path,) = tmp_path.glob("cosmos-prompt-*.safetensors")
    path.write_bytes(b"not a safetensors file")
    clear_prompt_memory_cache()
    again = load_prompt_embeddings(str(tiny.cosmos_pipeline), prompt_cache_dir=tmp_path)
    assert torch.equal(good[0], again[0])
    assert path.stat().st_size > 1000  # rewritten


def test_cache_key_follows_checkpoint_and_prompt(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    identity = rollout_module.checkpoint_identity(str(tiny.cosmos_pipeline), {})
    key = rollout_module.prompt_cache_key(identity, CONDITIONING_PROMPT, "bad", 512)
    assert key != rollout_module.prompt_cache_key(identity, "another prompt", "bad", 512)
    assert key != rollout_module.prompt_cache_key(identity + "x", CONDITIONING_PROMPT, "bad", 512)
    assert prompt_cache_file(tmp_path, key).name == f"cosmos-prompt-{key}.safetensors"
    assert rollout_module.checkpoint_identity("nvidia/Cosmos-Predict2-2B-Video2World", {"revision": "abc"}).endswith(
        "@abc"
    )


def test_model_rollout_shares_the_vae_and_is_never_saved(
    model: TheWorld, rollout: CosmosRollout, tmp_path: Path
) -> None:
    encoder = model.world_encoder
    assert encoder is not None
    assert rollout.pipeline.vae is encoder.vae and rollout.encoder is encoder
    assert model.world_rollout() is rollout  # loaded once
    assert not any("transformer_blocks" in name for name, _ in model.named_modules())
    assert not any(key.startswith(("cosmos", "world_rollout")) for key in model.state_dict())
    pixels = _pixels(model, 1)
    with torch.no_grad():
        before = model.encode_world(pixels, 4)
    model.save_pretrained(tmp_path / "saved")
    saved = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert not any(name in saved for name in ("transformer", "text_encoder", "vae", "world_vae", "model_index.json"))
    assert not list((tmp_path / "saved").rglob("*prompt*"))
    config = json.loads((tmp_path / "saved" / "config.json").read_text(encoding="utf-8"))
    assert config["world_rollout_steps"] == ROLLOUT_STEPS and config["world_rollout_seed"] == 0
    processor: Any = AutoProcessor.from_pretrained(tmp_path / "saved")  # the per-call steps survive saving
    assert isinstance(processor, TheWorldProcessor) and processor.world_tokens_for_steps(8) == 192
    reloaded = TheWorld.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        after = reloaded.encode_world(pixels, 4)
    assert torch.equal(before, after)  # the same seed, the same rollout, the same world tokens


def test_guardrail_stand_in_fails_closed_and_cosmos_guardrail_is_never_imported(rollout: CosmosRollout) -> None:
    checker = rollout.pipeline.safety_checker
    assert isinstance(checker, GuardrailStandIn) and checker.to("cpu") is checker
    with pytest.raises(RuntimeError, match="text screening"):
        checker.check_text_safety("anything")
    with pytest.raises(RuntimeError, match="output_type='latent'"):
        checker.check_video_safety(None)
    assert "cosmos_guardrail" not in sys.modules


# ----------------------------------------------------------------------------------------------------------------
# Generation end to end
# ----------------------------------------------------------------------------------------------------------------


def test_generate_with_four_world_steps(
    model: TheWorld, rollout: CosmosRollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = rollout.rollout

    def counting(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(int(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(rollout, "rollout", counting)
    inputs = _inputs(model, 1, 4)
    output = model.generate(**inputs, num_world_steps=4, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3
    assert calls == [4]  # once, at prefill; decode steps reuse the KV cache
    answer = model.generate(pictures(1)[0], QUESTION, max_new_tokens=3, num_world_steps=4)
    assert isinstance(answer, str) and calls == [4, 4]
    assert model.processor.world_tokens_for_steps() == 64  # the block override did not leak


# ----------------------------------------------------------------------------------------------------------------
# One-line errors
# ----------------------------------------------------------------------------------------------------------------


def test_too_many_and_invalid_steps_are_one_line_errors(model: TheWorld, tiny: TinyCheckpoints) -> None:
    pixels = _pixels(model, 1)
    inputs = _inputs(model, 1, None)
    for bad, expected in ((20, "exceeds max_world_steps=16"), (6, "multiple of 4"), (-4, ">= 0")):
        with pytest.raises(ValueError) as error:
            model.encode_world(pixels, bad)
        assert f"num_world_steps={bad}" in one_line_error(error) and expected in str(error.value)
        with pytest.raises(ValueError) as error:
            model(**inputs, num_world_steps=bad)
        assert f"num_world_steps={bad}" in one_line_error(error)
        with pytest.raises(ValueError) as error:
            model.generate(pictures(1)[0], QUESTION, max_new_tokens=1, num_world_steps=bad)
        assert f"num_world_steps={bad}" in one_line_error(error)
        with pytest.raises(ValueError) as error:
            _inputs(model, 1, bad)
        assert f"num_world_steps={bad}" in one_line_error(error)
    with pytest.raises(ValueError) as error:
        TheWorldConfig(num_world_steps=2)
    assert "num_world_steps=2" in one_line_error(error) and "multiple of 4" in str(error.value)
    with pytest.raises(ValueError) as error:
        TheWorldConfig(world_rollout_steps=0)
    assert "world_rollout_steps=0" in one_line_error(error)


def test_placeholder_and_step_mismatch_is_one_line(model: TheWorld) -> None:
    inputs = _inputs(model, 1, 4)  # placeholders for 4 steps
    with pytest.raises(ValueError) as error:
        model(**inputs)  # ...but the model is asked for the default, 0
    message = one_line_error(error)
    assert "num_world_steps=0" in message and "which is num_world_steps=4" in message
    with pytest.raises(ValueError) as error:
        model(**_inputs(model, 1, 0), num_world_steps=8)
    assert "num_world_steps=8" in one_line_error(error) and "num_world_steps=0" in str(error.value)


def test_a_vae_only_checkpoint_cannot_roll_out(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as error:
        CosmosRollout.from_pretrained(tiny.cosmos, prompt_cache_dir=tmp_path)
    message = one_line_error(error)
    assert f"cosmos_model_name={str(tiny.cosmos)!r}" in message and "text_encoder/" in message
    with pytest.raises(ValueError) as error:
        CosmosRollout.from_pretrained(tiny.cosmos_pipeline, prompt_cache_dir=tmp_path, bogus=1)
    assert "bogus" in one_line_error(error)
