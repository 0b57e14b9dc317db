"""Evaluate a model on SpatialRGPT-Bench and judge its answers (same as `theworld eval spatial`).

Options, outputs and exit codes: `theworld.evaluation.commands.spatial` (`--help` prints them).
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.spatial import main

if __name__ == "__main__":
    sys.exit(run_main(main))
