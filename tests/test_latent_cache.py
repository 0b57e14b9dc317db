"""The world-latent cache: one miss per change of each key part, LRU eviction, the disk store (round trip, corrupt
files, failed writes), the frozen-VAE-only rule, per-row lookups in mixed batches, and training with the cache giving
the same losses as without (through the HF Trainer)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import pictures
from theworld import TheWorld
from theworld.data.image_inputs import world_pixels
from theworld.modeling.latent_cache import WorldLatentCache, world_latent_identity
from theworld.testing import TinyCheckpoints
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.run import build_trainer

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(rollout_model: TheWorld) -> TheWorld:
    return rollout_model


@pytest.fixture
def cache(model: TheWorld) -> Iterator[WorldLatentCache]:
    """A fresh in-memory cache on `model`, removed after the test."""
    created = model.enable_world_cache(32)
    assert created is not None
    yield created
    model.disable_world_cache()


class Calls:
    """Counts the pictures the frozen world model really computes: VAE rows and rollout rows."""

    def __init__(self, model: TheWorld, monkeypatch: pytest.MonkeyPatch) -> None:
        self.vae: list[torch.Tensor] = []
        self.rollout: list[torch.Tensor] = []
        encoder = model.world_encoder
        assert encoder is not None
        vae_forward = type(encoder).forward

        def spy_vae(pixels: torch.Tensor) -> torch.Tensor:
            self.vae.append(pixels.detach().clone())
            return vae_forward(encoder, pixels)

        monkeypatch.setattr(encoder, "forward", spy_vae)
        rollout = model.world_rollout()
        rollout_call = type(rollout).rollout

        def spy_rollout(pixels: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            self.rollout.append(pixels.detach().clone())
            return rollout_call(rollout, pixels, *args, **kwargs)

        monkeypatch.setattr(rollout, "rollout", spy_rollout)

    def rows(self) -> tuple[int, int]:
        """(VAE rows, rollout rows) since the last call; resets the counts."""
        counts = (sum(p.shape[0] for p in self.vae), sum(p.shape[0] for p in self.rollout))
        self.vae.clear()
        self.rollout.clear()
        return counts


def _encode(model: TheWorld, pixels: torch.Tensor, steps: int = 0) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_world(pixels, steps)


# ----------------------------------------------------------------------------------------------------------------
# Keys: every part of the key misses when it changes, and only then
# ----------------------------------------------------------------------------------------------------------------


def test_same_picture_hits_and_another_picture_misses(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(model, monkeypatch)
    first = _encode(model, model.processor.world_pixels(pictures(2)))
    assert calls.rows() == (2, 0)
    again = _encode(model, model.processor.world_pixels(pictures(2)))  # the same pictures, processed again
    assert calls.rows() == (0, 0) and torch.equal(first, again)
    _encode(model, model.processor.world_pixels(pictures(1, offset=5)))
    assert calls.rows() == (1, 0)
    stats = cache.stats()
    assert stats.pop("hit_rate") == pytest.approx(2 / 5)
    assert stats == {
        "hits": 2,
        "misses": 3,
        "memory_hits": 2,
        "disk_hits": 0,
        "evictions": 0,
        "disk_writes": 0,
        "disk_errors": 0,
        "items": 3,
    }


def test_resolution_is_part_of_the_key(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(model, monkeypatch)
    picture = pictures(1)
    small = _encode(model, world_pixels(picture, 64))
    large = _encode(model, world_pixels(picture, 128))  # same picture, another world resolution
    assert calls.rows() == (2, 0)
    assert small.shape[1] == 64 and large.shape[1] == 256  # spatial mode: (S / 8)^2 tokens
    _encode(model, world_pixels(picture, 128))
    assert calls.rows() == (0, 0)


def test_vae_weights_are_part_of_the_key(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(model, monkeypatch)
    pixels = model.processor.world_pixels(pictures(2))
    before = _encode(model, pixels)
    assert calls.rows() == (2, 0)
    encoder = model.world_encoder
    assert encoder is not None
    weight = next(p for p in encoder.vae.parameters() if p.ndim > 1)
    original = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.add_(0.05)  # written in place: same tensor object, same storage, new values
        changed = _encode(model, pixels)
        assert calls.rows() == (2, 0)
        assert not torch.allclose(changed, before)
    finally:
        with torch.no_grad():
            weight.copy_(original)
    restored = _encode(model, pixels)  # the original weights again: their latents are still cached
    assert calls.rows() == (0, 0) and torch.equal(restored, before)


def test_steps_and_rollout_seed_are_part_of_the_key(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(model, monkeypatch)
    pixels = model.processor.world_pixels(pictures(2))
    _encode(model, pixels, steps=0)
    assert calls.rows() == (2, 0)
    four = _encode(model, pixels, steps=4)
    assert calls.rows() == (2, 2)  # another number of steps: VAE and rollout again
    assert torch.equal(_encode(model, pixels, steps=4), four)
    assert calls.rows() == (0, 0)
    monkeypatch.setattr(model.config, "world_rollout_seed", 1)
    reseeded = _encode(model, pixels, steps=4)
    assert calls.rows() == (2, 2) and not torch.allclose(reseeded, four)
    _encode(model, pixels, steps=0)  # the picture's own frame does not depend on the rollout seed
    assert calls.rows() == (0, 0)
    monkeypatch.setattr(model.config, "world_rollout_seed", 0)
    assert torch.equal(_encode(model, pixels, steps=4), four)
    assert calls.rows() == (0, 0)


def test_identity_follows_every_setting(model: TheWorld) -> None:
    encoder = model.world_encoder
    assert encoder is not None
    base = world_latent_identity(encoder, model.config, 4)
    assert world_latent_identity(encoder, model.config, 4) == base  # deterministic
    changes: dict[str, Any] = {
        "world_rollout_steps": 3,
        "world_rollout_guidance": 1.0,
        "world_rollout_seed": 7,
        "cosmos_model_name": "nvidia/Cosmos-Predict2-2B-Video2World",
    }
    for key, value in changes.items():
        config = copy.deepcopy(model.config)
        setattr(config, key, value)
        assert world_latent_identity(encoder, config, 4) != base, key
    assert world_latent_identity(encoder, model.config, 8) != base
    bf16 = copy.deepcopy(encoder).to(torch.bfloat16)
    assert world_latent_identity(bf16, model.config, 4) != base  # the dtype (and so the weights' bytes)


# ----------------------------------------------------------------------------------------------------------------
# The store: LRU, disk, corrupt files, failed writes
# ----------------------------------------------------------------------------------------------------------------


def _row(value: float) -> torch.Tensor:
    return torch.full((16, 1, 2, 2), value)


def test_lru_evicts_the_least_recently_used() -> None:
    store = WorldLatentCache(max_items=2)
    store.put("a", _row(1))
    store.put("b", _row(2))
    assert store.get("a") is not None  # "a" is now the most recent
    store.put("c", _row(3))  # evicts "b"
    assert store.get("b") is None
    assert torch.equal(store.get("a"), _row(1)) and torch.equal(store.get("c"), _row(3))  # type: ignore[arg-type]
    stats = store.stats()
    assert (stats["evictions"], stats["items"], stats["hits"], stats["misses"]) == (1, 2, 3, 1)


def _fake_latents(pixels: torch.Tensor) -> torch.Tensor:
    """A stand-in world model: [N, 3, S, S] → [N, 16, 1, S/8, S/8], a function of each row alone."""
    pooled = torch.nn.functional.avg_pool2d(pixels, 8)  # [N, 3, S/8, S/8]
    return pooled.repeat(1, 6, 1, 1)[:, :16].unsqueeze(2)


class Compute:
    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.rows += pixels.shape[0]
        return _fake_latents(pixels)


def test_disk_round_trip_then_a_corrupt_file_is_a_miss(tmp_path: Path) -> None:
    pixels = world_pixels(pictures(3), 32)
    first, compute = WorldLatentCache(8, tmp_path / "cache"), Compute()
    expected = first.lookup(pixels, "model-a", compute)
    assert compute.rows == 3 and first.stats()["disk_writes"] == 3
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 3 and all(f.parent.name == f.name[:2] for f in files)  # shard directory = key prefix
    assert not list((tmp_path / "cache").rglob("*.partial"))

    second, compute = WorldLatentCache(8, tmp_path / "cache"), Compute()  # a new process: empty memory
    assert torch.equal(second.lookup(pixels, "model-a", compute), expected)
    assert compute.rows == 0 and second.stats()["disk_hits"] == 3
    assert second.lookup(pixels, "model-b", compute).shape == expected.shape and compute.rows == 3  # other model

    keys = WorldLatentCache.row_keys(pixels, "model-a")
    second.file_for(keys[0]).write_bytes(b"\x00garbage, not safetensors")
    second.file_for(keys[2]).write_bytes(second.file_for(keys[1]).read_bytes())  # a whole file, but another key's
    third, compute = WorldLatentCache(8, tmp_path / "cache"), Compute()
    assert torch.equal(third.lookup(pixels, "model-a", compute), expected)
    assert compute.rows == 2 and third.stats()["disk_errors"] == 2  # both recomputed, no crash
    fourth, compute = WorldLatentCache(8, tmp_path / "cache"), Compute()
    fourth.lookup(pixels, "model-a", compute)
    assert compute.rows == 0 and fourth.stats()["disk_errors"] == 0  # the bad files were rewritten


def test_a_failed_write_keeps_the_memory_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    store, compute = WorldLatentCache(8, tmp_path / "cache"), Compute()
    pixels = world_pixels(pictures(2), 32)
    store.lookup(pixels, "m", compute)
    store.lookup(pixels, "m", compute)
    assert compute.rows == 2 and store.stats()["disk_errors"] == 2 and store.stats()["memory_hits"] == 2
    assert not list((tmp_path / "cache").rglob("*.safetensors")) and not list((tmp_path / "cache").rglob("*.partial"))


def test_bad_arguments_are_one_line_errors(tmp_path: Path, model: TheWorld) -> None:
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="expected an integer >= 1") as error:
            WorldLatentCache(bad)  # type: ignore[arg-type]
        assert "\n" not in str(error.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        WorldLatentCache(4, tmp_path / "file")
    with pytest.raises(ValueError, match=r"world_cache_size=-2: expected an integer >= 0"):
        model.enable_world_cache(-2)
    assert model.enable_world_cache(0) is None and model.world_cache is None


# ----------------------------------------------------------------------------------------------------------------
# The model: frozen VAE only, per-row lookups, never saved
# ----------------------------------------------------------------------------------------------------------------


def test_a_trainable_vae_is_never_cached(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = model.world_encoder
    assert encoder is not None
    model.set_world_encoder(encoder, trainable=True)
    try:
        calls = Calls(model, monkeypatch)
        pixels = model.processor.world_pixels(pictures(2))
        for _ in range(2):
            world = model.encode_world(pixels)
            assert world.requires_grad  # gradients reach the VAE: its latents change at every step
        assert calls.rows() == (4, 0)
        assert len(cache) == 0 and cache.stats()["misses"] == 0 and cache.stats()["hits"] == 0
    finally:
        model.set_world_encoder(encoder, trainable=False)
    _encode(model, pixels)  # frozen again: cached from now on
    assert len(cache) == 2


def test_a_mixed_batch_encodes_only_its_misses(
    model: TheWorld, cache: WorldLatentCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = model.processor
    shown = pictures(4)
    seen = _encode(model, processor.world_pixels(shown[:2]))  # pictures 0 and 1 are cached
    calls = Calls(model, monkeypatch)
    order = [2, 0, 3, 1, 2]  # hits (0, 1) between misses (2 twice, 3)
    mixed = _encode(model, processor.world_pixels([shown[i] for i in order]))
    assert len(calls.vae) == 1  # one VAE call, on exactly the missing pictures, each once
    assert torch.equal(calls.vae[0], processor.world_pixels([shown[2], shown[3]]))
    assert tuple(mixed.shape) == (5, *seen.shape[1:])
    torch.testing.assert_close(mixed[1], seen[0])
    torch.testing.assert_close(mixed[3], seen[1])
    assert torch.equal(mixed[0], mixed[4])  # the repeated picture: computed once, served twice
    stats = cache.stats()
    assert (stats["misses"], stats["hits"], stats["items"]) == (4, 2, 4)


def test_the_cache_is_never_saved(model: TheWorld, tmp_path: Path) -> None:
    model.enable_world_cache(4, tmp_path / "latents")
    try:
        _encode(model, model.processor.world_pixels(pictures(1)))
        model.save_pretrained(tmp_path / "saved")
    finally:
        model.disable_world_cache()
    saved = tmp_path / "saved"
    assert "world_cache" not in (saved / "config.json").read_text()
    assert not list(saved.rglob("*latents*")) and not list(saved.rglob("??/*.safetensors"))
    assert TheWorld.from_pretrained(saved).world_cache is None


# ----------------------------------------------------------------------------------------------------------------
# Training: config keys, and the same losses with and without the cache
# ----------------------------------------------------------------------------------------------------------------


def _config(tiny: TinyCheckpoints, output_dir: Path, **overrides: str) -> TrainingConfig:
    os.environ["THEWORLD_TINY_DIR"] = str(tiny.gemma.parent)
    small = {
        "batch_size": "4",
        "num_samples": "8",  # two full batches: every first encoding runs at the batch size of training
        "num_epochs": "2",
        "max_steps": "-1",
        "num_eval_samples": "0",
        "logging_steps": "1",
        "warmup_steps": "1",
        "save_steps": "1000",
        "freeze_gemma_vision": "true",
        "freeze_gemma_language": "true",
        "output_dir": str(output_dir),
    }
    return TrainingConfig.from_json(ROOT / "configs" / "tiny.json", {**small, **overrides})


def test_cache_config_keys_are_validated(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    cases = {
        ("world_cache_dir", str(tmp_path)): "world_cache_size=0 turns the world-latent cache off",
        ("world_cache_size", "-1"): "world_cache_size=-1: expected >= 0",
    }
    for (key, value), message in cases.items():
        with pytest.raises(ConfigError, match=message) as error:
            _config(tiny, tmp_path / "run", **{key: value})
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="needs a frozen VAE") as error:
        _config(tiny, tmp_path / "run", world_cache_size="8", freeze_cosmos_vae="false")
    assert error.value.key == "world_cache_size"


def test_training_with_the_cache_gives_the_same_losses(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    losses: dict[str, list[float]] = {}
    stats: dict[str, Any] = {}
    trained: dict[str, dict[str, torch.Tensor]] = {}
    arms: dict[str, dict[str, str]] = {
        "uncached": {},
        "cached": {"world_cache_size": "64", "world_cache_dir": str(tmp_path / "latents")},
    }
    for arm, extra in arms.items():
        trainer, _ = build_trainer(_config(tiny, tmp_path / arm, **extra))
        model: Any = trainer.model
        assert (model.world_cache is None) == (arm == "uncached")
        trainer.train()
        losses[arm] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        stats[arm] = model.world_cache.stats() if model.world_cache is not None else None
        trained[arm] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert len(losses["cached"]) == 4  # 2 epochs x 2 steps
    assert losses["cached"] == losses["uncached"]
    assert trained["cached"].keys() == trained["uncached"].keys()
    for name, tensor in trained["cached"].items():
        assert torch.equal(tensor, trained["uncached"][name]), name  # the same updates, bit for bit
    cached = stats["cached"]
    assert (cached["misses"], cached["hits"], cached["disk_writes"]) == (8, 8, 8)  # epoch 2: every picture a hit
