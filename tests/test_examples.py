"""The examples and the quickstart notebook run end to end on the tiny checkpoints, offline, and what they print holds.

The notebook is executed the way a reader runs it: every code cell in order, in one namespace (parsed from the
nbformat-4 JSON; no Jupyter needed). It must stay output-free in git, and must not write into the directory it runs
in. The example scripts run in-process through their `main(argv)`, which returns what they showed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from examples import inference, inspect_checkpoint, load_from_hub

from theworld import TheWorld
from theworld.modeling.rollout_prompt import PROMPT_CACHE_ENV, clear_prompt_memory_cache
from theworld.testing import TinyCheckpoints

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def tiny_dir(tiny: TinyCheckpoints) -> str:
    return str(tiny.gemma.parent)


def notebook_cells(path: Path) -> list[dict[str, Any]]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 5
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    return notebook["cells"]


def test_notebook_is_valid_nbformat_without_outputs() -> None:
    cells = notebook_cells(NOTEBOOK)
    ids = [cell["id"] for cell in cells]
    assert len(set(ids)) == len(ids) and all(1 <= len(i) <= 64 for i in ids)  # nbformat 4.5: unique cell ids
    kinds = [cell["cell_type"] for cell in cells]
    assert set(kinds) == {"markdown", "code"} and kinds[0] == "markdown"
    for cell in cells:
        assert isinstance(cell["source"], list) and all(isinstance(line, str) for line in cell["source"])
        assert cell["metadata"] == {}
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {cell['id']} has outputs"


def test_notebook_runs_top_to_bottom(tiny: TinyCheckpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THEWORLD_TINY_DIR", tiny_dir(tiny))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    code = [cell for cell in notebook_cells(NOTEBOOK) if cell["cell_type"] == "code"]
    for number, cell in enumerate(code, start=1):
        try:
            exec(compile("".join(cell["source"]), f"quickstart.ipynb code cell {number}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"quickstart.ipynb code cell {number} raised {type(error).__name__}: {error}")
    assert namespace["same_after_reload"] is True  # save_pretrained(delta=True) → from_pretrained: the same model
    assert namespace["bit_exact"] is True  # enable_world=False is Gemma 3
    losses = namespace["losses"]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert namespace["outputs"].world_hidden_states.shape == (1, namespace["config"].num_world_tokens(), 64)
    assert list(tmp_path.iterdir()) == [], "the notebook wrote into its working directory"


def test_load_from_hub_offline(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    result = load_from_hub.main(["--tiny-dir", tiny_dir(tiny), "--out", str(tmp_path)])
    assert result["same_after_reload"] and result["same_final"]
    assert result["same_checkpoint"] == {"checkpoint-1": True, "checkpoint-2": True}
    error = result["missing_checkpoint_error"]
    assert "\n" not in error and "'checkpoint-7'" in error and "available: checkpoint-1, checkpoint-2" in error
    # A delta checkpoint: config, weights, processor; no copy of the base Gemma and never the frozen VAE.
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= set(result["saved_files"])
    assert (tmp_path / "saved" / "model.safetensors").stat().st_size < 100_000
    assert not (tmp_path / "saved" / "world_vae").exists()
    # The Hub cache layout huggingface_hub reads: refs/main names the snapshot that holds the pushed run.
    repo = tmp_path / "hf-cache" / ("models--" + load_from_hub.DEMO_REPO.replace("/", "--"))
    commit = (repo / "refs" / "main").read_text()
    assert (repo / "snapshots" / commit / "checkpoint-2" / "config.json").is_file()


def test_inspect_checkpoint_delta_and_full(tiny: TinyCheckpoints, world_model: TheWorld, tmp_path: Path) -> None:
    delta = inspect_checkpoint.main(["--tiny-dir", tiny_dir(tiny)])
    config = delta["config"]
    assert config.world_checkpoint_format == "delta"
    assert {inspect_checkpoint.component(name) for name in delta["tensors"]} == {"world_projector"}
    rows = {name: (trainable, total) for name, trainable, total in delta["trainable"]}
    world_values = sum(math.prod(shape) for shape, _, _ in delta["tensors"].values())
    assert rows["world_projector"] == (world_values, world_values)  # what trains is what the delta holds
    assert rows["gemma_language"][0] == rows["gemma_vision"][0] == rows["cosmos_vae"][0] == 0
    tokens = delta["tokens"]
    assert [tokens["<start_of_world>"], tokens["<end_of_world>"], tokens["<world_soft_token>"]] == [
        config.sow_token_id,
        config.eow_token_id,
        config.world_token_id,
    ]

    full_dir = tmp_path / "full"
    world_model.save_pretrained(full_dir)  # a full checkpoint (the fixture's config is restored by save_pretrained)
    full = inspect_checkpoint.main([str(full_dir), "--no-model"])
    assert full["config"].world_checkpoint_format == "full" and full["trainable"] == []
    components = {inspect_checkpoint.component(name) for name in full["tensors"]}
    assert {"world_projector", "gemma_vision", "gemma_language"} <= components
    assert not any(name.startswith("cosmos_encoder.") for name in full["tensors"])  # the frozen VAE is never saved

    with pytest.raises(ValueError, match="not a saved TheWorld"):
        inspect_checkpoint.inspect_checkpoint(str(tiny.gemma), load_model=False)


def test_inference_with_a_rollout(tiny: TinyCheckpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROMPT_CACHE_ENV, str(tmp_path / "prompt_cache"))
    clear_prompt_memory_cache()
    argv = ["--tiny-dir", tiny_dir(tiny), "--num-world-steps", "4", "--rollout-steps", "2", "--max-new-tokens", "4"]
    result = inference.main(argv)
    assert all(isinstance(result[key], str) for key in ("world", "baseline", "rollout"))
    config = result["model"].config
    assert config.num_world_tokens(4) == 2 * config.num_world_tokens(0)  # one predicted latent frame more
    assert config.world_rollout_steps == 2
    assert any((tmp_path / "prompt_cache").iterdir())  # T5 ran once and its embeddings were cached here
