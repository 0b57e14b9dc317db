"""Evaluate TheWorld (or the Gemma 3 baseline, or a world-token ablation) on BLINK.

    python scripts/evaluate_blink.py --config configs/eval_blink.json --model CHECKPOINT [--num_world_steps 0,4]
    python scripts/evaluate_blink.py --model gemma3-baseline --tasks Relative_Depth,Spatial_Relation
    python scripts/evaluate_blink.py --model CHECKPOINT --data path/to/BLINK-copy --split test

Each spec writes `<output-dir>/blink/<label>/predictions.jsonl` (resumable: rerun the same command after a kill) and
`summary.json` (per-task accuracy, the "always (A)" baseline, unparseable answers, and the unweighted mean over tasks
with answers; the `test` split's answers are hidden, so its predictions are saved without accuracy). `--limit N`
takes the first N rows of EACH task. Exit code: 0 all specs done, 1 a spec failed (the others' results are kept),
2 bad arguments or data.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from theworld.evaluation import blink
from theworld.evaluation.cli import add_common_arguments, parse_args, specs_from_args
from theworld.evaluation.runs import evaluate_specs, exit_code, format_outcomes, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "BLINK", blink.DEFAULT_DATASET)
    parser.add_argument("--tasks", default="all", help="all, or a comma list of subtasks, e.g. Relative_Depth,Jigsaw")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    tasks = blink.parse_tasks(args.tasks)
    specs = specs_from_args(args)
    source = blink.BlinkSource(args.split or blink.DEFAULT_SPLIT, data=args.data, dataset_id=args.dataset)
    items = blink.load_blink_items(source, tasks, limit=args.limit)
    settings = settings_from_args(args, blink.BENCHMARK, source.split, source.identity(), blink.PROTOCOL)
    outcomes = evaluate_specs(specs, items, blink.score_blink, blink.summarize_blink, settings)
    print(format_outcomes(outcomes, blink.format_blink_summary))
    return exit_code(outcomes)
