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

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.blink import main

if __name__ == "__main__":
    sys.exit(run_main(main))
