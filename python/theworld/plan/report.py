"""The memory planner's output and command line: the plan as text tables or JSON, and `main`.

    python -m theworld.plan --config configs/default.json [--gpus N] [--strategy ddp|fsdp] [--batch-size B]
                            [--seq-text-len T] [--dtype bf16|fp16|fp32] [--weights-dtype fp32|bf16]
                            [--gradient-checkpointing | --no-gradient-checkpointing] [--json]

`format_plan(MemoryPlan)` renders two tables (parameters per component, memory per GPU per freeze set); `--json`
prints `MemoryPlan.to_dict()` instead. The memory model itself (what each row counts) is `theworld.plan.planner`.
A bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from theworld.plan.meta import COMPONENTS, PlanError
from theworld.plan.planner import GIB, MEMORY_ROWS, MemoryPlan, PlanOptions, RunSettings, plan_memory
from theworld.training.config import TrainingConfig

__all__ = ["build_parser", "format_count", "format_plan", "main", "memory_unit"]


# ---- text output ----
def format_count(count: int) -> str:
    """3.880 B, 6.6 M, 27.5 K, or the exact count below 10,000."""
    if count >= 10**9:
        return f"{count / 1e9:.3f} B"
    if count >= 10**6:
        return f"{count / 1e6:.1f} M"
    if count >= 10**4:
        return f"{count / 1e3:.1f} K"
    return str(count)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _describe_run(settings: RunSettings) -> str:
    strategy = "DDP" if settings.strategy == "ddp" else "FSDP (full shard)"
    gpus = f"{settings.gpus} GPU" + ("s" if settings.gpus > 1 else "")
    if settings.regime == "fp32":
        precision = "float32"
    elif settings.regime == "amp":
        precision = f"{settings.dtype} autocast over float32 weights"
    else:
        precision = f"{settings.dtype} weights + float32 master weights"
    checkpointing = "on" if settings.gradient_checkpointing else "off"
    return (
        f"batch {settings.batch_size} per GPU, {strategy} on {gpus}, {precision}, "
        f"gradient checkpointing {checkpointing}"
    )


def memory_unit(plan: MemoryPlan) -> tuple[str, int]:
    """GiB, or MiB when every total is under 1 GiB (the tiny checkpoints)."""
    largest = max(plan.total(freeze.key) for freeze in plan.freeze_sets)
    return ("GiB", GIB) if largest >= GIB else ("MiB", 2**20)


def format_plan(plan: MemoryPlan) -> str:
    """The plan as two readable tables: parameters per component, memory per GPU per freeze set."""
    seq = plan.sequence
    world = plan.world
    lines = [f"TheWorld memory plan{f': {plan.config_path}' if plan.config_path else ''}"]
    for name, text in plan.sources.items():
        lines.append(f"  {name:<9} {text}")
    mode = (
        f"{world['world_projection_mode']} mode, {world['world_image_size']} px, {world['num_world_steps']} steps"
        if world["enable_world"]
        else "world tokens off"
    )
    lines.append(
        f"  sequence  {seq.text:,} text + {seq.image:,} image + {seq.world:,} world + {seq.markers} markers "
        f"= {seq.total:,} tokens ({mode})"
    )
    lines.append(f"  run       {_describe_run(plan.settings)}")
    lines.append("")

    labels = [freeze.label + ("*" if freeze.key == plan.config_freeze_set else "") for freeze in plan.freeze_sets]
    present = [name for name in COMPONENTS if plan.parameters.total.get(name, 0) > 0]
    rows = [
        [name, format_count(plan.parameters.total[name])]
        + [format_count(plan.parameters.trainable[freeze.key][name]) for freeze in plan.freeze_sets]
        for name in present
    ]
    rows.append(
        ["all", format_count(plan.parameters.total_all())]
        + [format_count(plan.parameters.trainable_all(freeze.key)) for freeze in plan.freeze_sets]
    )
    lines.append("Parameters: total, and trainable under each freeze set")
    lines += _table(["component", "total", *labels], rows)
    lines.append("")

    unit, scale = memory_unit(plan)
    table = []
    for key, label in MEMORY_ROWS.items():
        if key == "working_copies" and plan.settings.strategy == "fsdp":
            label = "gathered FSDP units"
        values = [plan.memory[freeze.key][key] for freeze in plan.freeze_sets]
        if any(values):
            table.append([label] + [f"{value / scale:.2f}" for value in values])
    table.append(["total"] + [f"{plan.total(freeze.key) / scale:.2f}" for freeze in plan.freeze_sets])
    lines.append(f"Memory per GPU ({unit}) under each freeze set")
    lines += _table(["", *labels], table)
    lines.append(
        "* = the config's freeze set. Not included: CUDA context and workspaces (~0.5-1 GiB), allocator "
        "fragmentation (see docs/training/memory.md)."
    )
    if plan.parameters.total.get("t5_encoder", 0):
        lines.append(
            "t5_encoder: run once to embed the rollout's fixed prompt, then freed (theworld.modeling.rollout): "
            "not resident while training, so not in the memory table."
        )
    return "\n".join(lines)


# ---- command line ----
class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line `PlanError`s (no usage dump), so every mistake reads the same way."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise PlanError(f"theworld plan: {message}")


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="theworld plan",
        description="Parameters and per-GPU training memory of a training config (the model is built on the meta "
        "device: seconds, no memory, no download for the shipped gemma-3-4b-it / Cosmos-Predict2-2B configs).",
    )
    parser.add_argument("--config", required=True, help="training config JSON (configs/*.json)")
    parser.add_argument("--gpus", type=_int_at_least(1), default=1, help="GPUs (default 1)")
    parser.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp", help="ddp (default) or fsdp (full shard)")
    parser.add_argument("--batch-size", type=_int_at_least(1), help="per-GPU batch (default: the config's batch_size)")
    parser.add_argument(
        "--seq-text-len", type=_int_at_least(0), help="text tokens per example (default: max_length - image - world)"
    )
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="compute dtype (default: mixed_precision)")
    parser.add_argument(
        "--weights-dtype", choices=("fp32", "bf16"), default="fp32", help="stored weights (default fp32, as trained)"
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the config's use_gradient_checkpointing",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`theworld plan` / `python -m theworld.plan`: print the plan; a bad input is one line on stderr, exit code 2."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        config = TrainingConfig.from_json(args.config)
        options = PlanOptions(
            gpus=args.gpus,
            strategy=args.strategy,
            batch_size=args.batch_size,
            seq_text_len=args.seq_text_len,
            dtype=args.dtype,
            weights_dtype=args.weights_dtype,
            gradient_checkpointing=args.gradient_checkpointing,
        )
        plan = plan_memory(config, options, config_path=args.config)
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(json.dumps(plan.to_dict(), indent=2) if args.json else format_plan(plan))
    return 0
