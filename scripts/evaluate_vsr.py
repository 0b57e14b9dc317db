"""Evaluate a model on Visual Spatial Reasoning (same as `theworld eval vsr`).

Options, outputs and exit codes: `theworld.evaluation.commands.vsr` (`--help` prints them).
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.vsr import main

if __name__ == "__main__":
    sys.exit(run_main(main))
