"""Evaluate TheWorld (or the Gemma 3 baseline, or a world-token ablation) on Visual Spatial Reasoning (true/false).

    python scripts/evaluate_vsr.py --model CHECKPOINT --data path/to/vsr_random --images path/to/coco
    python scripts/evaluate_vsr.py --model gemma3-baseline --images path/to/coco      # records from the Hub id

`--data` is a VSR jsonl file or a folder of train/dev/test jsonl (else `--dataset`, a Hub id); `--images` the COCO
2017 folder (merged, or with train2017/ and val2017/). Each spec writes `<output-dir>/vsr/<label>/predictions.jsonl`
(resumable) and `summary.json`: accuracy overall and per relation beside the majority-class baseline of the evaluated
labels. Exit code: 0 all specs done, 1 a spec failed (the others' results are kept), 2 bad arguments or data.
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.vsr import main

if __name__ == "__main__":
    sys.exit(run_main(main))
