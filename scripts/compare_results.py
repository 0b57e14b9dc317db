"""Compare evaluation runs: a markdown table per benchmark (accuracy ± 95% CI per group, paired Δ vs a baseline).

    python scripts/compare_results.py outputs/eval                      # every run below outputs/eval
    python scripts/compare_results.py outputs/eval/vsr/gemma3-baseline outputs/eval/vsr/ckpt+steps0 \\
        --baseline gemma3-baseline --output comparison.md --plot comparison.png

Arguments are run directories (`<output_dir>/<benchmark>/<label>/`), directories above them, or `predictions.jsonl`
/ `summary.json` files. The statistics (Wilson interval; Newcombe's paired hybrid-score interval for Δ on the items
both runs scored) are described in `theworld.evaluation.compare`. The markdown goes to stdout and to `--output`;
`--plot` draws grouped bars with CI error bars. Bad input prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from theworld.evaluation.cli import run_main
from theworld.evaluation.compare import collect_runs, compare_runs, plot_comparisons, to_markdown
from theworld.evaluation.model_specs import BASELINE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compare_results.py", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories, directories of runs, predictions.jsonl/summary.json")
    parser.add_argument("--baseline", default=None, help=f"label of the reference run (default {BASELINE}, else first)")
    parser.add_argument("--benchmark", default=None, help="compare only the runs of this benchmark")
    parser.add_argument("--judge", default=None, help="read each run's judged-<JUDGE>.jsonl (SpatialRGPT-Bench)")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown to this file")
    parser.add_argument("--plot", type=Path, default=None, help="bar chart PNG (accuracy per group and model)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ValueError(f"--plot {args.plot}: expected a .png file name")
    comparisons = compare_runs(collect_runs(args.runs, args.benchmark, args.judge), args.baseline)
    markdown = to_markdown(comparisons)
    print(markdown)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown, encoding="utf-8")
        print(f"markdown: {args.output}", file=sys.stderr)
    if args.plot is not None:
        print(f"plot: {plot_comparisons(comparisons, args.plot)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
