"""World-token layouts: the pooled-spatial mode (k x k average pool before the spatial projection) beside the spatial
and channel modes — token counts everywhere they are computed, the pooling itself, processor placeholders against
embeddings, save/load, training, and one-line errors for bad pool sizes."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import chat_inputs, pictures
from theworld import TheWorld, TheWorldConfig
from theworld.constants import PROJECTION_MODES
from theworld.testing import TinyCheckpoints
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.run import build_trainer

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pooled(tiny: TinyCheckpoints) -> TheWorld:
    """A converted tiny TheWorld in pooled mode: 64 px → 8x8 latents → 2x2 pool → 16 world tokens per frame."""
    torch.manual_seed(0)
    model = TheWorld.from_pretrained(
        tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64, world_projection_mode="pooled"
    )
    return model.eval()


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ----------------------------------------------------------------------------------------------------------------
# Token counts
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 128, 256])
def test_token_counts_agree_between_configs(size: int) -> None:
    side = size // 8
    per_frame = {"spatial": side * side, "channel": 16}
    for k in (1, 2, 4):
        per_frame[f"pooled/{k}"] = (side // k) ** 2
    assert set(PROJECTION_MODES) == {"spatial", "pooled", "channel"}
    for layout, expected in per_frame.items():
        mode, _, pool = layout.partition("/")
        pool_size = int(pool or 2)
        model_config = TheWorldConfig(world_image_size=size, world_projection_mode=mode, world_pool_size=pool_size)
        assert model_config.tokens_per_world_frame() == expected, layout
        assert model_config.world_feature_dim == (side * side if mode == "channel" else 16), layout
        for steps in (0, 4, 8):
            tokens = model_config.num_world_tokens(steps)
            assert tokens == (1 + steps // 4) * expected, (layout, steps)
            training = TrainingConfig(
                world_image_size=size,
                world_projection_mode=mode,  # type: ignore[arg-type]
                world_pool_size=pool_size,
                num_world_steps=steps,
                max_length=8192,
            )
            assert training.world_tokens_per_image() == tokens + 2, (layout, steps)  # + <start/end_of_world>


def test_token_budget_doc_holds_the_computed_tables() -> None:
    """docs/architecture/token-budget.md shows exactly what `benchmarks/token_modes.py --budget-table` computes."""
    spec = importlib.util.spec_from_file_location("token_modes_benchmark", ROOT / "benchmarks" / "token_modes.py")
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rows = [line for line in benchmark.budget_tables().splitlines() if line.startswith("|")]
    doc = (ROOT / "docs" / "architecture" / "token-budget.md").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 + 12 + 2 + 6
    missing = [row for row in rows if row not in doc]
    assert not missing, f"token-budget.md is stale (python benchmarks/token_modes.py --budget-table): {missing[0]}"


def test_spatial_and_channel_are_unchanged(world_model: TheWorld) -> None:
    config = world_model.config
    assert (config.world_projection_mode, config.num_world_tokens(), config.num_world_tokens(4)) == ("spatial", 64, 128)
    assert world_model.world_projector.mode == "spatial"
    channel = TheWorldConfig(world_image_size=64, world_projection_mode="channel", world_pool_size=3)  # k ignored
    assert (channel.num_world_tokens(), channel.world_feature_dim) == (16, 64)
    assert "world_pool_size" not in TrainingConfig(world_projection_mode="channel").model_kwargs()
    assert TrainingConfig(world_projection_mode="pooled", world_image_size=64).model_kwargs()["world_pool_size"] == 2


# ----------------------------------------------------------------------------------------------------------------
# The pooled projection
# ----------------------------------------------------------------------------------------------------------------


def test_pooled_tokens_are_the_spatial_tokens_of_the_average_pooled_grid(pooled: TheWorld) -> None:
    projector = pooled.world_projector
    latents = torch.randn(2, 16, 2, 8, 8, generator=torch.Generator().manual_seed(0))  # 2 latent frames
    with torch.no_grad():
        tokens = projector(latents)
        spatial = copy.deepcopy(projector)
        spatial.mode = "spatial"
        reference = spatial(torch.nn.functional.avg_pool3d(latents, kernel_size=(1, 2, 2)))
    assert tuple(tokens.shape) == (2, 2 * 16, pooled.config.get_text_config().hidden_size)
    torch.testing.assert_close(tokens, reference)
    shifted = latents.clone()
    shifted[:, :, :, 0, 1] += 1.0  # inside the first 2x2 block of every frame
    with torch.no_grad():
        changed = (projector(shifted) - tokens).abs().amax(dim=-1)  # [2, 32]
    assert bool((changed[:, [0, 16]] > 0).all()) and float(changed[:, 1:16].max()) == 0.0  # only token 0 per frame


def test_processor_placeholders_equal_world_embeddings(pooled: TheWorld) -> None:
    config, processor = pooled.config, pooled.processor
    inputs = chat_inputs(processor, pictures(2))
    per_row = (inputs["input_ids"] == config.world_token_id).sum(dim=1).tolist()
    assert per_row == [16, 16] == [config.num_world_tokens()] * 2
    assert processor.world_tokens_for_steps(4) == config.num_world_tokens(4) == 32
    with torch.no_grad():
        world = pooled.encode_world(inputs["world_pixel_values"])
        output: Any = pooled(**inputs, labels=inputs["input_ids"])
    assert tuple(world.shape) == (2, 16, config.get_text_config().hidden_size)
    assert torch.equal(output.world_hidden_states, world)
    assert bool(torch.isfinite(output.loss))


def test_save_load_round_trip(pooled: TheWorld, tmp_path: Path) -> None:
    pixels = pooled.processor.world_pixels(pictures(2))
    with torch.no_grad():
        expected = pooled.encode_world(pixels)
    for delta in (False, True):
        directory = tmp_path / ("delta" if delta else "full")
        pooled.save_pretrained(directory, delta=delta)
        loaded = TheWorld.from_pretrained(directory).eval()
        config = loaded.config
        assert (config.world_projection_mode, config.world_pool_size, config.num_world_tokens()) == ("pooled", 2, 16)
        assert loaded.processor.num_world_tokens == 16 and loaded.processor.world_tokens_per_frame == 16
        with torch.no_grad():
            assert torch.equal(loaded.encode_world(pixels), expected)
    with pytest.raises(ValueError) as error:
        TheWorld.from_pretrained(tmp_path / "full", world_pool_size=4)
    assert "world_pool_size=4 does not match the checkpoint" in _one_line(error)


def test_a_spatial_checkpoint_ignores_a_pool_size(world_model: TheWorld, tmp_path: Path) -> None:
    world_model.save_pretrained(tmp_path / "spatial", delta=True)
    loaded = TheWorld.from_pretrained(tmp_path / "spatial", world_pool_size=4)  # a training config always passes one
    assert loaded.config.world_projection_mode == "spatial" and loaded.config.num_world_tokens() == 64


def test_training_steps_in_pooled_mode(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    os.environ["THEWORLD_TINY_DIR"] = str(tiny.gemma.parent)
    overrides = {
        "world_projection_mode": "pooled",
        "world_pool_size": "4",
        "batch_size": "4",
        "num_samples": "8",
        "max_steps": "2",
        "num_eval_samples": "0",
        "logging_steps": "1",
        "save_steps": "100",
        "freeze_gemma_vision": "true",
        "freeze_gemma_language": "true",
        "output_dir": str(tmp_path / "run"),
    }
    trainer, _ = build_trainer(TrainingConfig.from_json(ROOT / "configs" / "tiny.json", overrides))
    model: Any = trainer.model
    assert model.config.num_world_tokens() == 4  # 8x8 latents, 4x4 blocks
    before = model.world_projector.fc1.weight.detach().clone()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(model.world_projector.fc1.weight, before)


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_bad_pool_sizes_are_one_line_errors(tiny: TinyCheckpoints, pooled: TheWorld) -> None:
    with pytest.raises(ValueError) as error:
        TheWorldConfig(world_image_size=64, world_projection_mode="pooled", world_pool_size=3)
    assert _one_line(error) == (
        "world_pool_size=3: expected a divisor of the latent side 8 (world_image_size=64 / 8) in pooled mode, "
        "one of [1, 2, 4, 8]"
    )
    for bad in (0, -2, True, "2"):
        with pytest.raises(ValueError) as error:
            TheWorldConfig(world_image_size=64, world_projection_mode="pooled", world_pool_size=bad)  # type: ignore[arg-type]
        assert _one_line(error).startswith(f"world_pool_size={bad!r}: expected an integer >= 1")
    with pytest.raises(ValueError) as error:
        TheWorldConfig(world_projection_mode="pool")
    assert "expected one of ('spatial', 'pooled', 'channel')" in _one_line(error)
    with pytest.raises(ValueError) as error:  # before any weight is loaded
        TheWorld.from_pretrained(
            tiny.gemma,
            cosmos_model_name=str(tiny.cosmos),
            world_image_size=64,
            world_projection_mode="pooled",
            world_pool_size=16,
        )
    assert _one_line(error).startswith("world_pool_size=16: expected a divisor of the latent side 8")
    with pytest.raises(ConfigError) as config_error:
        TrainingConfig(world_projection_mode="pooled", world_image_size=48, world_pool_size=4)
    assert config_error.value.key == "world_pool_size" and "one of [1, 2, 3, 6]" in _one_line(config_error)
    with pytest.raises(ConfigError) as config_error:
        TrainingConfig(world_projection_mode="pooled", world_pool_size=0)
    assert _one_line(config_error) == "world_pool_size=0: expected > 0"
    with pytest.raises(ValueError) as error:
        pooled.world_projector(torch.zeros(1, 16, 1, 5, 5))  # a grid the pool cannot tile
    assert _one_line(error).startswith("world latents of 5x5 cannot be pooled by world_pool_size=2")
