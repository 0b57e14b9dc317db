"""Where do world tokens land in Gemma's embedding space? World, SigLIP-image and text embeddings compared.

`collect_embeddings(model, pictures, prompts)` gathers, as float32 rows [count, hidden]:
- "world": every projected world token, `model.encode_world(processor.world_pixels(pictures))` (what the LM sees at
  the `<world_soft_token>` places);
- "image": every SigLIP token after Gemma's multimodal projector, `model.model.get_image_features(pixel_values)
  .pooler_output` ([N, mm_tokens_per_image, hidden] in transformers 5.23; what the LM sees at `<image_soft_token>`);
- "text": the prompts' distinct token ids through `model.get_input_embeddings()`, i.e. embedding rows already
  multiplied by Gemma's sqrt(hidden) scale, as the LM sees them.

`analyze_alignment(embeddings)` then reports (`AlignmentResult.metrics`, JSON-ready):
- norms: mean / std of the L2 norm of each modality's rows (all rows);
- cosine: per modality pair, the cosine of the two mean vectors, and the mean / std of cosines of up to
  `pair_samples` random cross-modality pairs (all pairs when there are fewer);
- alignment: per pair, `distance_over_spread` = |centroid_A - centroid_B| / sqrt((s_A² + s_B²) / 2), where s² is a
  modality's mean squared distance to its own centroid: ~0 = same place, < 1 = overlapping clouds, >> 1 = apart;
- pca / tsne: 2-D maps of a balanced sample (at most `max_points_per_modality` rows of each modality, drawn with
  `seed`), and the PCA explained-variance ratios (exact SVD of the centred sample).

t-SNE (van der Maaten & Hinton 2008), exact O(n²), written here in torch because there is no scikit-learn (fine for
≤ 2000 points): squared Euclidean distances; per-point Gaussian precision found by bisection so that the conditional
distribution's entropy is log(perplexity) (perplexity clamped to (n - 1) / 3); symmetrized P; Student-t Q; gradient
descent with momentum 0.5 → 0.8, early exaggeration 12 for the first 250 iterations, delta-bar-delta gains
(+0.2 / x0.8, floor 0.01) and learning rate max(n / 12 / 4, 50) — the choices of the reference implementation and
scikit-learn. Initialization: the PCA map scaled to std 1e-4 (default) or a seeded Gaussian. P is computed in float64,
the descent runs in float32 (3x faster; ample for a 2-D picture). ~5 ms per iteration at n = 900 on one CPU core.
[Contract] the same inputs and seed give the same maps and metrics, bit for bit, on one machine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import ImageDraw

from theworld.data.image_inputs import load_image
from theworld.plot_charts import BarSeries, bar_chart, histogram, scatter_plot
from theworld.plots import draw_text, font, new_figure, panel_boxes
from theworld.testing.pictures import make_picture

logger = logging.getLogger(__name__)

MODALITIES = ("world", "image", "text")
PAIRS = (("world", "text"), ("world", "image"), ("image", "text"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_PROMPTS = (
    "Is the red shape left of the blue shape?",
    "What is above the circle?",
    "How far is the camera from the nearest object?",
    "Which object is closer to the viewer, the square or the triangle?",
    "Describe the layout of the scene.",
    "What will happen if the ball rolls to the right?",
)


@dataclass
class AlignmentSettings:
    max_points_per_modality: int = 300  # per modality in the PCA / t-SNE sample (3 x 300 ≤ 2000 for exact t-SNE)
    pair_samples: int = 5000  # random cross-modality pairs per histogram
    perplexity: float = 30.0
    tsne_iterations: int = 1000
    tsne_init: str = "pca"  # or "random" (seeded)
    seed: int = 0
    batch_size: int = 8  # pictures per encoder call


@dataclass
class AlignmentResult:
    metrics: dict[str, Any]
    sample_modalities: list[str]  # modality of each row of `pca` / `tsne`
    pca: torch.Tensor  # [n, 2]
    tsne: torch.Tensor  # [n, 2]
    cosines: dict[str, torch.Tensor] = field(default_factory=dict)  # "world-text" → sampled pair cosines
    norms: dict[str, torch.Tensor] = field(default_factory=dict)  # modality → L2 norm of every row


# ---- inputs ----
def load_pictures(folder: str | Path | None = None, num_images: int | None = None, size: int = 224) -> list[Any]:
    """The pictures of `folder` (sorted by name, the first `num_images`), else `num_images` generated pictures."""
    if folder is None:
        if not num_images or num_images <= 0:
            raise ValueError("pictures: give a folder of pictures or --num-images N (N > 0) to generate some")
        return [make_picture(seed, size) for seed in range(num_images)]
    directory = Path(folder)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder of pictures")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{directory}: no pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    return [load_image(path, "picture") for path in files[:num_images]]


def check_world_model(model: Any, name: str = "model") -> None:
    """One-line ValueError unless `model` is a TheWorld with world tokens and a processor."""
    if not getattr(model.config, "enable_world", False) or not hasattr(model, "encode_world"):
        raise ValueError(f"{name}: enable_world=False (no world tokens); use a TheWorld checkpoint with world tokens")
    if getattr(model, "processor", None) is None:
        raise ValueError(f"{name}: no processor attached; load it with TheWorld.from_pretrained")


@torch.no_grad()
def collect_embeddings(
    model: Any, pictures: Sequence[Any], prompts: Sequence[str], batch_size: int = 8
) -> dict[str, torch.Tensor]:
    """{"world", "image", "text"} → float32 CPU rows [count, hidden] (see the module docstring)."""
    check_world_model(model)
    if not pictures or not prompts:
        raise ValueError(f"collect_embeddings: need pictures and prompts, got {len(pictures)} and {len(prompts)}")
    processor, dtype = model.processor, model.dtype
    device = next(model.parameters()).device
    world, image = [], []
    for start in range(0, len(pictures), batch_size):
        chunk = list(pictures[start : start + batch_size])
        world.append(model.encode_world(processor.world_pixels(chunk).to(device)).flatten(0, -2).float().cpu())
        pixels = processor.image_processor(chunk, return_tensors="pt")["pixel_values"].to(device, dtype)
        features = model.model.get_image_features(pixels).pooler_output  # [N, mm_tokens, hidden]
        image.append(features.flatten(0, -2).float().cpu())
    ids: list[int] = []
    for row in processor.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]:
        ids.extend(row)
    unique = torch.tensor(list(dict.fromkeys(ids)), dtype=torch.long, device=device)
    text = model.get_input_embeddings()(unique).float().cpu()  # Gemma's embedding scales rows by sqrt(hidden)
    return {"world": torch.cat(world), "image": torch.cat(image), "text": text}


# ---- projections ----
def pca(points: torch.Tensor, components: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(coordinates [n, components], explained-variance ratio of every component) by exact SVD of the centred rows.

    Component signs are fixed (largest-magnitude loading positive), so results do not depend on the SVD backend."""
    centred = points.double() - points.double().mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    signs = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True))).squeeze(1)
    vh = vh * torch.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    ratio = variance / variance.sum() if float(variance.sum()) > 0 else torch.zeros_like(variance)
    return centred @ vh[:components].T, ratio


def conditional_probabilities(sq_distances: torch.Tensor, perplexity: float, steps: int = 100) -> torch.Tensor:
    """Rows p_{j|i} ∝ exp(-beta_i d²_ij) (p_{i|i} = 0) with beta_i bisected so that each row's entropy (nats) is
    log(perplexity)."""
    n = sq_distances.shape[0]
    distances = sq_distances.double().clone()
    distances.fill_diagonal_(math.inf)
    target = math.log(perplexity)
    scale = distances.masked_fill(torch.isinf(distances), 0).sum(1) / max(n - 1, 1)
    beta = 1.0 / scale.clamp_min(1e-12)  # start at the row's mean distance: a few bisection steps from the answer
    low, high = torch.zeros_like(beta), torch.full_like(beta, math.inf)
    probabilities = torch.softmax(-distances * beta[:, None], dim=1)
    for _ in range(steps):
        probabilities = torch.softmax(-distances * beta[:, None], dim=1)
        entropy = torch.special.entr(probabilities).sum(1)
        if bool(((entropy - target).abs() < 1e-5).all()):
            break
        too_flat = entropy > target  # too much entropy: sharpen (raise beta)
        low = torch.where(too_flat, beta, low)
        high = torch.where(too_flat, high, beta)
        beta = torch.where(torch.isinf(high), beta * 2, (low + high) / 2)
    return probabilities


def tsne(
    points: torch.Tensor,
    perplexity: float = 30.0,
    iterations: int = 1000,
    seed: int = 0,
    init: str = "pca",
    early_exaggeration: float = 12.0,
    exaggeration_iterations: int = 250,
) -> tuple[torch.Tensor, float]:
    """(2-D map [n, 2] float32, final KL(P || Q)) by exact t-SNE (see the module docstring)."""
    n = points.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE: need at least 4 points, got {n}")
    if init not in ("pca", "random"):
        raise ValueError(f"t-SNE: init must be 'pca' or 'random', got {init!r}")
    perplexity = min(float(perplexity), (n - 1) / 3)
    x = points.double()
    conditional = conditional_probabilities(torch.cdist(x, x).pow(2), perplexity)
    p = ((conditional + conditional.T) / (2 * n)).clamp_min(1e-12).float()  # float32 descent: ~3x faster
    if init == "pca":
        y = pca(x)[0].float()
        y = y / y[:, 0].std().clamp_min(1e-12) * 1e-4
    else:
        y = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 1e-4
    learning_rate = max(n / early_exaggeration / 4, 50.0)
    update, gains = torch.zeros_like(y), torch.ones_like(y)
    for step in range(iterations):
        exaggerate = step < exaggeration_iterations
        kernel = _student_kernel(y)
        # gradient_i = 4 sum_j (exaggeration * p_ij - q_ij) k_ij (y_i - y_j), q = k / sum(k); in place: n² buffers
        weights = p.mul(early_exaggeration if exaggerate else 1.0).sub_(kernel, alpha=1.0 / float(kernel.sum()))
        weights.mul_(kernel)
        gradient = 4.0 * (weights.sum(1, keepdim=True) * y - weights @ y)
        gains = torch.where((gradient > 0) != (update > 0), gains + 0.2, gains * 0.8).clamp_min(0.01)
        update = (0.5 if exaggerate else 0.8) * update - learning_rate * gains * gradient
        y = y + update
        y = y - y.mean(0)
    kernel = _student_kernel(y.double())
    q = (kernel / kernel.sum()).clamp_min(1e-12)
    return y, float((p.double() * (p.double() / q).log()).sum())


def _student_kernel(y: torch.Tensor) -> torch.Tensor:
    """k_ij = 1 / (1 + |y_i - y_j|²), k_ii = 0, computed in place in one n x n buffer."""
    squared = (y * y).sum(1)
    kernel = (y @ y.T).mul_(-2).add_(squared[:, None]).add_(squared[None, :]).clamp_(min=0).add_(1).reciprocal_()
    return kernel.fill_diagonal_(0.0)


# ---- metrics ----
def sample_rows(rows: torch.Tensor, limit: int, generator: torch.Generator) -> torch.Tensor:
    if rows.shape[0] <= limit:
        return rows
    return rows[torch.randperm(rows.shape[0], generator=generator)[:limit].sort().values]


def pair_cosines(a: torch.Tensor, b: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Cosines of all (a_i, b_j) pairs, or of `count` random pairs when there are more."""
    a, b = torch.nn.functional.normalize(a.double(), dim=1), torch.nn.functional.normalize(b.double(), dim=1)
    if a.shape[0] * b.shape[0] <= count:
        return (a @ b.T).flatten()
    i = torch.randint(a.shape[0], (count,), generator=generator)
    j = torch.randint(b.shape[0], (count,), generator=generator)
    return (a[i] * b[j]).sum(1)


def centroid_separation(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    centre_a, centre_b = a.double().mean(0), b.double().mean(0)
    spread_a = float((a.double() - centre_a).pow(2).sum(1).mean())
    spread_b = float((b.double() - centre_b).pow(2).sum(1).mean())
    distance, spread = float((centre_a - centre_b).norm()), math.sqrt((spread_a + spread_b) / 2)
    return {"centroid_distance": distance, "spread": spread, "distance_over_spread": distance / max(spread, 1e-12)}


def analyze_alignment(
    embeddings: Mapping[str, torch.Tensor], settings: AlignmentSettings | None = None
) -> AlignmentResult:
    """Norms, cosines, centroid separation, PCA and t-SNE of the three modalities (see the module docstring)."""
    settings = settings or AlignmentSettings()
    missing = [m for m in MODALITIES if m not in embeddings or embeddings[m].ndim != 2 or not len(embeddings[m])]
    if missing:
        raise ValueError(f"analyze_alignment: no embeddings [count, hidden] for {', '.join(missing)}")
    generator = torch.Generator().manual_seed(settings.seed)
    norms = {m: embeddings[m].double().norm(dim=1) for m in MODALITIES}
    cosines, cosine_metrics, alignment = {}, {}, {}
    for a, b in PAIRS:
        name = f"{a}-{b}"
        cosines[name] = pair_cosines(embeddings[a], embeddings[b], settings.pair_samples, generator)
        means = embeddings[a].double().mean(0), embeddings[b].double().mean(0)
        cosine_metrics[name] = {
            "of_means": float(torch.nn.functional.cosine_similarity(*means, dim=0)),
            "pairwise_mean": float(cosines[name].mean()),
            "pairwise_std": float(cosines[name].std()) if len(cosines[name]) > 1 else 0.0,
            "pairs": len(cosines[name]),
        }
        alignment[name] = centroid_separation(embeddings[a], embeddings[b])
    samples = {m: sample_rows(embeddings[m], settings.max_points_per_modality, generator) for m in MODALITIES}
    joint = torch.cat([samples[m] for m in MODALITIES])
    labels = [m for m in MODALITIES for _ in range(len(samples[m]))]
    pca_map, ratio = pca(joint)
    tsne_map, kl = tsne(joint, settings.perplexity, settings.tsne_iterations, settings.seed, settings.tsne_init)
    metrics = {
        "rows": {m: len(embeddings[m]) for m in MODALITIES},
        "sampled_rows": {m: len(samples[m]) for m in MODALITIES},
        "hidden_size": int(joint.shape[1]),
        "norms": {m: {"mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0} for m, v in norms.items()},
        "cosine": cosine_metrics,
        "alignment": alignment,
        "pca": {"explained_variance_ratio": [float(r) for r in ratio[:10]], "pc1_pc2": float(ratio[:2].sum())},
        "tsne": {"perplexity": min(settings.perplexity, (len(joint) - 1) / 3), "kl_divergence": kl},
        "settings": asdict(settings),
    }
    return AlignmentResult(metrics, labels, pca_map.float(), tsne_map.float(), cosines, norms)


# ---- figure ----
def draw_alignment(result: AlignmentResult, path: str | Path, title: str = "") -> Path:
    """One PNG: PCA scatter, t-SNE scatter, cross-modality cosine histogram (dashed: cosine of the mean vectors),
    and mean L2 norm per modality (± std)."""
    image = new_figure(1400, 1140)
    boxes = panel_boxes(image, 2, 2, top=36)
    draw_text(ImageDraw.Draw(image), (700, 10), title or "projection alignment", font(17), "mt")

    def groups(coords: torch.Tensor) -> list[tuple[str, list[float], list[float]]]:
        rows = {name: [i for i, m in enumerate(result.sample_modalities) if m == name] for name in MODALITIES}
        return [(f"{m} ({len(r)})", coords[r, 0].tolist(), coords[r, 1].tolist()) for m, r in rows.items()]

    ratio = result.metrics["pca"]["explained_variance_ratio"]
    pc = [100 * (ratio[i] if i < len(ratio) else 0.0) for i in range(2)]
    scatter_plot(
        image, boxes[0], groups(result.pca), "PCA of the joint sample", f"PC1 ({pc[0]:.1f}%)", f"PC2 ({pc[1]:.1f}%)"
    )
    tsne_title = f"t-SNE (perplexity {result.metrics['tsne']['perplexity']:.3g})"
    scatter_plot(image, boxes[1], groups(result.tsne), tsne_title, "t-SNE 1", "t-SNE 2")
    series = [(name, values.tolist()) for name, values in result.cosines.items()]
    markers = [(name, result.metrics["cosine"][name]["of_means"]) for name in result.cosines]
    histogram(
        image,
        boxes[2],
        series,
        bins=40,
        title="cosine similarity of cross-modality pairs (dashed: of the mean vectors)",
        xlabel="cosine similarity",
        markers=markers,
    )
    norms = result.metrics["norms"]
    means = [norms[m]["mean"] for m in MODALITIES]
    stds = [norms[m]["std"] for m in MODALITIES]
    bars = BarSeries(
        "mean ± std",
        means,
        [m - s for m, s in zip(means, stds, strict=True)],
        [m + s for m, s in zip(means, stds, strict=True)],
    )
    bar_chart(image, boxes[3], list(MODALITIES), [bars], title="L2 norm per modality", ylabel="L2 norm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def projection_alignment(
    model: Any, pictures: Sequence[Any], prompts: Sequence[str], settings: AlignmentSettings | None = None
) -> AlignmentResult:
    """`collect_embeddings` then `analyze_alignment`."""
    settings = settings or AlignmentSettings()
    embeddings = collect_embeddings(model, pictures, prompts, settings.batch_size)
    logger.info("rows: %s", {m: len(v) for m, v in embeddings.items()})
    result = analyze_alignment(embeddings, settings)
    result.metrics.update(num_pictures=len(pictures), num_prompts=len(prompts))
    return result
