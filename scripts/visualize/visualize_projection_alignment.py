"""Projection alignment of a TheWorld checkpoint: world vs SigLIP-image vs text embeddings in Gemma's input space.

    python scripts/visualize/visualize_projection_alignment.py --model CHECKPOINT --num-images 32 \\
        --output outputs/alignment.png
    python scripts/visualize/visualize_projection_alignment.py --model CHECKPOINT --images DIR \\
        --prompts prompts.txt --max-points 300 --perplexity 30 --seed 0

Writes one PNG (PCA scatter, t-SNE scatter, cross-modality cosine histogram, L2 norms) and a metrics JSON beside it
(same name, `.json`: norms, cosines, centroid distance / spread, PCA explained variance, t-SNE KL); prints the
headline numbers. What is measured, and how, is described in `theworld.evaluation.projection_alignment`. Bad input
(a model without world tokens, an empty folder, ...) prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from theworld.evaluation.cli import DTYPES, run_main
from theworld.evaluation.model_specs import EvalModelSpec, load_eval_model
from theworld.evaluation.projection_alignment import (
    DEFAULT_PROMPTS,
    MODALITIES,
    PAIRS,
    AlignmentSettings,
    check_world_model,
    draw_alignment,
    load_pictures,
    projection_alignment,
)
from theworld.evaluation.results import write_json_atomic

DEFAULT_NUM_IMAGES = 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visualize_projection_alignment.py", description=(__doc__ or "").split("\n\n")[0]
    )
    add = parser.add_argument
    add("--model", required=True, help="TheWorld checkpoint (directory or Hub id)")
    add("--cosmos-model", default=None, help="override the checkpoint's Cosmos-Predict2 source")
    add("--images", type=Path, default=None, help="folder of pictures (default: generate --num-images pictures)")
    add(
        "--num-images",
        type=int,
        default=None,
        help=f"pictures to generate (default {DEFAULT_NUM_IMAGES}), or the first N of --images",
    )
    add("--image-size", type=int, default=224, help="side of generated pictures")
    add("--prompts", type=Path, default=None, help="text file, one prompt per line (default: built-in prompts)")
    add("--prompt", action="append", default=[], help="a prompt (repeatable; added to --prompts)")
    add("--max-points", type=int, default=300, help="PCA / t-SNE rows per modality")
    add("--pair-samples", type=int, default=5000, help="random pairs per cosine histogram")
    add("--perplexity", type=float, default=30.0)
    add("--tsne-iterations", type=int, default=1000)
    add("--tsne-init", choices=("pca", "random"), default="pca")
    add("--seed", type=int, default=0)
    add("--batch-size", type=int, default=8)
    add("--output", type=Path, default=Path("outputs/projection_alignment.png"), help="PNG; the JSON goes beside it")
    add("--device", default="cpu")
    add("--dtype", choices=tuple(DTYPES), default="float32")
    add("-v", "--verbose", action="store_true")
    return parser


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts: list[str] = []
    if args.prompts is not None:
        if not args.prompts.is_file():
            raise FileNotFoundError(f"--prompts {args.prompts}: no such file")
        prompts = [line.strip() for line in args.prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not prompts:
            raise ValueError(f"--prompts {args.prompts}: no prompts in the file (one per line)")
    return [*prompts, *args.prompt] or list(DEFAULT_PROMPTS)


def main(argv: Sequence[str] | None = None, model: Any = None) -> int:
    """`model`: an already loaded TheWorld (tests); otherwise `--model` is loaded."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    for name in ("num_images", "max_points", "pair_samples", "tsne_iterations", "batch_size", "image_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    if args.output.suffix.lower() != ".png":
        raise ValueError(f"--output {args.output}: expected a .png file name")
    count = args.num_images if args.images is not None or args.num_images is not None else DEFAULT_NUM_IMAGES
    pictures = load_pictures(args.images, count, args.image_size)
    prompts = read_prompts(args)
    if model is None:
        spec = EvalModelSpec(model=args.model, cosmos_model=args.cosmos_model)
        if spec.is_baseline:
            raise ValueError(f"--model {args.model}: the Gemma-only baseline has no world tokens")
        model = load_eval_model(spec, args.device, DTYPES[args.dtype])
    check_world_model(model, args.model)
    settings = AlignmentSettings(
        max_points_per_modality=args.max_points,
        pair_samples=args.pair_samples,
        perplexity=args.perplexity,
        tsne_iterations=args.tsne_iterations,
        tsne_init=args.tsne_init,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    result = projection_alignment(model, pictures, prompts, settings)
    result.metrics["model"] = args.model
    title = f"{args.model}: {len(pictures)} pictures, {len(prompts)} prompts"
    plot = draw_alignment(result, args.output, title)
    metrics = write_json_atomic(args.output.with_suffix(".json"), result.metrics)
    norms = result.metrics["norms"]
    print(
        "L2 norm (mean ± std): " + ", ".join(f"{m} {norms[m]['mean']:.3g} ± {norms[m]['std']:.2g}" for m in MODALITIES)
    )
    for a, b in PAIRS:
        cosine, alignment = result.metrics["cosine"][f"{a}-{b}"], result.metrics["alignment"][f"{a}-{b}"]
        print(
            f"{a}↔{b}: cosine of means {cosine['of_means']:+.3f}, pairwise {cosine['pairwise_mean']:+.3f} "
            f"± {cosine['pairwise_std']:.3f}; centroid distance / spread {alignment['distance_over_spread']:.3f}"
        )
    print(f"plot: {plot}  metrics: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
