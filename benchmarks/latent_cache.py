"""Benchmark: training steps after the first epoch without and with the world-latent cache, on the tiny TheWorld.

    python benchmarks/latent_cache.py [--samples 32] [--batch-size 8] [--epochs 4] [--mode channel]
                                      [--world-image-size 64] [--world-steps 0] [--threads 1] [--tiny-dir DIR]

Two models are built from the same seed through the training build (`theworld.training.build.build_model`): one with
`world_cache_size=0`, one with `world_cache_size` = the number of samples (the frozen VAE, as in every shipped
config, trains nothing). Both train on the same synthetic-spatial examples (`dataset_name="synthetic_spatial"`, real
collator, real chat template) with the same AdamW, one Trainer-like step per batch: forward with labels, backward,
optimizer step. Every epoch visits the examples in a new seeded order (as the Trainer's sampler does); each batch is
collated once and given to both models. The defaults are configs/tiny.json's model (channel mode, 64 px world
pictures) at batch 8 (tiny.json trains at 32; 8 keeps the run short): the VAE's cost grows with the pictures of a
batch while the tiny LM's step is mostly fixed overhead, so smaller batches show less of the cache's gain (batch 4:
~2.1x) and larger ones more.

Epoch 1 is the warm-up (untimed): both arms compute every world latent; the cached arm also stores them. Epochs 2..E
are timed step by step, the two arms back to back on the same batch, the order alternating step by step so machine
load hits both alike. The verdict is the median over steps of uncached/cached step time (pairing the two calls of a
step cancels the slow drifts of a shared machine's load). Goal: >= 2x (exit 1 on FAIL). The losses of the two arms
must also be identical at every step, epoch 1 included (bit for bit: the cache returns the latents computed in epoch
1, and the VAE's result depends only on the batch size, which is constant), else FAIL.

`--threads 1` (default): on the shared 2-core machine two intra-op threads spin-wait on each other; the comparison is
about the cache, not threading.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GOAL = 2.0


def build(args: argparse.Namespace, tiny_dir: Path, output_dir: Path, cache_size: int) -> tuple[Any, Any, Any]:
    """(model, train dataset, collator) for one arm, through the training build, from the same seed."""
    from transformers import set_seed

    from theworld.data.collator import TheWorldCollator
    from theworld.testing import build_tiny_checkpoints
    from theworld.training.build import build_datasets, build_model
    from theworld.training.config import TrainingConfig

    tiny = build_tiny_checkpoints(tiny_dir)
    cosmos = tiny.cosmos_pipeline if args.world_steps else tiny.cosmos
    config = TrainingConfig(
        model_name=str(tiny.gemma),
        cosmos_model_name=str(cosmos),
        world_image_size=args.world_image_size,
        world_projection_mode=args.mode,
        num_world_steps=args.world_steps,
        freeze_gemma_vision=True,
        freeze_gemma_language=True,
        dataset_name="synthetic_spatial",
        synthetic_relations="left_of,above",
        num_samples=args.samples,
        num_eval_samples=0,
        batch_size=args.batch_size,
        max_length=512,
        output_dir=str(output_dir),
        world_cache_size=cache_size,
        seed=0,
    )
    set_seed(config.seed)
    train_dataset, _, _ = build_datasets(config)
    model = build_model(config)
    if args.world_steps:
        model.config.world_rollout_steps = 2  # the tiny transformer is random: two denoising steps run the loop
    model.train()
    return model, train_dataset, TheWorldCollator(model.processor, max_length=config.max_length)


class Arm:
    """One model and its optimizer; `step(batch)` is one Trainer-like step and returns (seconds, loss)."""

    def __init__(self, name: str, model: Any, learning_rate: float) -> None:
        self.name = name
        self.model = model
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, batch: dict[str, torch.Tensor], timed: bool) -> None:
        start = time.perf_counter()
        loss = self.model(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        self.losses.append(float(loss.detach()))
        if timed:
            self.times.append(seconds)


def epoch_batches(dataset: Any, collator: Any, batch_size: int, epoch: int) -> list[dict[str, torch.Tensor]]:
    """The epoch's batches: a seeded permutation of the examples (new every epoch), full batches only."""
    order = list(range(len(dataset)))
    random.Random(1000 + epoch).shuffle(order)
    usable = len(order) - len(order) % batch_size
    return [collator([dataset[i] for i in order[s : s + batch_size]]) for s in range(0, usable, batch_size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="epoch 1 is the warm-up; 2..E are timed")
    parser.add_argument(
        "--mode", choices=("spatial", "pooled", "channel"), default="channel", help="as configs/tiny.json"
    )
    parser.add_argument("--world-image-size", type=int, default=64)
    parser.add_argument("--world-steps", type=int, default=0, help="> 0: rollout on the tiny Cosmos pipeline")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny-dir", type=Path, default=None, help="reuse tiny checkpoints here (built if missing)")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.samples < args.batch_size:
        parser.error("--epochs must be >= 2 and --samples >= --batch-size (one timed epoch of full batches at least)")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="theworld-bench-") as temp:
        tiny_dir = args.tiny_dir or Path(temp) / "tiny"
        uncached_model, dataset, collator = build(args, tiny_dir, Path(temp) / "uncached", cache_size=0)
        cached_model, _, _ = build(args, tiny_dir, Path(temp) / "cached", cache_size=args.samples)
        arms = [Arm("uncached", uncached_model, args.learning_rate), Arm("cached", cached_model, args.learning_rate)]
        step_index = 0
        for epoch in range(args.epochs):
            for batch in epoch_batches(dataset, collator, args.batch_size, epoch):
                ordered = arms if step_index % 2 == 0 else arms[::-1]
                for arm in ordered:
                    arm.step(batch, timed=epoch > 0)
                step_index += 1
        stats = cached_model.world_cache.stats()

    uncached, cached = arms
    ratios = [u / c for u, c in zip(uncached.times, cached.times, strict=True)]
    ratio = statistics.median(ratios)
    identical = uncached.losses == cached.losses
    differing = sum(a != b for a, b in zip(uncached.losses, cached.losses, strict=True))
    print(
        f"{args.samples} examples, batch {args.batch_size}, {args.epochs} epochs (epoch 1 = warm-up), {args.mode} "
        f"mode, {args.world_image_size} px world pictures, num_world_steps={args.world_steps}, {args.threads} thread(s)"
    )
    print(f"{'arm':<10}{'median step ms':>16}{'min ms':>10}{'timed steps':>13}")
    for arm in arms:
        print(
            f"{arm.name:<10}{1000 * statistics.median(arm.times):>16.1f}{1000 * min(arm.times):>10.1f}"
            f"{len(arm.times):>13}"
        )
    print(
        f"cache: {stats['hits']} hits, {stats['misses']} misses, {stats['items']} in memory "
        f"(epoch 1 fills it, every later picture is a hit)"
    )
    print(
        f"losses identical at every step: {differing} of {len(uncached.losses)} differ: "
        f"{'PASS' if identical else 'FAIL'}"
    )
    passed = identical and ratio >= GOAL
    print(
        f"speed-up from epoch 2, uncached / cached step time (median of paired steps): {ratio:.2f}x "
        f"(goal >= {GOAL:.0f}x): {'PASS' if ratio >= GOAL else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
