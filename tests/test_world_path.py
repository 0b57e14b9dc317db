"""The world path is real: world pictures reach the logits, at the right place, through generate() and the cache."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.helpers import QUESTION, chat_inputs, pictures
from theworld import TheWorld
from theworld.modeling.generation import build_user_messages


def _positions(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    return (input_ids[0] == token_id).nonzero().flatten()


def test_layout_world_before_image(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    ids = batch["input_ids"]
    cfg = world_model.config
    sow, eow = _positions(ids, cfg.sow_token_id), _positions(ids, cfg.eow_token_id)
    world = _positions(ids, cfg.world_token_id)
    image = _positions(ids, cfg.image_token_id)
    assert len(sow) == len(eow) == 1
    assert len(world) == cfg.num_world_tokens() == 64
    assert world.min() == sow + 1 and world.max() == eow - 1  # exactly between SOW and EOW
    assert eow < _positions(ids, cfg.boi_token_id)[0] < image.min()  # world first, then SigLIP
    types = batch["token_type_ids"][0]
    assert bool(types[world].all()) and bool(types[image].all())
    assert int(types.sum()) == len(world) + len(image)
    assert batch["world_pixel_values"].shape == (1, 3, 64, 64)


def test_language_model_sees_text_markers_image_and_world_rows(world_model: TheWorld) -> None:
    """Fusion writes into the embedding lookup in place: every row the LM receives is still exactly one of the text
    embedding, the trained marker row, the SigLIP feature or the world embedding, in order, in every example."""
    batch = chat_inputs(world_model.processor, pictures(2))
    ids, cfg = batch["input_ids"], world_model.config
    seen: dict[str, torch.Tensor] = {}

    def capture(_module: torch.nn.Module, _args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        embeds = kwargs["inputs_embeds"]
        assert isinstance(embeds, torch.Tensor)
        seen["embeds"] = embeds.clone()

    handle = world_model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            world = world_model.encode_world(batch["world_pixel_values"])
            world_model(**{k: v for k, v in batch.items() if k != "world_pixel_values"}, world_embeds=world)
            embed = world_model.get_input_embeddings()
            text = embed(ids)
            image = world_model.model.get_image_features(batch["pixel_values"]).pooler_output
            markers = world_model.world_token_embedding.weight * embed.embed_scale
    finally:
        handle.remove()
    embeds, hidden = seen["embeds"], text.shape[-1]
    torch.testing.assert_close(embeds[ids == cfg.world_token_id], world.reshape(-1, hidden))
    torch.testing.assert_close(embeds[ids == cfg.image_token_id], image.reshape(-1, hidden))
    for row, token_id in enumerate((cfg.sow_token_id, cfg.eow_token_id)):
        written = embeds[ids == token_id]
        assert written.shape[0] == 2  # one marker per example
        torch.testing.assert_close(written, markers[row].expand_as(written))
    special = torch.tensor([cfg.sow_token_id, cfg.eow_token_id, cfg.world_token_id, cfg.image_token_id])
    rest = ~torch.isin(ids, special)
    torch.testing.assert_close(embeds[rest], text[rest])


def test_changing_only_world_image_changes_logits_after_eow(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    other = world_model.processor.world_pixels(pictures(1, offset=50))
    with torch.no_grad():
        base = world_model(**batch).logits
        changed = world_model(**{**batch, "world_pixel_values": other}).logits
    eow = int(_positions(batch["input_ids"], world_model.config.eow_token_id)[0])
    sow = int(_positions(batch["input_ids"], world_model.config.sow_token_id)[0])
    assert torch.equal(base[:, :sow], changed[:, :sow])  # causal: nothing before the world block moves
    assert (base[:, eow:] - changed[:, eow:]).abs().max() > 1e-4


def test_mismatched_world_features_raise(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    two = world_model.processor.world_pixels(pictures(2))
    with pytest.raises(ValueError, match="World embeddings and world tokens do not match"):
        world_model(**{**batch, "world_pixel_values": two})
    without = {k: v for k, v in batch.items() if k != "world_pixel_values"}
    with pytest.raises(ValueError, match="world placeholder tokens"):
        world_model(**without)


def test_projector_weights_change_first_generated_logits(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    first = world_model.generate(
        **batch, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    other = copy.deepcopy(world_model)
    with torch.no_grad():
        other.world_projector.fc2.weight.add_(0.5 * torch.randn_like(other.world_projector.fc2.weight))
    second = other.generate(
        **batch, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    assert (first.logits[0] - second.logits[0]).abs().max() > 1e-4


def test_cached_generation_equals_manual_no_cache_loop(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    out = world_model.generate(
        **batch, max_new_tokens=8, min_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    prompt_length = batch["input_ids"].shape[1]
    ids = batch["input_ids"]
    types = batch["token_type_ids"]
    with torch.no_grad():
        for step in range(8):
            logits = world_model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                token_type_ids=types,
                pixel_values=batch["pixel_values"],
                world_pixel_values=batch["world_pixel_values"],
                use_cache=False,
            ).logits[:, -1]
            # the cached step saw the world tokens only through the KV cache, yet gives the same distribution
            torch.testing.assert_close(out.logits[step], logits, rtol=1e-4, atol=1e-4)
            next_id = logits.argmax(-1, keepdim=True)
            generated = out.sequences[:, prompt_length + step : prompt_length + step + 1]
            top2 = logits.topk(2, dim=-1).values[0]
            assert torch.equal(next_id, generated) or float(top2[0] - top2[1]) < 1e-4  # equal unless a numerical tie
            ids = torch.cat([ids, generated], dim=1)
            types = torch.cat([types, torch.zeros_like(generated)], dim=1)


def test_world_embedding_rms_matches_text_at_init(world_model: TheWorld) -> None:
    batch = chat_inputs(world_model.processor, pictures(1))
    with torch.no_grad():
        world = world_model.encode_world(batch["world_pixel_values"])
        ids = batch["input_ids"]
        text_mask = batch["token_type_ids"] == 0
        text = world_model.get_input_embeddings()(ids)[text_mask]
    world_rms = float(world.pow(2).mean().sqrt())
    text_rms = float(text.pow(2).mean().sqrt())
    assert 0.5 <= world_rms / text_rms <= 2.0, (world_rms, text_rms)


def test_convenience_generate_and_text_only(world_model: TheWorld) -> None:
    image = pictures(1)[0]
    answer = world_model.generate(image, QUESTION, max_new_tokens=4)
    assert isinstance(answer, str)
    assert world_model.generate(prompt=QUESTION, image=image, max_new_tokens=4) == answer
    text_only = world_model.generate(None, "What is two plus two?", max_new_tokens=4)
    assert isinstance(text_only, str)
    # text-only batches take Gemma's own path: no world tokens, no world inputs
    text = world_model.processor.apply_chat_template(build_user_messages("Hello", False), tokenize=False)
    batch = world_model.processor(text=text, return_tensors="pt", add_special_tokens=False)
    assert "world_pixel_values" not in batch
    with torch.no_grad():
        assert torch.isfinite(world_model(**batch).logits).all()


def test_channel_mode_token_count(tiny) -> None:  # type: ignore[no-untyped-def]
    model = TheWorld.from_pretrained(
        tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64, world_projection_mode="channel"
    ).eval()
    assert model.config.num_world_tokens() == 16
    batch = chat_inputs(model.processor, pictures(2))
    assert int((batch["input_ids"] == model.config.world_token_id).sum()) == 2 * 16
    with torch.no_grad():
        out = model(**batch)
    assert out.world_hidden_states is not None and out.world_hidden_states.shape == (2, 16, 64)


def test_dtype_and_device_map_pass_through(tiny) -> None:  # type: ignore[no-untyped-def]
    model = TheWorld.from_pretrained(
        tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64, dtype=torch.bfloat16, device_map="cpu"
    ).eval()
    assert model.dtype == torch.bfloat16
    encoder = model.world_encoder
    assert encoder is not None and encoder.vae_dtype == torch.bfloat16
    assert model.world_projector.fc1.weight.dtype == torch.bfloat16
    batch = chat_inputs(model.processor, pictures(1))
    batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()
