"""The memory planner (`theworld.plan`): shipped configs, meta-device parameter counts, memory invariants, CLI.

Parameter counts are checked against independently built meta-device models (shipped configs) and against the real
tiny TheWorld of `theworld.testing`; the activation formulas against the tensors a real layer saves for backward.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AutoencoderKLWan, CosmosTransformer3DModel
from transformers import (
    AutoConfig,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    SiglipVisionConfig,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
)
from transformers.models.gemma3.modeling_gemma3 import Gemma3DecoderLayer, Gemma3RotaryEmbedding
from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

from theworld import TheWorld
from theworld.modeling import TheWorldConfig
from theworld.modeling.world_projector import WorldProjector, WorldTokenEmbedding
from theworld.plan import SHIPPED_CONFIGS, MemoryPlan, PlanOptions, main, plan_memory
from theworld.plan import activations as act
from theworld.testing import TinyCheckpoints
from theworld.training.config import TrainingConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "default.json"
GEMMA_DIR = SHIPPED_CONFIGS / "google" / "gemma-3-4b-it"
COSMOS_DIR = SHIPPED_CONFIGS / "nvidia" / "Cosmos-Predict2-2B-Video2World"
FREEZE_KEYS = ("projection", "vision", "language", "full")


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields a tied tensor once


def diffusers_model(model_class: Any, subfolder: str) -> Any:
    """A diffusers model built from a shipped Cosmos config (call under `torch.device("meta")`)."""
    config: Any = model_class.load_config(COSMOS_DIR, subfolder=subfolder)
    return model_class.from_config(config)


def default_config(**changes: Any) -> TrainingConfig:
    data = json.loads(DEFAULT_CONFIG.read_text())
    data.update(changes)
    return TrainingConfig.from_dict(data, source=str(DEFAULT_CONFIG))


@pytest.fixture(scope="module")
def default_plan() -> MemoryPlan:
    return plan_memory(default_config(), PlanOptions(batch_size=1))


# ---- shipped configs ----
def test_shipped_gemma_config_is_gemma_3_4b() -> None:
    config: Any = AutoConfig.from_pretrained(GEMMA_DIR)  # as transformers resolves it
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        2560,
        34,
        8,
        4,
    )
    assert (text.head_dim, text.intermediate_size, text.vocab_size, text.sliding_window) == (256, 10240, 262208, 1024)
    assert text.layer_types == (["sliding_attention"] * 5 + ["full_attention"]) * 5 + ["sliding_attention"] * 4
    assert text.rope_parameters["full_attention"] == {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1152, 27, 16)
    assert (vision.intermediate_size, vision.image_size, vision.patch_size, vision.vision_use_head) == (
        4304,
        896,
        14,
        False,
    )
    assert config.mm_tokens_per_image == 256


def test_shipped_configs_reproduce_published_sizes() -> None:
    """A wrong field shows as a parameter count off the published size (each checked to its stated precision)."""
    with torch.device("meta"):
        gemma: Any = Gemma3ForConditionalGeneration(Gemma3Config.from_pretrained(GEMMA_DIR))
        vae = diffusers_model(AutoencoderKLWan, "vae")
        transformer = diffusers_model(CosmosTransformer3DModel, "transformer")
        t5_config = T5Config.from_pretrained(COSMOS_DIR, subfolder="text_encoder")
        t5_encoder = T5EncoderModel(t5_config)
        t5_full = T5ForConditionalGeneration(t5_config)
    vision = numel(gemma.model.vision_tower) + numel(gemma.model.multi_modal_projector)
    assert round(numel(gemma) / 1e9, 1) == 4.3  # "Gemma 3 4B": 4.30 B
    assert round(vision / 1e9, 2) == 0.42  # SigLIP so400m at 896 px + projector
    assert round(numel(vae) / 1e6) == 127  # Wan 2.1 VAE: 127 M
    assert round(numel(transformer) / 1e9) == 2  # Cosmos-Predict2-2B
    assert round(numel(t5_full) / 1e9) == 11  # the whole t5-11b (11.3 B): the encoder config is that model's
    assert abs(numel(t5_encoder) / 4.7e9 - 1) < 0.05  # the encoder alone: 4.865 B (quoted as "~4.7 B")


def test_planner_counts_equal_meta_models() -> None:
    """Per component and in total, the planner's counts are those of the models built from the same files."""
    plan = plan_memory(default_config(num_world_steps=4, max_length=4096), PlanOptions(batch_size=1))
    world_config = TheWorldConfig.from_gemma_config(Gemma3Config.from_pretrained(GEMMA_DIR), num_world_steps=4)
    with torch.device("meta"):
        gemma: Any = Gemma3ForConditionalGeneration(Gemma3Config.from_pretrained(GEMMA_DIR))
        world = numel(WorldProjector(world_config)) + numel(WorldTokenEmbedding(world_config))
        vae = diffusers_model(AutoencoderKLWan, "vae")
        transformer = diffusers_model(CosmosTransformer3DModel, "transformer")
        t5 = T5EncoderModel(T5Config.from_pretrained(COSMOS_DIR, subfolder="text_encoder"))
    expected = {
        "gemma_vision": numel(gemma.model.vision_tower) + numel(gemma.model.multi_modal_projector),
        "gemma_language": numel(gemma.model.language_model) + numel(gemma.lm_head) - gemma.lm_head.weight.numel(),
        "world_projector": world,
        "cosmos_vae": numel(vae),
        "cosmos_transformer": numel(transformer),
        "t5_encoder": numel(t5),
    }
    assert plan.parameters.total == expected
    assert plan.parameters.total_all() == numel(gemma) + world + numel(vae) + numel(transformer) + numel(t5)
    trainable = plan.parameters.trainable
    assert trainable["projection"] == {name: world if name == "world_projector" else 0 for name in expected}
    assert trainable["full"]["gemma_language"] == expected["gemma_language"]
    assert trainable["full"]["cosmos_transformer"] == trainable["full"]["t5_encoder"] == 0  # rollout: frozen
    # float32 weights on the GPU: everything but T5, which the rollout runs once and frees before training
    resident = plan.parameters.total_all() - expected["t5_encoder"]
    assert plan.memory["projection"]["weights"] == 4 * resident


# ---- the real tiny model ----
def tiny_config(tiny: TinyCheckpoints, **changes: Any) -> TrainingConfig:
    data = {"model_name": str(tiny.gemma), "cosmos_model_name": str(tiny.cosmos), "world_image_size": 64, **changes}
    return TrainingConfig.from_dict({"mixed_precision": "no", "max_length": 256, **data})


def test_tiny_counts_equal_the_real_tiny_model(tiny: TinyCheckpoints, world_model: TheWorld) -> None:
    plan = plan_memory(tiny_config(tiny))
    table = world_model.trainable_parameter_table()  # the fixture's freeze set: projection only
    assert {name: total for name, _, total in table} == {name: plan.parameters.total[name] for name, _, _ in table}
    assert {name: trainable for name, trainable, _ in table} == {
        name: plan.parameters.trainable["projection"][name] for name, _, _ in table
    }
    encoder = world_model.world_encoder
    assert encoder is not None
    assert plan.parameters.total_all() == numel(world_model) + numel(encoder)  # the frozen VAE is outside the tree
    embedding: Any = world_model.get_input_embeddings()
    assert plan.world["embedding_rows"] == embedding.weight.shape[0]
    assert plan.sequence.world == world_model.config.num_world_tokens() == 64


def test_tiny_channel_mode_projector_matches(tiny: TinyCheckpoints) -> None:
    """The projector's shapes depend on the mode (channel: one token per latent channel, features = h*w)."""
    torch.manual_seed(0)
    model = TheWorld.from_pretrained(
        tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64, world_projection_mode="channel"
    )
    plan = plan_memory(tiny_config(tiny, world_projection_mode="channel"))
    projector = numel(model.world_projector) + numel(model.world_token_embedding)
    assert plan.parameters.total["world_projector"] == projector
    assert plan.sequence.world == model.config.num_world_tokens() == 16
    spatial = plan_memory(tiny_config(tiny)).parameters.total["world_projector"]
    assert spatial != projector


# ---- activation formulas against what a real layer saves ----
def saved_activation_bytes(run: Any, leading: tuple[int, ...], exclude: list[torch.Tensor]) -> int:
    """Distinct storages autograd saves during `run()` whose first dimension is the batch or batch x length.

    That leaves out the layer's weights, autocast's 16-bit weight copies and the `1 + weight` of each RMSNorm
    (constant size, not activations); the dimensions are chosen so no weight dimension equals a `leading` one.
    """
    skip = {t.untyped_storage()._cdata for t in exclude}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in skip and tensor.ndim > 0 and tensor.shape[0] in leading:
            seen.setdefault(storage._cdata, storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


def regime_context(regime: act.Regime) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=regime == "amp")


@pytest.mark.parametrize("regime", act.REGIMES)
def test_gemma_layer_formula_matches_saved_tensors(regime: act.Regime) -> None:
    # Gemma 3 4B's ratios, shrunk: q = 0.8h, kv = 0.4h, i = 4h.
    config = Gemma3TextConfig(
        hidden_size=80,
        intermediate_size=320,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_hidden_layers=1,
        layer_types=["full_attention"],
        vocab_size=64,
        query_pre_attn_scalar=16,
    )
    config._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if regime == "pure16" else torch.float32
    torch.manual_seed(0)
    layer = Gemma3DecoderLayer(config, 0).to(dtype)
    batch, length = 3, 24
    hidden = torch.randn(batch, length, 80, dtype=dtype, requires_grad=True)
    cos, sin = Gemma3RotaryEmbedding(config)(hidden, torch.arange(length)[None], "full_attention")
    with regime_context(regime):
        run = lambda: layer(hidden, position_embeddings=(cos, sin))  # noqa: E731
        measured = saved_activation_bytes(run, (batch, batch * length), [hidden, cos, sin])
    shape = act.DecoderShape.from_config(config)
    tokens = batch * length
    own_input = act.residual_bytes(regime) * 80 * tokens  # the formula counts the layer's input; excluded above
    assert measured + own_input == tokens * act.gemma_layer_bytes_per_token(shape, regime)


@pytest.mark.parametrize("regime", act.REGIMES)
def test_siglip_layer_formula_matches_saved_tensors(regime: act.Regime) -> None:
    config = SiglipVisionConfig(hidden_size=40, intermediate_size=150, num_attention_heads=4, num_hidden_layers=1)
    config._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if regime == "pure16" else torch.float32
    torch.manual_seed(0)
    layer = SiglipEncoderLayer(config).to(dtype)
    batch, length = 3, 14
    hidden = torch.randn(batch, length, 40, dtype=dtype, requires_grad=True)
    with regime_context(regime):
        measured = saved_activation_bytes(lambda: layer(hidden, attention_mask=None), (batch, batch * length), [hidden])
    tokens = batch * length
    own_input = act.residual_bytes(regime) * 40 * tokens
    assert measured + own_input == tokens * act.siglip_layer_bytes_per_token(
        act.EncoderShape.from_config(config), regime
    )


# ---- memory invariants ----
def test_memory_grows_with_batch_size(default_plan: MemoryPlan) -> None:
    bigger = plan_memory(default_config(), PlanOptions(batch_size=4))
    for key in FREEZE_KEYS:
        small, large = default_plan.memory[key], bigger.memory[key]
        assert large["activations"] > small["activations"] and large["peak_temporaries"] > small["peak_temporaries"]
        assert large["weights"] == small["weights"] and large["optimizer"] == small["optimizer"]
        assert bigger.total(key) > default_plan.total(key)


def test_fsdp_over_more_gpus_uses_less_memory_per_gpu() -> None:
    totals = {
        gpus: plan_memory(default_config(), PlanOptions(batch_size=1, gpus=gpus, strategy="fsdp"))
        for gpus in (1, 2, 4, 8)
    }
    ddp = plan_memory(default_config(), PlanOptions(batch_size=1, gpus=4, strategy="ddp"))
    for key in FREEZE_KEYS:
        series = [totals[gpus].total(key) for gpus in (1, 2, 4, 8)]
        assert series == sorted(series, reverse=True) and series[0] > series[-1]
        assert totals[4].memory[key]["weights"] < ddp.memory[key]["weights"]
    assert totals[4].total("full") < ddp.total("full")  # sharding the optimizer state is what FSDP is for


def test_gradient_checkpointing_reduces_activation_memory() -> None:
    on = plan_memory(default_config(), PlanOptions(batch_size=4, gradient_checkpointing=True))
    off = plan_memory(default_config(), PlanOptions(batch_size=4, gradient_checkpointing=False))
    for key in FREEZE_KEYS:
        assert on.memory[key]["activations"] < off.memory[key]["activations"] / 2
        assert on.total(key) < off.total(key)


def test_projection_only_weights_are_far_below_the_whole_cosmos_pipeline(default_plan: MemoryPlan) -> None:
    """Gemma 3 4B + the Cosmos VAE is all a projection-only run loads: far from the ~47 GB of the whole pipeline."""
    weights_fp32 = default_plan.memory["projection"]["weights"]
    weights_bf16 = plan_memory(default_config(), PlanOptions(batch_size=1, weights_dtype="bf16")).memory["projection"][
        "weights"
    ]
    total = default_plan.parameters.total
    assert (
        weights_fp32
        == 4 * (total["gemma_vision"] + total["gemma_language"] + total["world_projector"]) + 4 * (total["cosmos_vae"])
    )
    assert weights_fp32 < 0.4 * 47e9 and weights_bf16 < 0.2 * 47e9
    assert default_plan.memory["projection"]["gradients"] < 1e8  # only the world projector trains


def test_a_custom_freeze_set_gets_its_own_column() -> None:
    """A config whose freeze set is none of the four (here: only the VAE and the projector train) is planned too."""
    plan = plan_memory(default_config(freeze_cosmos_vae=False), PlanOptions(batch_size=1))
    assert [freeze.key for freeze in plan.freeze_sets] == [*FREEZE_KEYS, "config"]
    assert plan.config_freeze_set == "config"
    trainable = plan.parameters.trainable["config"]
    assert trainable["cosmos_vae"] == plan.parameters.total["cosmos_vae"] and trainable["gemma_language"] == 0
    projection, custom = plan.memory["projection"], plan.memory["config"]
    assert custom["optimizer"] > projection["optimizer"] and custom["activations"] > projection["activations"]


def test_sequence_length_per_mode_and_steps() -> None:
    spatial = plan_memory(default_config(), PlanOptions(batch_size=1)).sequence
    assert (spatial.image, spatial.world, spatial.markers, spatial.total) == (256, 32 * 32, 2, 2048)
    channel = plan_memory(
        default_config(world_projection_mode="channel", num_world_steps=4), PlanOptions(seq_text_len=100)
    )
    assert (channel.sequence.world, channel.sequence.text, channel.sequence.total) == (16 * 2, 100, 100 + 256 + 32 + 2)


# ---- command line ----
def test_cli_runs_in_a_subprocess() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "theworld.plan", "--config", "configs/default.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "google/gemma-3-4b-it (config shipped with theworld.plan)" in result.stdout
    assert "projection*" in result.stdout and "4.434 B" in result.stdout
    assert any(line.startswith("total") for line in result.stdout.splitlines())


def test_json_output_is_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--config", str(DEFAULT_CONFIG), "--json", "--batch-size", "2", "--gpus", "2", "--strategy", "fsdp"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (
        data["settings"]["gpus"] == 2 and data["settings"]["strategy"] == "fsdp" and data["settings"]["batch_size"] == 2
    )
    for key in FREEZE_KEYS:
        rows = data["memory_bytes"][key]
        assert rows["total"] == sum(value for name, value in rows.items() if name != "total")
    assert data["parameters"]["trainable"]["projection"]["gemma_language"] == 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--gpus", "0"], "--gpus"),
        (["--strategy", "zero"], "--strategy"),
        (["--batch-size", "two"], "--batch-size"),
        (["--bogus"], "--bogus"),
        (["--dtype", "fp32", "--weights-dtype", "bf16"], "--weights-dtype"),
        (["--config", "configs/no-such-config.json"], "no-such-config.json"),
    ],
)
def test_bad_flags_are_one_line_errors(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    full = argv if "--config" in argv else ["--config", str(DEFAULT_CONFIG), *argv]
    assert main(full) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0]


def test_bad_model_source_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "x.json"
    config.write_text(json.dumps({"model_name": str(tmp_path), "cosmos_model_name": str(tmp_path)}))
    assert main(["--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"model_name={str(tmp_path)!r}" in error
