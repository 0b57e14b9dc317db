"""Benchmark: cost of the world-token layouts (spatial, pooled, channel) at num_world_steps 0 and 4, tiny TheWorld.

    python benchmarks/token_modes.py [--batch-size 4] [--repeats 15] [--warmup 1] [--pool-size 2] [--threads 1]
                                     [--tiny-dir DIR]
    python benchmarks/token_modes.py --budget-table      # only the token-budget tables (no model, no timing)

One tiny TheWorld per mode is converted from the same tiny Gemma with the same seed, its Cosmos source the whole
tiny Video2World pipeline (`tiny.cosmos_pipeline`, 2 denoising steps), so steps = 4 runs a real rollout. Every arm
gets the same batch: `--batch-size` synthetic-spatial examples through the real collator (chat template, labels);
only the number of world placeholders differs. Per (mode, steps) arm:

- tokens: world tokens per picture (`TheWorldConfig.num_world_tokens`) and the batch's padded sequence length;
- forward: `model(**batch)` without gradients, world latents served by the world-latent cache (filled in the
  warm-up), so the time is the projector + the LM on that many tokens: what the layout changes;
- train step: forward with labels + backward + AdamW step, latents cached likewise;
- encode: the uncached world latents (VAE, plus the rollout at steps = 4); the same in every mode (the layout is
  applied after it), measured on the spatial model.

Timing: `--warmup` untimed rounds, then `--repeats` rounds; each round times every arm once, in an order rotated
round by round so machine load hits all arms alike. Times are medians over rounds; a ratio (spatial / pooled,
spatial / channel, at the same steps) is the median over rounds of the ratio within a round, which cancels the slow
drifts of a shared machine's load. Goal: the pooled layout (k^2 fewer world tokens) makes the train step at least
`GOAL`x faster than spatial at num_world_steps = 4, and every arm's token count equals the processor's placeholder
count (exit 1 on FAIL). On the tiny model a step is mostly fixed per-call overhead (SigLIP, Python, the optimizer),
so the speed-up is far below the 4x token ratio; on a real LM the per-token work dominates.

`--budget-table` prints the tables of docs/architecture/token-budget.md: world tokens per picture for each mode x
world_image_size x steps, and the whole picture block for the tiny and the real (Gemma 3 4B, 256 px) configuration,
all computed by `TheWorldConfig` and `TrainingConfig`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

MODES = ("spatial", "pooled", "channel")
STEPS = (0, 4)
GOAL = 1.2  # spatial / pooled train-step time at num_world_steps = 4 (median of per-round ratios)
BUDGET_SIZES = (64, 128, 256, 512)
BUDGET_STEPS = (0, 4, 8, 16)
REAL_GEMMA = "google/gemma-3-4b-it"  # its config ships with theworld.plan


# ---------------------------------------------------------------------------------------------------------------
# Token budget (no model needed)
# ---------------------------------------------------------------------------------------------------------------


def budget_tables(pool_size: int = 2) -> str:
    """Markdown: world tokens per mode x world_image_size x steps, then per-picture blocks of the two configs."""
    from transformers import AutoConfig

    from theworld import TheWorldConfig
    from theworld.plan.meta import SHIPPED_CONFIGS
    from theworld.testing import TINY_MM_TOKENS_PER_IMAGE

    lines = [
        f"World tokens per picture (`TheWorldConfig.num_world_tokens(steps)`, pooled with k = {pool_size}):",
        "",
        "| world_image_size | latent grid | mode | " + " | ".join(f"steps {s}" for s in BUDGET_STEPS) + " |",
        "|---:|---:|---|" + "---:|" * len(BUDGET_STEPS),
    ]
    for size in BUDGET_SIZES:
        for mode in MODES:
            config = TheWorldConfig(world_image_size=size, world_projection_mode=mode, world_pool_size=pool_size)
            side = config.world_latent_size
            counts = " | ".join(f"{config.num_world_tokens(steps):,}" for steps in BUDGET_STEPS)
            lines.append(f"| {size} | {side}x{side} | {mode} | {counts} |")
    lines += [
        "",
        "Whole picture block in the LM's sequence: `<start_of_world>` + world tokens + `<end_of_world>` + Gemma's "
        "`<start_of_image>` + SigLIP tokens + `<end_of_image>` (`TheWorldConfig.tokens_per_picture(steps)`):",
        "",
        "| configuration | world_image_size | SigLIP tokens | mode | "
        + " | ".join(f"steps {s}" for s in BUDGET_STEPS)
        + " |",
        "|---|---:|---:|---|" + "---:|" * len(BUDGET_STEPS),
    ]
    for name, size, siglip in (
        ("tiny", 64, TINY_MM_TOKENS_PER_IMAGE),
        ("real (gemma-3-4b-it)", 256, AutoConfig.from_pretrained(SHIPPED_CONFIGS / REAL_GEMMA).mm_tokens_per_image),
    ):
        for mode in MODES:
            config = TheWorldConfig(
                world_image_size=size, world_projection_mode=mode, world_pool_size=pool_size, mm_tokens_per_image=siglip
            )
            counts = " | ".join(f"{config.tokens_per_picture(steps):,}" for steps in BUDGET_STEPS)
            lines.append(f"| {name} | {size} | {config.mm_tokens_per_image} | {mode} | {counts} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------


def load_model(tiny: Any, mode: str, pool_size: int) -> Any:
    from theworld import TheWorld

    torch.manual_seed(0)  # the same world-projector init in every mode (its shapes match in spatial and pooled)
    model = TheWorld.from_pretrained(
        tiny.gemma,
        cosmos_model_name=str(tiny.cosmos_pipeline),
        world_image_size=64,
        world_projection_mode=mode,
        world_pool_size=pool_size,
        world_rollout_steps=2,
    )
    return model


def examples(count: int) -> list[dict[str, Any]]:
    from theworld.data.datasets import TheWorldDataset
    from theworld.data.synthetic_spatial import make_synthetic_spatial

    records = make_synthetic_spatial(num_train=count, num_test=0, image_size=64, seed=0)["train"]
    dataset = TheWorldDataset(records)
    return [dataset[i] for i in range(count)]


def batch_for(model: Any, items: list[dict[str, Any]], steps: int) -> dict[str, torch.Tensor]:
    from theworld.data.collator import TheWorldCollator

    collator = TheWorldCollator(model.processor, max_length=1024)
    with model.processor.using_world_steps(steps):
        batch = collator(items)
    return batch


class Arm:
    def __init__(self, mode: str, steps: int, model: Any, batch: dict[str, torch.Tensor]) -> None:
        self.mode, self.steps, self.model, self.batch = mode, steps, model, batch
        self.forward_times: list[float] = []
        self.train_times: list[float] = []
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        self.snapshot = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @property
    def label(self) -> str:
        return f"{self.mode} / {self.steps}"

    def world_tokens(self) -> int:
        return int(self.model.config.num_world_tokens(self.steps))

    def placeholders(self) -> int:
        ids = self.batch["input_ids"]
        return int((ids == self.model.config.world_token_id).sum()) // int(self.batch["world_pixel_values"].shape[0])

    def run(self, timed: bool) -> None:
        model = self.model
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            model(**self.batch, num_world_steps=self.steps)
        forward = time.perf_counter() - start
        model.train()
        start = time.perf_counter()
        loss = model(**self.batch, num_world_steps=self.steps).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        train = time.perf_counter() - start
        with torch.no_grad():  # the same weights every round: each arm times the same work
            for name, parameter in model.named_parameters():
                if name in self.snapshot:
                    parameter.copy_(self.snapshot[name])
        if timed:
            self.forward_times.append(forward)
            self.train_times.append(train)


def encode_times(model: Any, pixels: torch.Tensor, repeats: int) -> dict[int, float]:
    """Median seconds of the uncached world latents (VAE; + rollout at steps > 0) for a batch of pictures."""
    encoder = model.world_encoder
    times: dict[int, list[float]] = {steps: [] for steps in STEPS}
    with torch.no_grad():
        for _ in range(repeats):
            for steps in STEPS:
                start = time.perf_counter()
                model.world_latents(encoder, pixels, steps)
                times[steps].append(time.perf_counter() - start)
    return {steps: statistics.median(values) for steps, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny-dir", type=Path, default=None, help="reuse tiny checkpoints here (built if missing)")
    parser.add_argument("--budget-table", action="store_true", help="print the token-budget tables and exit")
    args = parser.parse_args(argv)
    if args.budget_table:
        print(budget_tables(args.pool_size))
        return 0
    if args.repeats < 1 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be >= 1")
    torch.set_num_threads(args.threads)

    from theworld.modeling.rollout_prompt import PROMPT_CACHE_ENV
    from theworld.testing import build_tiny_checkpoints

    with tempfile.TemporaryDirectory(prefix="theworld-bench-") as temp:
        import os

        os.environ.setdefault(PROMPT_CACHE_ENV, str(Path(temp) / "prompt_cache"))  # never the user's cache
        tiny = build_tiny_checkpoints(args.tiny_dir or Path(temp) / "tiny")
        items = examples(args.batch_size)
        models = {mode: load_model(tiny, mode, args.pool_size) for mode in MODES}
        for model in models.values():
            model.enable_world_cache(4 * args.batch_size)  # forward / train step time the layout, not the VAE
        arms = [
            Arm(mode, steps, models[mode], batch_for(models[mode], items, steps)) for mode in MODES for steps in STEPS
        ]
        for _ in range(args.warmup):
            for arm in arms:
                arm.run(timed=False)
        for round_index in range(args.repeats):
            shift = round_index % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                arm.run(timed=True)
        spatial = models["spatial"]
        spatial.disable_world_cache()
        encode = encode_times(spatial, arms[0].batch["world_pixel_values"], max(1, min(args.repeats, 3)))

    print(
        f"batch {args.batch_size}, tiny TheWorld (64 px world pictures, 8x8 latents), pooled k={args.pool_size}, "
        f"{args.repeats} rounds (+{args.warmup} warm-up), {args.threads} thread(s); forward / train step with world "
        "latents cached"
    )
    header = f"{'mode / steps':<16}{'world tok':>10}{'seq len':>9}{'forward ms':>12}{'train ms':>10}{'encode ms':>11}"
    print(header)
    counts_ok = True
    for arm in arms:
        forward = statistics.median(arm.forward_times)
        train = statistics.median(arm.train_times)
        counts_ok &= arm.world_tokens() == arm.placeholders()
        print(
            f"{arm.label:<16}{arm.world_tokens():>10}{arm.batch['input_ids'].shape[1]:>9}{1000 * forward:>12.1f}"
            f"{1000 * train:>10.1f}{1000 * encode[arm.steps]:>11.1f}"
        )
    by_label = {(arm.mode, arm.steps): arm for arm in arms}

    def paired(other: str, steps: int, kind: str) -> float:
        """Median over rounds of spatial / other within the round."""
        base, compared = by_label[("spatial", steps)], by_label[(other, steps)]
        if kind == "forward":
            pairs = zip(base.forward_times, compared.forward_times, strict=True)
        else:
            pairs = zip(base.train_times, compared.train_times, strict=True)
        return statistics.median(a / b for a, b in pairs)

    print()
    print(f"{'ratio (time, paired rounds)':<28}{'forward':>10}{'train step':>12}")
    for steps in STEPS:
        for other in ("pooled", "channel"):
            forward, train = paired(other, steps, "forward"), paired(other, steps, "train")
            print(f"{f'spatial / {other}, steps {steps}':<28}{forward:>9.2f}x{train:>11.2f}x")
    ratio = paired("pooled", 4, "train")
    print(f"\nworld tokens = processor placeholders in every arm: {'PASS' if counts_ok else 'FAIL'}")
    passed = counts_ok and ratio >= GOAL
    print(
        f"train-step speed-up pooled vs spatial at num_world_steps=4: {ratio:.2f}x (goal >= {GOAL}x): "
        f"{'PASS' if ratio >= GOAL else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
