"""`TrainingConfig` and the training command line: the shipped configs load, and every mistake is one clear line."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest

from theworld.constants import PROJECTION_MODES
from theworld.modeling.loading import RUNTIME_KWARGS, STRUCTURAL_KWARGS
from theworld.training.cli_args import main_error_exit, parse_cli
from theworld.training.config import ConfigError, ProjectionMode, TrainingConfig, resolve_hf_token

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
TOKEN = "hf_SECRETsecretSECRET"


def training_configs() -> list[Path]:
    """Training configs: configs/*.json, not configs/accelerate/ nor evaluation configs."""
    return sorted(p for p in CONFIG_DIR.glob("*.json") if not p.name.startswith("eval"))


def write_config(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The variables the shipped configs use, a clean token environment and an empty home directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("THEWORLD_TINY_DIR", str(tmp_path / "tiny"))
    monkeypatch.setenv("THEWORLD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


@pytest.mark.parametrize("path", training_configs(), ids=lambda p: p.name)
def test_shipped_config_loads(path: Path, tmp_path: Path) -> None:
    raw = json.loads(path.read_text())
    config = TrainingConfig.from_json(path)
    assert "$" not in config.output_dir and config.output_dir.startswith(str(tmp_path))
    assert set(config.model_kwargs()) <= {*STRUCTURAL_KWARGS, *RUNTIME_KWARGS}
    assert "hf_token" not in raw
    assert not re.search(r"/(home|Users)/\w", path.read_text()), "personal paths in a shipped config"


def test_expected_configs_are_shipped(tmp_path: Path) -> None:
    names = {p.name for p in training_configs()}
    assert {"default.json", "smoke_test.json", "tiny.json", "vsr_training.json", "spatial_rgpt_training.json"} <= names
    real_data = {
        "vsr_training.json": "vsr",
        "spatial_rgpt_training.json": "spatial_rgpt",
        "llava_pretrain_test.json": "llava_pretrain",
        "llava_pretrain_full.json": "llava_pretrain",
        "datacomp_test.json": "datacomp",
        "datacomp_production.json": "datacomp",
    }
    for name, dataset in real_data.items():
        config = TrainingConfig.from_json(CONFIG_DIR / name)
        assert config.dataset_name == dataset, name
        assert config.image_folder is None or config.image_folder.startswith(str(tmp_path / "data")), name
    assert TrainingConfig.from_json(CONFIG_DIR / "datacomp_test.json").num_samples == 100
    production = TrainingConfig.from_json(CONFIG_DIR / "datacomp_production.json")
    assert production.streaming and production.max_steps > 0
    tiny = TrainingConfig.from_json(CONFIG_DIR / "tiny.json")
    assert tiny.model_name == str(tmp_path / "tiny" / "gemma")
    assert tiny.model_kwargs()["cosmos_model_name"] == str(tmp_path / "tiny" / "cosmos")
    assert (tiny.world_image_size, tiny.mixed_precision, tiny.num_samples, tiny.batch_size) == (64, "no", 3000, 32)


def test_choices_match_the_model() -> None:
    assert typing.get_args(ProjectionMode) == PROJECTION_MODES
    assert TrainingConfig(world_projection_mode="channel").world_tokens_per_image() == 16 + 2
    assert TrainingConfig(world_image_size=64).world_tokens_per_image() == 64 + 2


def test_unknown_key_names_file_and_closest_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"learning_rat": 1e-4, "_note": "ignored", "// also": "ignored"})
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_json(path)
    message = str(info.value)
    assert "learning_rat" in message and str(path) in message and "did you mean learning_rate" in message
    assert "\n" not in message


def test_wrong_type_names_key_type_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.json: batch_size: expected an int, got '8' \(str\)"):
        TrainingConfig.from_json(write_config(tmp_path, {"batch_size": "8"}))
    with pytest.raises(ConfigError, match=r"enable_world: expected a bool, got 1 \(int\)"):
        TrainingConfig.from_dict({"enable_world": 1})
    with pytest.raises(ConfigError, match=r"num_world_steps: expected an int, got True \(bool\)"):
        TrainingConfig.from_dict({"num_world_steps": True})
    config = TrainingConfig.from_dict({"learning_rate": 1, "weight_decay": 0})  # ints are fine for floats
    assert isinstance(config.learning_rate, float) and config.learning_rate == 1.0


def test_enum_and_range_errors_show_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"mixed_precision='fp8': expected one of 'bf16', 'fp16', 'no'"):
        TrainingConfig(mixed_precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"dataset_name='coco'.*'synthetic_spatial'.*'hf'"):
        TrainingConfig.from_dict({"dataset_name": "coco"})
    with pytest.raises(ConfigError, match=r"lr_scheduler_type='cosin'.*'cosine'"):
        TrainingConfig(lr_scheduler_type="cosin")
    with pytest.raises(ConfigError, match=r"num_world_steps=17: expected in \[0, 16\]"):
        TrainingConfig(num_world_steps=17)
    with pytest.raises(ConfigError, match=r"batch_size=0: expected > 0"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"learning_rate=-0.1: expected > 0"):
        TrainingConfig(learning_rate=-0.1)
    with pytest.raises(ConfigError, match=r"world_image_size=100: expected a multiple of 16"):
        TrainingConfig(world_image_size=100)
    with pytest.raises(ConfigError, match=r"max_length=512 leaves no room"):
        TrainingConfig(max_length=512)  # 1024 world tokens at 256 px
    with pytest.raises(ConfigError, match=r"needs hf_dataset_id"):
        TrainingConfig(dataset_name="hf")
    with pytest.raises(ConfigError, match=r"nothing to train"):
        TrainingConfig(enable_world=False)


def test_variables_are_expanded_in_paths(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    monkeypatch.setenv("RUNS", "/scratch/runs")
    config = TrainingConfig.from_dict(
        {"output_dir": "${RUNS}/a", "image_folder": "$RUNS/images", "train_dataset_path": "~/data/train.json"}
    )
    assert config.output_dir == "/scratch/runs/a"
    assert config.image_folder == "/scratch/runs/images"
    assert config.train_dataset_path == str(env / "data" / "train.json")
    assert TrainingConfig().model_name == "google/gemma-3-4b-it"  # Hub ids pass through
    assert TrainingConfig(question_template="$x costs {question}").question_template == "$x costs {question}"
    monkeypatch.delenv("TMPDIR")
    assert "$" not in TrainingConfig(output_dir="${TMPDIR}/x").output_dir  # POSIX fallback for TMPDIR


def test_unset_variable_is_one_line_naming_key_and_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"image_folder": "${THEWORLD_NOT_SET_ANYWHERE}/images"})
    with pytest.raises(ConfigError) as info:
        TrainingConfig.from_json(path)
    message = str(info.value)
    assert message.startswith(f"{path}: image_folder=")
    assert "$THEWORLD_NOT_SET_ANYWHERE is not set" in message and "\n" not in message


def test_bad_json_and_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"batch_size": 4,}')
    with pytest.raises(ConfigError, match=r"bad\.json:1:\d+: invalid JSON"):
        TrainingConfig.from_json(path)
    path.write_text('{"batch_size": 4, "batch_size": 8}')
    with pytest.raises(ConfigError, match=r"'batch_size' appears twice"):
        TrainingConfig.from_json(path)
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read"):
        TrainingConfig.from_json(tmp_path / "missing.json")


def test_cli_overrides_are_parsed_to_the_field_types(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"batch_size": 2, "hub_model_id": "me/run", "output_dir": "${TMPDIR}/out"})
    argv = ["--config", str(path), "--batch_size", "16", "--learning_rate=3e-4", "--push_to_hub", "true"]
    argv += ["--freeze_gemma_language", "0", "--hub_model_id", "null", "--max_steps", "-1", "--log_to_wandb"]
    argv += ["--resume_from_checkpoint", "$TMPDIR/out/checkpoint-5", "--mixed-precision", "fp16"]
    config, extras = parse_cli(argv)
    assert (config.batch_size, config.learning_rate, config.push_to_hub) == (16, 3e-4, True)
    assert (config.freeze_gemma_language, config.hub_model_id, config.max_steps) == (False, None, -1)
    assert (config.log_to_wandb, config.mixed_precision) == (True, "fp16")
    assert config.output_dir == str(tmp_path / "tmp" / "out")
    assert extras == {"resume_from_checkpoint": str(tmp_path / "tmp" / "out" / "checkpoint-5"), "hf_token": None}
    assert parse_cli(["--resume_from_checkpoint", "latest"])[1]["resume_from_checkpoint"] == "latest"


def test_cli_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path, {})
    with pytest.raises(ConfigError, match=r"command line: unknown key --lerning_rate \(did you mean --learning_rate"):
        parse_cli(["--config", str(path), "--lerning_rate", "1e-3"])
    with pytest.raises(ConfigError, match=r"command line: --batch_size: expected an int, got 'four'"):
        parse_cli(["--config", str(path), "--batch_size", "four"])
    with pytest.raises(ConfigError, match=r"command line: --use_gradient_checkpointing: expected a bool"):
        parse_cli(["--use_gradient_checkpointing", "maybe"])
    with pytest.raises(ConfigError, match=r"^command line: batch_size=0: expected > 0$"):
        parse_cli(["--config", str(path), "--batch_size", "0"])  # valid type, bad value: blamed on the CLI
    with pytest.raises(ConfigError, match=r"--batch_size needs a value"):
        parse_cli(["--batch_size"])
    with pytest.raises(ConfigError, match=r"unexpected argument 'oops'"):
        parse_cli(["oops"])


def test_token_is_never_serialized_or_shown(tmp_path: Path) -> None:
    config, extras = parse_cli(["--hf_token", TOKEN])
    assert config.hf_token == extras["hf_token"] == TOKEN
    out = tmp_path / "config.json"
    text = config.to_json(out)
    for shown in (repr(config), str(config), text, out.read_text(), json.dumps(config.to_dict())):
        assert TOKEN not in shown
    assert "hf_token=***" in repr(config) and "hf_token" not in config.to_dict()
    assert TrainingConfig.from_json(out) == config  # round trip (the token does not take part in equality)
    with pytest.raises(ConfigError) as info:
        TrainingConfig(hf_token=12345)  # type: ignore[arg-type]
    assert "12345" not in str(info.value)


def test_resolve_hf_token_order(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    assert resolve_hf_token(None) is None
    (env / ".hf_token").write_text(f"  {TOKEN}-file\n")
    assert resolve_hf_token(None) == f"{TOKEN}-file"
    monkeypatch.setenv("HF_TOKEN", f"{TOKEN}-env")
    assert resolve_hf_token(None) == f"{TOKEN}-env"
    assert resolve_hf_token(f"{TOKEN}-cli") == f"{TOKEN}-cli"


def test_model_kwargs_are_the_world_settings() -> None:
    config = TrainingConfig(world_projection_mode="channel", world_image_size=64, freeze_gemma_language=False)
    assert config.model_kwargs() == {
        "enable_world": True,
        "cosmos_model_name": "nvidia/Cosmos-Predict2-2B-Video2World",
        "world_image_size": 64,
        "world_projection_mode": "channel",
        "num_world_steps": 0,
        "freeze_gemma_vision": True,
        "freeze_gemma_language": False,
        "freeze_cosmos_vae": True,
    }
    assert TrainingConfig(warmup_steps=100).warmup() == 100
    assert TrainingConfig().warmup() == pytest.approx(0.03)


def test_bad_config_exits_2_with_one_stderr_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, {"num_world_stepz": 1})

    @main_error_exit
    def main(argv: list[str]) -> int:
        parse_cli(argv)
        return 0

    with pytest.raises(SystemExit) as info:
        main(["--config", str(path)])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"error: {path}: unknown key 'num_world_stepz' (did you mean num_world_steps?)")
    assert main([]) == 0
