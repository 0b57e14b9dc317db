"""Command line of `scripts/train_hf.py`: `--config F`, run options, and `--KEY VALUE` for any `TrainingConfig` key.

    train_hf.py --config configs/tiny.json [--resume_from_checkpoint PATH|HUB_ID|latest] [--hf_token T]
                [--learning_rate 3e-4 --push_to_hub true ...]

`parse_cli(argv)` returns the validated config and the run options; `main_error_exit` turns a `ConfigError` into
`error: <message>` on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

from theworld.training.config import TrainingConfig, check_key, field_names, is_flag
from theworld.training.config_values import ConfigError, expand_path, resolve_hf_token

P = ParamSpec("P")
R = TypeVar("R")

CONFIG_ERROR_EXIT_CODE = 2  # what argparse uses for usage errors
RESUME_LATEST = "latest"  # resume from the newest checkpoint in output_dir


class _ConfigErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are `ConfigError`s (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"command line: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _ConfigErrorParser(
        prog="train_hf.py",
        description="Train TheWorld. Settings come from --config, then from --KEY VALUE overrides.",
        epilog="Overridable keys: " + ", ".join(name for name in field_names() if name != "hf_token"),
        allow_abbrev=False,  # "--learning" must not silently mean something else
    )
    parser.add_argument("--config", help="JSON file of TrainingConfig keys (default: every default)")
    parser.add_argument(
        "--resume_from_checkpoint",
        metavar="PATH|HUB_ID|latest",
        help=f"continue a run: a checkpoint directory, a Hub id, or {RESUME_LATEST!r} (newest in output_dir)",
    )
    parser.add_argument("--hf_token", help="Hugging Face token (default: $HF_TOKEN, then ~/.hf_token)")
    return parser


def parse_overrides(args: list[str]) -> dict[str, str]:
    """`--KEY VALUE` / `--KEY=VALUE` pairs as {key: string}; a bool key alone (`--push_to_hub`) means true."""
    overrides: dict[str, str] = {}
    index = 0
    while index < len(args):
        token = args[index]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"command line: unexpected argument {token!r} (overrides are --KEY VALUE)")
        key, has_value, value = token[2:].partition("=")
        key = key.replace("-", "_")
        check_key(key, "command line", option=True)
        if not has_value:
            following = args[index + 1] if index + 1 < len(args) else None
            if following is None or following.startswith("--"):
                if not is_flag(key):
                    raise ConfigError(f"command line: --{key} needs a value", key=key)
                value = "true"
            else:
                value = following
                index += 1
        overrides[key] = value
        index += 1
    return overrides


def config_from_args(config_path: str | None, rest: list[str]) -> TrainingConfig:
    """The config file (or the defaults) with the `--KEY VALUE` overrides in `rest` applied and validated."""
    overrides = parse_overrides(rest)
    if config_path:
        return TrainingConfig.from_json(config_path, overrides)
    return TrainingConfig.from_dict({}, overrides, source="defaults")


def parse_cli(argv: list[str]) -> tuple[TrainingConfig, dict[str, Any]]:
    """The config (file + overrides, validated) and the run options {"resume_from_checkpoint", "hf_token"}.

    The token is resolved (command line, config file, $HF_TOKEN, ~/.hf_token) and also set on the config, which never
    serializes it.
    """
    known, rest = build_parser().parse_known_args(argv)
    config = config_from_args(known.config, rest)
    config.hf_token = resolve_hf_token(known.hf_token or config.hf_token)
    resume = known.resume_from_checkpoint
    if resume and resume != RESUME_LATEST:
        resume = expand_path("resume_from_checkpoint", resume)
    return config, {"resume_from_checkpoint": resume, "hf_token": config.hf_token}


def main_error_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a `main`: a `ConfigError` becomes `error: <message>` on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as error:
            sys.stderr.write(f"error: {error}\n")
            raise SystemExit(CONFIG_ERROR_EXIT_CODE) from None

    return wrapper
