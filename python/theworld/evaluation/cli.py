"""Command-line options shared by the evaluation scripts, JSON config defaults, and one-line error exits.

Every evaluation script takes the same model options (`--model` checkpoint or `gemma3-baseline`, `--base-model`,
`--cosmos-model`, `--world-ablation zero`, `--random-projection SEED`, `--num_world_steps 0,4` — one run per value)
and run options (`--data` local copy or `--dataset` Hub id, `--split`, `--limit`, `--batch-size`,
`--max-new-tokens`, `--output-dir`, `--device`, `--dtype`, `--no-resume`). `--config FILE` (e.g.
configs/eval_blink.json) supplies defaults by option name (dashes or underscores); the command line wins.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from theworld.evaluation.model_specs import BASELINE, EvalModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_common_arguments(parser: argparse.ArgumentParser, benchmark: str, default_dataset: str) -> None:
    add = parser.add_argument
    add("--config", type=Path, help="JSON file of option defaults (keys are option names)")
    add("--model", default=None, help=f"TheWorld checkpoint (dir or Hub id) or {BASELINE!r}")
    add("--base-model", default="google/gemma-3-4b-it", help=f"Gemma 3 checkpoint {BASELINE} loads")
    add("--cosmos-model", default=None, help="override the checkpoint's Cosmos-Predict2 source")
    add("--world-ablation", choices=("none", "zero"), default="none", help="zero: world tokens carry zeros")
    add("--random-projection", type=int, default=None, metavar="SEED", help="re-draw the world projection")
    add("--num_world_steps", "--num-world-steps", dest="num_world_steps", default="0", help="e.g. 0 or 0,4")
    add("--data", type=Path, default=None, help=f"local copy of {benchmark} (same rows as the Hub dataset)")
    add("--dataset", default=default_dataset, help="Hub dataset id (used when --data is not given)")
    add("--split", default=None)
    add("--limit", type=int, default=None, help="first N items only")
    add("--batch-size", type=int, default=16)
    add("--max-new-tokens", type=int, default=32)
    add("--output-dir", type=Path, default=Path("outputs/eval"))
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add("--dtype", choices=tuple(DTYPES), default="bfloat16" if torch.cuda.is_available() else "float32")
    add("--no-resume", dest="resume", action="store_false", help="start the results file afresh")
    add("-v", "--verbose", action="store_true")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse with `--config` defaults applied first; unknown config keys and a missing --model are one-line errors."""
    pre, _ = parser.parse_known_args(argv)
    if pre.config is not None:
        parser.set_defaults(**read_config_defaults(parser, pre.config))
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required (a TheWorld checkpoint, or gemma3-baseline), on the command line or --config")
    for name in ("batch_size", "max_new_tokens"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit: expected a positive integer, got {args.limit}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return args


def read_config_defaults(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise SystemExit(f"error: --config {path}: cannot read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: --config {path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: --config {path}: expected a JSON object of option defaults")
    known = {action.dest for action in parser._actions}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith(("_", "//")):
            continue
        dest = key.replace("-", "_")
        if dest not in known or dest == "config":
            raise SystemExit(f"error: --config {path}: unknown option {key!r}")
        if dest in ("num_world_steps",) and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        defaults[dest] = value
    return defaults


def parse_steps(text: str | int) -> list[int]:
    """ "0,4" → [0, 4]; a bad value → one-line ValueError."""
    try:
        steps = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--num_world_steps: expected comma-separated integers like 0,4, got {text!r}") from None
    if not steps or any(step < 0 for step in steps):
        raise ValueError(f"--num_world_steps: expected comma-separated integers >= 0, got {text!r}")
    return list(dict.fromkeys(steps))


def specs_from_args(args: argparse.Namespace) -> list[EvalModelSpec]:
    """One `EvalModelSpec` per `--num_world_steps` value (the baseline runs once)."""
    steps = [0] if args.model == BASELINE else parse_steps(args.num_world_steps)
    return [
        EvalModelSpec(
            model=str(args.model),
            base_model=str(args.base_model),
            cosmos_model=args.cosmos_model,
            world_ablation=args.world_ablation,
            random_projection=args.random_projection,
            num_world_steps=step,
        )
        for step in steps
    ]


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call `main`; a ValueError / FileNotFoundError / ConnectionError becomes "error: <one line>", exit code 2."""
    try:
        return main(argv)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
