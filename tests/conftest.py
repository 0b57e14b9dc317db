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
from theworld.testing import TinyCheckpoints, build_tiny_checkpoints

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
