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

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.spatial import main

if __name__ == "__main__":
    sys.exit(run_main(main))
