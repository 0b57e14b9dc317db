"""SpatialRGPT-Bench: answer every question with TheWorld (or the Gemma 3 baseline), judge, and summarize.

    python scripts/spatial/eval_spatial_rgpt.py --model CHECKPOINT|gemma3-baseline \\
        [--data FOLDER|val_SpatialRGPT-Bench.jsonl [--images FOLDER]] [--judge deterministic|hf:MODEL|openai:MODEL] \\
        [--num_world_steps 0,4] [--world-ablation zero] [--random-projection SEED] [--no-draw-bboxes] [--limit N]

Per model spec, in <output_dir>/spatial_rgpt_bench/<label>/: predictions.jsonl (resumable; each record also holds the
deterministic judgement) and summary.json (by --judge; an LLM judge's verdicts go to judged-<judge>.jsonl beside it,
judged after the evaluated model is unloaded). `scripts/spatial/judge_predictions.py` re-judges a saved file later.
A spec that fails (e.g. --num_world_steps > 0 while the rollout is unavailable) is reported and the other specs still
run; the exit code is then 1. Bad options or inputs print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from pathlib import Path

from theworld.evaluation.cli import add_common_arguments, parse_args, specs_from_args
from theworld.evaluation.judges import (
    DeterministicJudge,
    add_judge_arguments,
    judge_from_args,
    make_scorer,
    parse_judge_spec,
    rejudge_file,
)
from theworld.evaluation.results import write_json_atomic
from theworld.evaluation.runner import PREDICTIONS_FILE, SUMMARY_FILE
from theworld.evaluation.runs import evaluate_specs, exit_code, format_outcomes, settings_from_args
from theworld.evaluation.spatial_bench import BENCHMARK, PROTOCOL, format_table, summarize, summary_of
from theworld.evaluation.spatial_bench_data import DEFAULT_DATASET, DEFAULT_SPLIT, data_identity, load_items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "SpatialRGPT-Bench", DEFAULT_DATASET)
    parser.add_argument("--images", type=Path, default=None, help="picture folder (default: <data folder>/images)")
    parser.add_argument(
        "--draw-bboxes", action=argparse.BooleanOptionalAction, default=True, help="draw the numbered regions"
    )
    add_judge_arguments(parser)
    parser.set_defaults(split=DEFAULT_SPLIT, max_new_tokens=64)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    specs = specs_from_args(args)
    judge_kind, _ = parse_judge_spec(args.judge)  # a bad --judge fails before any generation
    early_judge = judge_from_args(args) if judge_kind == "openai" else None  # so does a missing API key
    items, source = load_items(args.data, args.dataset, args.split, args.images, args.draw_bboxes, args.limit)
    print(f"{BENCHMARK}: {len(items)} item(s) from {source}")
    settings = settings_from_args(args, BENCHMARK, args.split, data_identity(source, args.draw_bboxes), PROTOCOL)
    score = make_scorer(DeterministicJudge())  # every predictions record holds the deterministic verdict
    extra = {"judge": DeterministicJudge.label}
    outcomes = evaluate_specs(specs, items, score, summarize, settings, extra=extra)
    if judge_kind != "deterministic" and any(outcome.ok for outcome in outcomes):
        gc.collect()  # the evaluated model is gone: an hf judge loads only now
        judge = early_judge or judge_from_args(args)
        for outcome in outcomes:
            if outcome.ok:
                predictions = outcome.directory / PREDICTIONS_FILE
                records = rejudge_file(predictions, judge, resume=args.resume, only_ids=[i.id for i in items])[1]
                outcome.summary = summary_of(records, outcome.spec, settings, judge.label)
                write_json_atomic(outcome.directory / SUMMARY_FILE, outcome.summary)
    print(format_outcomes(outcomes, format_table))
    return exit_code(outcomes)
