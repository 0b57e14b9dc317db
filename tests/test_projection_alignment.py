"""Projection alignment: exact t-SNE and PCA on known geometry, metrics, and the visualizer on the tiny TheWorld."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scripts.visualize.visualize_projection_alignment import main

from theworld import TheWorld
from theworld.evaluation.cli import run_main
from theworld.evaluation.projection_alignment import (
    AlignmentSettings,
    analyze_alignment,
    collect_embeddings,
    conditional_probabilities,
    pca,
    tsne,
)
from theworld.testing import TINY_MM_TOKENS_PER_IMAGE, TinyCheckpoints, make_picture


def two_clusters(per_cluster: int = 30, dims: int = 20, gap: float = 8.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(2 * per_cluster, dims, generator=generator)
    points[per_cluster:, 0] += gap  # centres 8 standard deviations apart along one axis
    return points


def test_perplexity_calibration() -> None:
    points = two_clusters()
    probabilities = conditional_probabilities(torch.cdist(points, points).pow(2), perplexity=10.0)
    assert torch.allclose(probabilities.sum(1), torch.ones(len(points), dtype=torch.float64))
    assert float(probabilities.diagonal().abs().max()) == 0.0
    entropy = torch.special.entr(probabilities).sum(1)
    assert torch.allclose(entropy, torch.full_like(entropy, math.log(10.0)), atol=1e-4)


def test_tsne_separates_two_gaussian_clusters() -> None:
    points = two_clusters()
    labels = torch.arange(len(points)) >= len(points) // 2
    for init, seed in (("pca", 0), ("random", 3)):
        embedded, kl = tsne(points, perplexity=10.0, iterations=500, seed=seed, init=init)
        assert embedded.shape == (60, 2) and math.isfinite(kl) and kl > 0
        distances = torch.cdist(embedded, embedded).fill_diagonal_(math.inf)
        assert bool((labels[distances.argmin(1)] == labels).all())  # every nearest neighbour in its own cluster
        centres = [embedded[labels == side].mean(0) for side in (False, True)]
        spread = max(
            float((embedded[labels == side] - c).norm(dim=1).mean())
            for side, c in zip((False, True), centres, strict=True)
        )
        assert float((centres[0] - centres[1]).norm()) > 3 * spread
    again, _ = tsne(points, perplexity=10.0, iterations=500, seed=3, init="random")
    assert torch.equal(again, embedded)  # deterministic for a seed


def test_pca_matches_svd() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    coords, ratio = pca(torch.from_numpy(data))
    centred = data - data.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assert ratio.numpy() == pytest.approx(singular**2 / (singular**2).sum())
    assert float(ratio.sum()) <= 1 + 1e-12 and float(ratio[:2].sum()) <= 1
    assert all(a >= b for a, b in zip(ratio.tolist(), ratio.tolist()[1:], strict=False))
    assert coords.numpy().var(0, ddof=0) * len(data) == pytest.approx(singular[:2] ** 2)  # variance along PC1, PC2


def test_alignment_metrics_on_known_geometry() -> None:
    text = two_clusters(per_cluster=10, dims=8, seed=1) + 2.0
    embeddings = {"world": text.clone(), "image": -text, "text": text}
    metrics = analyze_alignment(embeddings, AlignmentSettings(tsne_iterations=50, perplexity=5.0)).metrics
    assert metrics["alignment"]["world-text"]["distance_over_spread"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["cosine"]["world-text"]["of_means"] == pytest.approx(1.0)
    assert metrics["cosine"]["image-text"]["of_means"] == pytest.approx(-1.0)
    assert metrics["norms"]["world"] == pytest.approx(metrics["norms"]["image"])
    assert metrics["cosine"]["world-text"]["pairs"] == 20 * 20  # fewer than pair_samples: every pair


def test_visualizer_end_to_end(world_model: TheWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "alignment.png"
    prompts = ["Is the red shape left of the blue shape?", "What is above the circle?"]
    argv = ["--model", "tiny", "--num-images", "2", "--image-size", "64", "--max-points", "20", "--output", str(output)]
    argv += [arg for prompt in prompts for arg in ("--prompt", prompt)]
    assert main([*argv, "--tsne-iterations", "300"], model=world_model) == 0
    metrics = json.loads(output.with_suffix(".json").read_text())

    tokens = set(world_model.processor.tokenizer(prompts, add_special_tokens=False)["input_ids"][0])
    tokens |= set(world_model.processor.tokenizer(prompts, add_special_tokens=False)["input_ids"][1])
    num_world_tokens = world_model.processor.num_world_tokens
    assert metrics["rows"] == {
        "world": 2 * num_world_tokens,
        "image": 2 * TINY_MM_TOKENS_PER_IMAGE,
        "text": len(tokens),
    }
    assert sum(metrics["sampled_rows"].values()) <= 64
    assert sum(metrics["pca"]["explained_variance_ratio"]) <= 1 + 1e-9
    assert all(-1 <= metrics["cosine"][pair]["of_means"] <= 1 for pair in ("world-text", "world-image", "image-text"))
    assert math.isfinite(metrics["tsne"]["kl_divergence"])

    pictures = [make_picture(seed, 64) for seed in range(2)]
    with torch.no_grad():
        world = world_model.encode_world(world_model.processor.world_pixels(pictures))
    assert metrics["norms"]["world"]["mean"] == pytest.approx(float(world.norm(dim=-1).mean()), rel=1e-5)
    with Image.open(output) as image:
        image.load()
        assert image.format == "PNG" and image.size == (1400, 1140)
    assert "world↔text: cosine of means" in capsys.readouterr().out


def test_text_rows_are_scaled_embeddings(world_model: TheWorld) -> None:
    embeddings = collect_embeddings(world_model, [make_picture(0, 64)], ["red left blue red"])
    ids = list(
        dict.fromkeys(world_model.processor.tokenizer("red left blue red", add_special_tokens=False)["input_ids"])
    )
    table = world_model.get_input_embeddings()
    expected = table.weight[ids].float() * float(table.embed_scale)  # type: ignore[operator]
    assert torch.allclose(embeddings["text"], expected, atol=1e-5)
    assert embeddings["image"].shape == (TINY_MM_TOKENS_PER_IMAGE, world_model.config.get_text_config().hidden_size)


def test_model_without_world_tokens_is_a_one_line_error(
    tiny: TinyCheckpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    TheWorld.from_pretrained(tiny.gemma, enable_world=False).save_pretrained(plain)
    assert run_main(main, ["--model", str(plain), "--num-images", "1", "--output", str(tmp_path / "a.png")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]  # after load bars
    assert len(errors) == 1 and errors[0].startswith(f"error: {plain}: enable_world=False")
    assert run_main(main, ["--model", "gemma3-baseline", "--num-images", "1", "--output", str(tmp_path / "b.png")]) == 2
    assert "no world tokens" in capsys.readouterr().err
    assert run_main(main, ["--model", "x", "--images", str(tmp_path), "--output", str(tmp_path / "c.png")]) == 2
    assert f"{tmp_path}: no pictures" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()
