"""Evaluate TheWorld (or the Gemma 3 baseline, or a world-token ablation) on Visual Spatial Reasoning (true/false).

    python scripts/evaluate_vsr.py --model CHECKPOINT --data path/to/vsr_random --images path/to/coco
    python scripts/evaluate_vsr.py --model gemma3-baseline --images path/to/coco      # records from the Hub id

`--data` is a VSR jsonl file or a folder of train/dev/test jsonl (else `--dataset`, a Hub id); `--images` the COCO
2017 folder (merged, or with train2017/ and val2017/). Each spec writes `<output-dir>/vsr/<label>/predictions.jsonl`
(resumable) and `summary.json`: accuracy overall and per relation beside the majority-class baseline of the evaluated
labels. Exit code: 0 all specs done, 1 a spec failed (the others' results are kept), 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from theworld.evaluation import vsr_eval
from theworld.evaluation.cli import add_common_arguments, parse_args, specs_from_args
from theworld.evaluation.runs import evaluate_specs, exit_code, format_outcomes, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "VSR", vsr_eval.DEFAULT_DATASET)
    parser.add_argument("--images", type=Path, default=None, help="COCO 2017 picture folder (required)")
    parser.add_argument("--question-template", default=None, help="with {question}; default: the training one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.images is None:
        parser.error("--images is required (the COCO 2017 picture folder), on the command line or --config")
    split = args.split or vsr_eval.DEFAULT_SPLIT
    source = args.data if args.data is not None else args.dataset
    specs = specs_from_args(args)
    items, skipped = vsr_eval.load_vsr_items(source, split, args.images, args.question_template, limit=args.limit)
    if not items:
        raise ValueError(f"VSR {split} of {source}: no record could be evaluated (skipped: {skipped})")
    identity = vsr_eval.data_identity(source, args.question_template)
    settings = settings_from_args(args, vsr_eval.BENCHMARK, split, identity, vsr_eval.PROTOCOL)
    outcomes = evaluate_specs(
        specs, items, vsr_eval.score_vsr, vsr_eval.summarize_vsr, settings, extra={"skipped": skipped}
    )
    print(format_outcomes(outcomes, vsr_eval.format_vsr_summary))
    return exit_code(outcomes)
