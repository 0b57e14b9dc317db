"""Benchmark: batched greedy generation (`generate_answers`) at batch 16 against batch 1, on the tiny TheWorld model.

    python benchmarks/batched_generation.py [--items 32] [--batch-size 16] [--max-new-tokens 16] [--repeats 3]
                                            [--picture-size 128] [--threads 1] [--tiny-dir DIR] [--profile]

Builds the tiny offline checkpoints (`theworld.testing`) in a temporary folder (or reuses `--tiny-dir`), converts a
TheWorld model from them (world pictures 64x64 → 64 world tokens + 16 SigLIP tokens per picture), and answers N
questions, each about its own generated picture. Both arms run the same prompts with the same `max_new_tokens`
(greedy, so the same work per item): one warm-up call each, then `--repeats` timed rounds, the arms alternating so
machine load hits both alike; the best round of each counts. The answers of the two arms must be identical (left
padding is masked), else FAIL. Prints items/s of both arms and their ratio; the goal is batch/batch-1 ≥ 3×
(exit 1 on FAIL). `--profile` adds where the time goes in each arm (processor, Cosmos VAE encode, SigLIP, prefill,
decode), from cProfile's cumulative times.

`--threads 1` (default): on the shared 2-core machine two intra-op threads spin-wait on each other and made
generation 10-25× slower and noisy; the comparison is about batching, not threading.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

GOAL = 3.0
# (label, file suffix, function name) of the cProfile entries reported by --profile.
PROFILED = (
    ("processor", "processing_theworld.py", "__call__"),
    ("VAE encode", "cosmos_encoder.py", "forward"),
    ("SigLIP", "modeling_gemma3.py", "get_image_features"),
    ("prefill", "generation/utils.py", "_prefill"),
    ("generate", "generation/utils.py", "generate"),
)


def load_model(tiny_dir: Path) -> Any:
    from theworld import TheWorld
    from theworld.testing import build_tiny_checkpoints

    tiny = build_tiny_checkpoints(tiny_dir)
    torch.manual_seed(0)  # the converted checkpoint's world projector is randomly initialized
    model = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64)
    return model.eval()


def workload(items: int, picture_size: int) -> tuple[list[Any], list[str]]:
    from theworld.testing import make_picture

    colors = ("red", "blue", "green", "yellow")
    pictures = [make_picture(1000 + i, size=picture_size) for i in range(items)]
    prompts = [
        f"Is the {colors[i % 4]} shape left of the {colors[(i + 1) % 4]} shape? Answer true or false. ({i})"
        for i in range(items)
    ]
    return pictures, prompts


def timed(run: Callable[[], list[str]]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    answers = run()
    return time.perf_counter() - start, answers


def profile(run: Callable[[], list[str]]) -> dict[str, float]:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    # {(file, line, name): (cc, nc, tottime, cumtime, callers)}; `stats` is an undocumented but stable attribute
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # pyright: ignore[reportAttributeAccessIssue]
    found: dict[str, float] = {}
    for label, suffix, name in PROFILED:
        times = [entry[3] for (file, _, func), entry in stats.items() if file.endswith(suffix) and func == name]
        found[label] = max(times, default=0.0)
    found["decode (generate - prefill)"] = found["generate"] - found["prefill"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--picture-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny-dir", type=Path, default=None, help="reuse tiny checkpoints here (built if missing)")
    parser.add_argument("--profile", action="store_true", help="where the time goes in each arm")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from theworld.evaluation.generation import generate_answers

    with tempfile.TemporaryDirectory(prefix="theworld-bench-") as temp:
        model = load_model(args.tiny_dir or Path(temp) / "tiny")
        pictures, prompts = workload(args.items, args.picture_size)
        arms = {"batch 1": 1, f"batch {args.batch_size}": args.batch_size}

        def run(batch_size: int) -> list[str]:
            return generate_answers(model, pictures, prompts, batch_size=batch_size, max_new_tokens=args.max_new_tokens)

        for batch_size in arms.values():  # warm-up: first-call allocations, lazy imports
            generate_answers(model, pictures[:2], prompts[:2], batch_size=batch_size, max_new_tokens=2)
        best = dict.fromkeys(arms, float("inf"))
        answers: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for label, batch_size in arms.items():
                seconds, answers[label] = timed(lambda batch_size=batch_size: run(batch_size))
                best[label] = min(best[label], seconds)
        breakdown = {label: profile(lambda b=batch_size: run(b)) for label, batch_size in arms.items()}

    single, batched = (answers[label] for label in arms)
    mismatches = sum(a != b for a, b in zip(single, batched, strict=True))
    rates = {label: args.items / seconds for label, seconds in best.items()}
    ratio = rates[f"batch {args.batch_size}"] / rates["batch 1"]
    print(f"{args.items} items, {args.max_new_tokens} new tokens each, 1 picture each, {args.threads} thread(s)")
    print(f"{'arm':<12}{'best s':>10}{'items/s':>10}")
    for label in arms:
        print(f"{label:<12}{best[label]:>10.3f}{rates[label]:>10.1f}")
    if args.profile:
        print(f"\n{'seconds in (one round)':<30}" + "".join(f"{label:>12}" for label in arms))
        for part in breakdown["batch 1"]:
            print(f"{part:<30}" + "".join(f"{breakdown[label][part]:>12.3f}" for label in arms))
    print(f"\nanswers identical: {mismatches == 0} ({mismatches} of {args.items} differ)")
    passed = mismatches == 0 and ratio >= GOAL
    verdict = "PASS" if passed else "FAIL"
    print(f"speed-up batch {args.batch_size} / batch 1: {ratio:.2f}x (goal >= {GOAL:.0f}x): {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
