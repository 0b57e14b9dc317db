"""The `theworld` command: one entry point over the same code as the scripts.

    theworld generate --model M [--image I] --prompt P     answer a question about a picture
    theworld train --config configs/x.json [--KEY VALUE]    = scripts/train_hf.py (accelerate launch works too)
    theworld eval blink|vsr|spatial|judge [options]         = scripts/evaluate_blink.py, evaluate_vsr.py, spatial/
    theworld plan --config configs/x.json                   memory planner (parameters, GPU memory)
    theworld imagine IMAGE --steps 8 --out rollout.gif      decode the world model's predicted frames
    theworld tiny OUT_DIR                                   build the tiny offline checkpoints

Each subcommand imports only what it needs. Errors print one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

# subcommand → (module, function taking argv, help). The functions are the scripts' own entry points.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("theworld.training.run", "train_main", "train with the HF Trainer (a JSON config + --KEY VALUE)"),
    "plan": ("theworld.plan", "main", "parameters and per-GPU memory of a training config"),
    "imagine": ("theworld.modeling.imagine", "main", "decode a Cosmos rollout of a picture into frames (GIF)"),
    "tiny": ("theworld.testing.__main__", "main", "build the tiny offline checkpoints"),
}
EVALS: dict[str, tuple[str, str]] = {
    "blink": ("theworld.evaluation.commands.blink", "main"),
    "vsr": ("theworld.evaluation.commands.vsr", "main"),
    "spatial": ("theworld.evaluation.commands.spatial", "main"),
    "judge": ("theworld.evaluation.commands.judge", "main"),
}


def _entry(module: str, function: str) -> Callable[[list[str]], Any]:
    return getattr(importlib.import_module(module), function)


def generate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="theworld generate", description="Answer a question about a picture.")
    parser.add_argument("--model", required=True, help="TheWorld checkpoint or Gemma 3 (dir or Hub id)")
    parser.add_argument("--image", help="picture file (omit for a text-only question)")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--num-world-steps", type=int, default=None, help="override the checkpoint's rollout steps")
    parser.add_argument("--cosmos-model", default=None, help="override the checkpoint's Cosmos-Predict2 source")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(list(argv))
    from pathlib import Path

    import torch

    from theworld.modeling import TheWorld

    if args.image is not None and not Path(args.image).is_file():
        raise ValueError(f"--image {args.image}: no such file")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device is available here (use --device cpu)")
    overrides = {"cosmos_model_name": args.cosmos_model} if args.cosmos_model else {}
    model = TheWorld.from_pretrained(args.model, **overrides).to(args.device).eval()
    extra = {"num_world_steps": args.num_world_steps} if args.num_world_steps is not None else {}
    print(model.generate(args.image, args.prompt, max_new_tokens=args.max_new_tokens, **extra))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="theworld", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("generate", help="answer a question about a picture", add_help=False)
    for name, (_, _, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    evaluate = sub.add_parser("eval", help="evaluate: blink, vsr, spatial (or judge saved predictions)", add_help=False)
    evaluate.add_argument("benchmark", nargs="?", choices=tuple(EVALS))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "generate":
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
            return generate_main(rest)
        if command == "eval":
            if not rest or rest[0] not in EVALS:
                parser.error(f"eval: expected one of {', '.join(EVALS)} (then that benchmark's options)")
            result = _entry(*EVALS[rest[0]])(rest[1:])
        elif command in COMMANDS:
            module, function, _ = COMMANDS[command]
            result = _entry(module, function)(rest)
        else:
            parser.error(f"unknown command {command!r}; expected one of generate, eval, {', '.join(COMMANDS)}")
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
