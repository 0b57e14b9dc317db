"""Value-level helpers of `TrainingConfig`: `ConfigError`, type checks, parsing, path expansion and the Hub token.

Nothing here knows the dataclass: the helpers that depend on a key's type take its annotation as an argument
(`theworld.training.config` looks it up in `TrainingConfig`'s resolved type hints and passes it in).

- `_check_type` / `parse_as`: a JSON value checked against, or a command-line string parsed to, an annotation
  (`bool`, `int`, `float`, `str`, a `Literal`, each optionally `| None`).
- `expand_path`: `$VAR`, `${VAR}` and a leading `~` in path-like values; an unset variable is an error, except
  `TMPDIR`, which falls back to the system temporary directory as POSIX tools do.
- `reject_duplicate_keys`: a `json.loads` hook that refuses a key written twice.
- `resolve_hf_token`: the Hugging Face token from the command line, $HF_TOKEN or ~/.hf_token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

HF_TOKEN_FILE = ".hf_token"  # in the home directory
_MASK = "***"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_NULL = ("none", "null")
# Same variable syntax as os.path.expandvars on POSIX.
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")
_VARIABLE_FALLBACKS = {"TMPDIR": tempfile.gettempdir()}


class ConfigError(ValueError):
    """A bad training config. The message is one line; `key` is the offending key when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.key = key


def is_comment(key: str) -> bool:
    return key.startswith(("_", "//"))


def _unpack(annotation: Any) -> tuple[type, tuple[Any, ...], bool]:
    """(base type, allowed values or (), accepts None) of a field annotation."""
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (types.UnionType, typing.Union) and type(None) in args
    if optional:
        (annotation,) = (arg for arg in args if arg is not type(None))
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices, optional
    return annotation, (), optional


def _describe(annotation: Any) -> str:
    base, choices, optional = _unpack(annotation)
    text = _one_of(choices) if choices else {bool: "a bool", int: "an int", float: "a float", str: "a string"}[base]
    return f"{text} or null" if optional else text


def _one_of(choices: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(repr(choice) for choice in choices)


def _shown(key: str, value: Any) -> str:
    return _MASK if key == "hf_token" else repr(value)


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """`value` if it fits `annotation`, the type of `key` (ints are accepted for floats, as floats), else raise."""
    base, choices, optional = _unpack(annotation)
    if value is None and optional:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    fits = isinstance(value, base) and not (base is not bool and isinstance(value, bool))
    if not fits:
        raise ConfigError(
            f"{key}: expected {_describe(annotation)}, got {_shown(key, value)} ({type(value).__name__})", key=key
        )
    if choices and value not in choices:
        raise ConfigError(f"{key}={_shown(key, value)}: expected {_one_of(choices)}", key=key)
    return value


def parse_as(key: str, text: Any, annotation: Any) -> Any:
    """A command-line string parsed to the type `annotation` of `key`: bools true/false/1/0, ints, floats, null/None."""
    if not isinstance(text, str):
        return text  # already typed (a caller passing Python values)
    base, _, optional = _unpack(annotation)
    word = text.strip().lower()
    if optional and word in _NULL:
        return None
    if base is str:
        return text
    if base is bool:
        if word in _TRUE + _FALSE:
            return word in _TRUE
    else:
        with contextlib.suppress(ValueError):
            return base(text)
    raise ConfigError(f"command line: --{key}: expected {_describe(annotation)}, got {_shown(key, text)}", key=key)


def _require(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{key}={value!r}: expected {expected}", key=key)


def expand_path(key: str, value: str) -> str:
    """`$VAR` / `${VAR}` (os.path.expandvars syntax) and a leading `~` expanded; an unset variable is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        if name in os.environ:
            return os.environ[name]
        if name in _VARIABLE_FALLBACKS:
            return _VARIABLE_FALLBACKS[name]
        raise ConfigError(
            f"{key}={value!r}: environment variable ${name} is not set (export it or write the path out)", key=key
        )

    return os.path.expanduser(_VARIABLE.sub(substitute, value))


def reject_duplicate_keys(path: Path) -> Any:
    """A `json.loads` `object_pairs_hook` raising a `ConfigError` naming `path` when a (non-comment) key repeats."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result and not is_comment(key):
                raise ConfigError(f"{path}: key {key!r} appears twice", key=key)
            result[key] = value
        return result

    return hook


# ---- the Hub token ----
def resolve_hf_token(cli_token: str | None) -> str | None:
    """The Hugging Face token: `cli_token`, else $HF_TOKEN, else the stripped contents of ~/.hf_token, else None."""
    if cli_token:
        logger.debug("Hugging Face token: from the command line")
        return cli_token
    if os.environ.get("HF_TOKEN"):
        logger.debug("Hugging Face token: from $HF_TOKEN")
        return os.environ["HF_TOKEN"].strip()
    token_file = Path.home() / HF_TOKEN_FILE
    if token_file.is_file():
        token = token_file.read_text().strip()
        if token:
            logger.debug("Hugging Face token: from %s", token_file)
            return token
    return None
