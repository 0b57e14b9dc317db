"""Evaluation runs: resuming a killed run, per-spec failures (num_world_steps=4), the Gemma 3 baseline and the
world-token ablations, on the tiny checkpoints and the BLINK fixture copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoProcessor, Gemma3ForConditionalGeneration

from theworld import TheWorld
from theworld.evaluation import blink, runner, runs
from theworld.evaluation.commands.blink import main
from theworld.evaluation.generation import generate_answers
from theworld.evaluation.model_specs import BASELINE, EvalModelSpec, load_eval_model
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE
from theworld.testing import TinyCheckpoints
from theworld.testing.blink_fixtures import FIXTURE_TASKS, BlinkFixture, write_blink_dataset

pytestmark = pytest.mark.usefixtures("one_thread", "datasets_cache")

TASKS = ",".join(FIXTURE_TASKS)
MAX_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> BlinkFixture:
    return write_blink_dataset(tmp_path_factory.mktemp("blink"), "hub")


@pytest.fixture(scope="module")
def checkpoint(world_model: TheWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("theworld-checkpoint")
    world_model.save_pretrained(directory)
    return directory


def _argv(model: str | Path, copy: BlinkFixture, out: Path, *extra: str) -> list[str]:
    return [
        *("--model", str(model), "--data", str(copy.path), "--tasks", TASKS, "--output-dir", str(out)),
        *("--max-new-tokens", str(MAX_NEW_TOKENS), *extra),
    ]


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / PREDICTIONS_FILE).read_text().splitlines()[1:]]


def _summary(run: Path) -> dict[str, Any]:
    return json.loads((run / SUMMARY_FILE).read_text())


class GenerateSpy:
    """Wraps `generate_answers` in the runner: counts the items generated; `fail_on_call=N` raises
    KeyboardInterrupt (a kill) instead of the Nth call."""

    def __init__(self, real: Callable[..., list[str]], fail_on_call: int | None = None) -> None:
        self.real, self.fail_on_call = real, fail_on_call
        self.calls, self.items = 0, 0

    def __call__(self, model: Any, images: Any, prompts: Any, **kwargs: Any) -> list[str]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        self.items += len(prompts)
        return self.real(model, images, prompts, **kwargs)


def test_a_killed_run_resumes_without_recomputing_and_gives_the_same_summary(
    copy: BlinkFixture, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runner.generate_answers
    common = ("--limit", "2", "--batch-size", "3")  # 8 items: batches of 3, 3, 2
    label = f"{checkpoint.name}+steps0"

    spy = GenerateSpy(real)
    monkeypatch.setattr(runner, "generate_answers", spy)
    assert main(_argv(checkpoint, copy, tmp_path / "whole", *common)) == 0
    whole = tmp_path / "whole" / "blink" / label
    assert spy.items == 8 and len(_records(whole)) == 8

    killed = GenerateSpy(real, fail_on_call=2)
    monkeypatch.setattr(runner, "generate_answers", killed)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(checkpoint, copy, tmp_path / "resumed", *common))
    resumed = tmp_path / "resumed" / "blink" / label
    finished = _records(resumed)
    assert len(finished) == 3 and not (resumed / SUMMARY_FILE).exists()
    cut = json.dumps({"id": "val_Art_Style_1", "group": "Art_Style", "prediction": "half a li"})[:40]
    with (resumed / PREDICTIONS_FILE).open("a") as handle:  # the kill hit the middle of a write
        handle.write(cut)

    again = GenerateSpy(real)
    monkeypatch.setattr(runner, "generate_answers", again)
    assert main(_argv(checkpoint, copy, tmp_path / "resumed", *common)) == 0
    assert again.items == 8 - len(finished)  # only the unfinished items were generated
    records = _records(resumed)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in _records(whole))
    assert len({r["id"] for r in records}) == len(records) == 8
    assert _summary(resumed) == _summary(whole)
    by_id = {r["id"]: r["prediction"] for r in _records(whole)}
    assert all(by_id[r["id"]] == r["prediction"] for r in records)

    finished_run = GenerateSpy(real)
    monkeypatch.setattr(runner, "generate_answers", finished_run)
    assert main(_argv(checkpoint, copy, tmp_path / "resumed", *common)) == 0
    assert finished_run.calls == 0 and _summary(resumed) == _summary(whole)


def test_a_resume_with_other_settings_is_refused_in_one_line(
    copy: BlinkFixture, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(checkpoint, copy, tmp_path, "--limit", "1")) == 0
    capsys.readouterr()
    assert main([*_argv(checkpoint, copy, tmp_path, "--limit", "1"), "--max-new-tokens", "3"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: " in out and "differs in max_new_tokens" in out
    assert main([*_argv(checkpoint, copy, tmp_path, "--limit", "1"), "--max-new-tokens", "3", "--no-resume"]) == 0


def test_each_world_steps_value_is_one_run_on_one_loaded_model(
    tiny: TinyCheckpoints, copy: BlinkFixture, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[EvalModelSpec] = []
    monkeypatch.setattr(runs, "load_eval_model", lambda spec, *a: loads.append(spec) or load_eval_model(spec, *a))
    rollout = ("--cosmos-model", str(tiny.cosmos_pipeline), "--num_world_steps", "0,4")
    assert main(_argv(checkpoint, copy, tmp_path, "--limit", "1", *rollout)) == 0
    assert len(loads) == 1  # the two specs share one loaded model
    for steps in (0, 4):
        run = tmp_path / "blink" / f"{checkpoint.name}+steps{steps}"
        assert _summary(run)["model"]["num_world_steps"] == steps
        assert len(_records(run)) == _summary(run)["num_items"] == len(FIXTURE_TASKS)


def test_a_failing_world_steps_value_is_a_per_spec_failure_and_the_others_are_kept(
    copy: BlinkFixture, checkpoint: Path, tmp_path: Path, capsys: Any
) -> None:
    assert main(_argv(checkpoint, copy, tmp_path, "--limit", "1", "--num_world_steps", "0,3")) == 1
    out = capsys.readouterr().out
    assert f"{checkpoint.name}+steps3: FAILED: " in out and "multiple of 4" in out
    assert f"1 of 2 model run(s) failed: {checkpoint.name}+steps3" in out
    steps0, steps3 = (tmp_path / "blink" / f"{checkpoint.name}+steps{n}" for n in (0, 3))
    assert _summary(steps0)["num_items"] == len(FIXTURE_TASKS) == len(_records(steps0))
    assert not (steps3 / SUMMARY_FILE).exists()


# ---- the Gemma 3 baseline and the ablations ----


def _first_items(copy: BlinkFixture) -> list[Any]:
    return blink.load_blink_items(blink.BlinkSource("val", data=copy.path), list(FIXTURE_TASKS), limit=1)


def _inputs(processor: Any, item: Any) -> Any:
    pictures = item.load_images()
    content = [{"type": "image"} for _ in pictures] + [{"type": "text", "text": item.prompt}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return processor(text=[text], images=[pictures], return_tensors="pt", add_special_tokens=False)


def test_gemma3_baseline_is_plain_gemma3_and_differs_from_the_world_token_run(
    tiny: TinyCheckpoints, copy: BlinkFixture, checkpoint: Path, tmp_path: Path
) -> None:
    baseline = ["--base-model", str(tiny.gemma), "--limit", "1", "--batch-size", "4"]
    assert main(_argv(BASELINE, copy, tmp_path, *baseline)) == 0
    assert main(_argv(checkpoint, copy, tmp_path, "--limit", "1", "--batch-size", "4")) == 0
    gemma_run = {r["id"]: r["prediction"] for r in _records(tmp_path / "blink" / BASELINE)}
    world_run = {r["id"]: r["prediction"] for r in _records(tmp_path / "blink" / f"{checkpoint.name}+steps0")}

    processor: Any = AutoProcessor.from_pretrained(tiny.gemma)
    plain: Any = Gemma3ForConditionalGeneration.from_pretrained(tiny.gemma).eval()
    evaluated = load_eval_model(EvalModelSpec(model=BASELINE, base_model=str(tiny.gemma)))
    for item in _first_items(copy):  # one item per task: 1, 2, 3 and 4 pictures
        inputs = _inputs(processor, item)
        with torch.no_grad():
            output = plain.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            assert torch.equal(plain(**inputs).logits, evaluated(**inputs).logits)
        answer = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert gemma_run[item.id] == answer
    assert gemma_run.keys() == world_run.keys()
    assert gemma_run != world_run  # world tokens change what the same Gemma weights answer


def _world_forward(model: Any, item: Any) -> Any:
    with torch.no_grad():
        return model(**_inputs(model.processor, item))


def test_world_ablations_change_only_the_world_embeddings(copy: BlinkFixture, checkpoint: Path) -> None:
    item = _first_items(copy)[0]
    spec = EvalModelSpec(model=str(checkpoint))
    base = _world_forward(load_eval_model(spec), item)
    assert base.world_hidden_states is not None and bool(base.world_hidden_states.abs().gt(0).any())

    zero = _world_forward(load_eval_model(EvalModelSpec(model=str(checkpoint), world_ablation="zero")), item)
    assert zero.world_hidden_states is not None and bool(zero.world_hidden_states.eq(0).all())
    assert not torch.allclose(zero.logits, base.logits)

    def random(seed: int) -> Any:
        return _world_forward(load_eval_model(EvalModelSpec(model=str(checkpoint), random_projection=seed)), item)

    first, again, other = random(1), random(1), random(2)
    assert torch.equal(first.logits, again.logits)  # deterministic for a seed
    assert not torch.allclose(first.logits, base.logits) and not torch.allclose(first.logits, other.logits)
    assert first.world_hidden_states.shape == base.world_hidden_states.shape


def test_ablation_runs_are_labelled_and_headed_by_their_spec(
    copy: BlinkFixture, checkpoint: Path, tmp_path: Path
) -> None:
    extra = ("--limit", "1", "--world-ablation", "zero", "--random-projection", "3")
    assert main(_argv(checkpoint, copy, tmp_path, *extra)) == 0
    run = tmp_path / "blink" / f"{checkpoint.name}+zero-world+random-projection-3+steps0"
    header = json.loads((run / PREDICTIONS_FILE).read_text().splitlines()[0])["__run__"]
    assert header["model"]["world_ablation"] == "zero" and header["model"]["random_projection"] == 3
    assert _summary(run)["model"] == header["model"] and _summary(run)["num_items"] == len(FIXTURE_TASKS)


def test_generated_answers_never_hold_world_tokens(tiny: TinyCheckpoints, copy: BlinkFixture, checkpoint: Path) -> None:
    """A generated <world_soft_token> would be read as a world placeholder at the next decode step: TheWorld's own
    generate suppresses the world tokens, so plain `model.generate`, `answer` and the evaluation all stay valid."""
    model = load_eval_model(EvalModelSpec(model=str(checkpoint)))
    config = model.config
    world_ids = [config.sow_token_id, config.eow_token_id, config.world_token_id]
    assert model.never_generated_token_ids() == world_ids
    item = _first_items(copy)[0]
    inputs = _inputs(model.processor, item)
    push = {"sequence_bias": [[[config.world_token_id], 100.0]]}  # make it the model's first choice
    with torch.no_grad():
        pushed = model.generate(**inputs, max_new_tokens=3, do_sample=False, **push)
        # a caller's own suppress_tokens are kept beside the world tokens
        first_free = int(pushed[0, inputs["input_ids"].shape[1]])
        own = model.generate(**inputs, max_new_tokens=3, do_sample=False, suppress_tokens=[first_free], **push)
    for output in (pushed, own):
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        assert not bool(torch.isin(new_tokens, torch.tensor(world_ids)).any())
    assert first_free not in own[0, inputs["input_ids"].shape[1] :].tolist()
    (answer,) = generate_answers(model, [item.load_images()], [item.prompt], max_new_tokens=3, generate_kwargs=push)
    assert answer
    baseline = load_eval_model(EvalModelSpec(model=BASELINE, base_model=str(tiny.gemma)))
    assert getattr(baseline, "never_generated_token_ids", list)() == []


def test_summaries_are_strict_json_and_failures_are_listed(tmp_path: Path) -> None:
    assert runs.json_safe({"a": [float("nan"), 1.0], "b": {"c": float("inf")}}) == {"a": [None, 1.0], "b": {"c": None}}
    good = runs.SpecOutcome(EvalModelSpec(model="m"), tmp_path, summary={"x": 1})
    bad = runs.SpecOutcome(EvalModelSpec(model="m", num_world_steps=4), tmp_path, error="boom")
    text = runs.format_outcomes([good, bad], lambda summary: f"table {summary['x']}")
    assert "table 1" in text and "m+steps4: FAILED: boom" in text and text.endswith("failed: m+steps4")
    assert runs.exit_code([good]) == 0 and runs.exit_code([good, bad]) == 1
