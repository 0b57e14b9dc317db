"""Shared fixtures: everything is built from the one tiny-checkpoint factory (`theworld.testing`), offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest
import torch

from theworld import TheWorld
from theworld.modeling.rollout_prompt import PROMPT_CACHE_ENV, clear_prompt_memory_cache
from theworld.testing import TinyCheckpoints, build_tiny_checkpoints

ROLLOUT_STEPS = 2  # denoising steps of the tiny rollouts: the transformer is random, two exercise the whole loop

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoints:
    return build_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def world_model(tiny: TinyCheckpoints) -> TheWorld:
    """A converted tiny TheWorld (spatial mode, 64×64 world pictures → 64 world tokens). Do not mutate it."""
    torch.manual_seed(0)  # the world projector of a converted checkpoint is randomly initialized
    model = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64)
    return model.eval()


@pytest.fixture
def fresh_world_model(tiny: TinyCheckpoints) -> TheWorld:
    """A converted tiny TheWorld a test may train or modify."""
    torch.manual_seed(0)
    return TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module: the tiny models gain nothing from a second one, and on a busy 2-core machine
    two threads spin-wait on each other (generation and the Wan VAE's 3-D convolutions measured 5-25x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow caches of the datasets library go under tmp_path, not the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private prompt-embedding cache for a module (never the user's), and an empty memory cache."""
    cache = tmp_path_factory.mktemp("prompt_cache")
    clear_prompt_memory_cache()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PROMPT_CACHE_ENV, str(cache))
        yield cache
    clear_prompt_memory_cache()


@pytest.fixture(scope="module")
def rollout_model(tiny: TinyCheckpoints, prompt_cache: Path) -> TheWorld:
    """A converted tiny TheWorld that can roll out: its Cosmos source is the whole tiny Video2World pipeline
    (64 px → 8x8 latents), with `ROLLOUT_STEPS` denoising steps. Do not mutate it."""
    torch.manual_seed(0)
    loaded = TheWorld.from_pretrained(
        tiny.gemma, cosmos_model_name=str(tiny.cosmos_pipeline), world_image_size=64, world_rollout_steps=ROLLOUT_STEPS
    )
    return loaded.eval()
