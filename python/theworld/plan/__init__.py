"""`theworld plan`: parameters and per-GPU training memory of a training config, built on the meta device.

    python -m theworld.plan --config configs/default.json --gpus 4 --strategy fsdp --batch-size 1

`main(argv)` is the command line (one-line errors, exit code 2); `plan_memory(TrainingConfig, PlanOptions)` returns a
`MemoryPlan` (`format_plan` renders the tables, `.to_dict()` the JSON). The real architectures ship with the package as
config files (no weights) under `configs/` in their Hub layout: google/gemma-3-4b-it and
nvidia/Cosmos-Predict2-2B-Video2World (vae/, transformer/, text_encoder/). See docs/training/memory.md.
"""

from theworld.plan.meta import (
    COMPONENTS,
    FREEZE_SETS,
    SHIPPED_CONFIGS,
    FreezeSet,
    MetaWorld,
    ParameterCounts,
    PlanError,
    build_meta_world,
    count_parameters,
)
from theworld.plan.planner import (
    MEMORY_ROWS,
    MemoryPlan,
    PlanOptions,
    SequenceLength,
    plan_memory,
)
from theworld.plan.report import format_plan, main

__all__ = [
    "COMPONENTS",
    "FREEZE_SETS",
    "MEMORY_ROWS",
    "SHIPPED_CONFIGS",
    "FreezeSet",
    "MemoryPlan",
    "MetaWorld",
    "ParameterCounts",
    "PlanError",
    "PlanOptions",
    "SequenceLength",
    "build_meta_world",
    "count_parameters",
    "format_plan",
    "main",
    "plan_memory",
]
