"""Re-judge a saved SpatialRGPT-Bench predictions.jsonl with another judge — no evaluated model is loaded.

    python scripts/spatial/judge_predictions.py outputs/eval/spatial_rgpt_bench/LABEL/predictions.jsonl \\
        --judge openai:gpt-4o [--judge-base-url URL] [--output judged.jsonl] [--summary summary.json] [--no-resume]

Writes the judged records (default: judged-<judge>.jsonl beside the predictions; resumable — a rerun judges only
the items not yet judged, whose prediction changed, or whose judge call failed transiently) and their summary
(default: summary-<judge>.json beside them), then prints the table. $OPENAI_API_KEY carries the key of an OpenAI
judge. Bad options or inputs print one line and exit with code 2.
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.judge import main

if __name__ == "__main__":
    sys.exit(run_main(main))
