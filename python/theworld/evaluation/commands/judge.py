"""Re-judge a saved SpatialRGPT-Bench predictions.jsonl with another judge — no evaluated model is loaded.

    python scripts/spatial/judge_predictions.py outputs/eval/spatial_rgpt_bench/LABEL/predictions.jsonl \\
        --judge openai:gpt-4o [--judge-base-url URL] [--output judged.jsonl] [--summary summary.json] [--no-resume]

Writes the judged records (default: judged-<judge>.jsonl beside the predictions; resumable — a rerun judges only
the items not yet judged, whose prediction changed, or whose judge call failed transiently) and their summary
(default: summary-<judge>.json beside them), then prints the table. $OPENAI_API_KEY carries the key of an OpenAI
judge. Bad options or inputs print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from theworld.evaluation.judges import add_judge_arguments, judge_from_args, judge_slug, parse_judge_spec, rejudge_file
from theworld.evaluation.results import read_results, write_json_atomic
from theworld.evaluation.spatial_bench import BENCHMARK, format_table, summary_from_header


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="judge_predictions.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("predictions", type=Path, help="a predictions.jsonl written by eval_spatial_rgpt.py")
    parser.add_argument("--output", type=Path, default=None, help="judged records (default judged-<judge>.jsonl)")
    parser.add_argument("--summary", type=Path, default=None, help="summary JSON (default summary-<judge>.json)")
    parser.add_argument("--no-resume", dest="resume", action="store_false", help="judge every item again")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_judge_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    parse_judge_spec(args.judge)
    header, _ = read_results(args.predictions)  # a wrong file fails before a judge model is loaded
    if header.get("benchmark") != BENCHMARK:
        raise ValueError(
            f"{args.predictions}: not {BENCHMARK} predictions (its header says {header.get('benchmark')!r})"
        )
    judge = judge_from_args(args)
    header, records, judged = rejudge_file(args.predictions, judge, args.output, resume=args.resume)
    summary = summary_from_header(header, records, judge.label)
    target = args.summary or judged.with_name(f"summary-{judge_slug(judge.label)}.json")
    write_json_atomic(target, summary)
    print(format_table(summary))
    print(f"written: {judged}, {target}")
    return 0
