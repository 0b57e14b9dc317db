"""Evaluate a model on BLINK (same as `theworld eval blink`).

Options, outputs and exit codes: `theworld.evaluation.commands.blink` (`--help` prints them).
"""

from __future__ import annotations

import sys

from theworld.evaluation.cli import run_main
from theworld.evaluation.commands.blink import main

if __name__ == "__main__":
    sys.exit(run_main(main))
