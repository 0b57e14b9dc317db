"""Train TheWorld with the Hugging Face Trainer.

    python scripts/train_hf.py --config configs/tiny.json [--resume_from_checkpoint PATH|HUB_ID|latest]
                               [--hf_token T] [--KEY VALUE ...]
    accelerate launch [--multi_gpu --num_processes N] scripts/train_hf.py --config configs/default.json

Config errors print one line and exit with code 2.
"""

from __future__ import annotations

import sys

from theworld.training.run import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
