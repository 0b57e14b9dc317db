"""Re-judge saved SpatialRGPT-Bench predictions without the model (same as `theworld eval judge`).

Options, outputs and exit codes: `theworld.evaluation.commands.judge` (`--help` prints them).
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.judge import main

if __name__ == "__main__":
    sys.exit(run_main(main))
