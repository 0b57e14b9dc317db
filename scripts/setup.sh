#!/usr/bin/env bash
# Set up a TheWorld checkout (what `make setup` runs): a virtualenv with the package (editable) and its dev tools, the
# tiny offline checkpoints, and a one-question check that the installation works.
#
#   scripts/setup.sh [--venv DIR] [--python PY] [--tiny-dir DIR] [--skip-dev] [--skip-models] [--no-install]
#
# Steps:
#   1. virtualenv: reuse DIR when it has bin/python, else create it with PY (default $PYTHON, else python3)
#   2. install:    `pip install -e ".[dev]"` (or `-e .` with --skip-dev); on x86_64 a venv without torch first gets
#                  the torch/torchvision pair the project is tested with (TORCH_PIN below)
#   3. tiny checkpoints: what `python -m theworld.testing DIR` does (kept when a complete build is there)
#   4. verification: import theworld, load the tiny TheWorld and answer one question about a generated picture
#   5. report whether a Hugging Face token is configured ($HF_TOKEN or ~/.hf_token), never the token itself
#
# [Contract] Idempotent: a second run installs nothing (a stamp in the virtualenv, newer than pyproject.toml, records
#   the install), rebuilds nothing, and only repeats the few-second verification.
# [Contract] The stamp file is shared with the Makefile: "$VENV/.theworld-installed" means the package AND the dev
#   extras are installed for the current pyproject.toml (every make target depends on it);
#   "$VENV/.theworld-installed-nodev" means the package alone (--skip-dev).
# [Contract] Bad options: one line on stderr, `setup.sh: error: ...`, exit code 2.
set -euo pipefail

PROG="setup.sh"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The pair pyproject.toml's ranges (torch>=2.13,<2.15, torchvision>=0.28,<0.30) were tested with; without a pin pip
# takes the newest release in range, which may not be what the test suite ran on.
TORCH_PIN=(torch==2.14.1 torchvision==0.29.1)

usage() {
    cat <<'EOF'
Usage: scripts/setup.sh [options]

Create or reuse a virtualenv, install theworld (editable) with its dev tools, build the tiny offline checkpoints
and check that the tiny model answers a question. Safe to run again: what is done is not redone.

Options:
  --venv DIR       virtualenv to create or reuse (default: $VENV, else .venv)
  --python PY      Python that creates a new virtualenv (default: $PYTHON, else python3; 3.10 or newer)
  --tiny-dir DIR   where the tiny checkpoints go (default: $TINY_DIR, else .tiny)
  --skip-dev       install the package without the dev extras (pytest, ruff, pyright)
  --skip-models    no tiny checkpoints and no model check (only `import theworld` is checked)
  --no-install     install nothing: the virtualenv must exist with theworld importable (checks + tiny models only)
  -h, --help       this help
EOF
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

# Later steps failing (pip, a model load) is not a usage error: exit 1, with the step named.
fail() {
    printf '%s: failed: %s\n' "$PROG" "$*" >&2
    exit 1
}

VENV_DIR="${VENV:-.venv}"
BASE_PYTHON="${PYTHON:-python3}"
TINY="${TINY_DIR:-.tiny}"
DEV=1
MODELS=1
INSTALL=1

while (($#)); do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --skip-dev) DEV=0 ;;
        --skip-models) MODELS=0 ;;
        --no-install) INSTALL=0 ;;
        --venv | --python | --tiny-dir)
            [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"
            case "$1" in
                --venv) VENV_DIR="$2" ;;
                --python) BASE_PYTHON="$2" ;;
                --tiny-dir) TINY="$2" ;;
            esac
            shift
            ;;
        --venv=* | --python=* | --tiny-dir=*)
            value="${1#*=}"
            [[ -n "$value" ]] || die "${1%%=*} needs a value"
            case "$1" in
                --venv=*) VENV_DIR="$value" ;;
                --python=*) BASE_PYTHON="$value" ;;
                --tiny-dir=*) TINY="$value" ;;
            esac
            ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

# Relative paths are the caller's, as with any command; the script itself works from the repository root.
[[ "$VENV_DIR" == /* ]] || VENV_DIR="$PWD/$VENV_DIR"
[[ "$TINY" == /* ]] || TINY="$PWD/$TINY"
cd "$REPO_DIR"
started=$SECONDS
VPY="$VENV_DIR/bin/python"

# ---- 1. the virtualenv ----
if [[ -x "$VPY" ]]; then
    echo "virtualenv: $VENV_DIR (reused)"
elif ((INSTALL == 0)); then
    die "--no-install: no virtualenv at $VENV_DIR (no $VPY); run without --no-install first"
else
    command -v -- "$BASE_PYTHON" >/dev/null || die "--python: not found: $BASE_PYTHON"
    "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "--python: $BASE_PYTHON is older than Python 3.10 (pyproject.toml: requires-python >=3.10)"
    "$BASE_PYTHON" -m venv "$VENV_DIR" || fail "could not create the virtualenv $VENV_DIR with $BASE_PYTHON"
    echo "virtualenv: $VENV_DIR (created with $BASE_PYTHON)"
fi

# ---- 2. the package ----
DEV_STAMP="$VENV_DIR/.theworld-installed"
NODEV_STAMP="$VENV_DIR/.theworld-installed-nodev"
fresh() { [[ -f "$1" && "$1" -nt pyproject.toml ]]; }
PIP_IS_RECENT='
import re, sys
from pip import __version__
sys.exit(tuple(int(part) for part in re.findall(r"\d+", __version__)[:2]) < (21, 3))
'

if ((INSTALL == 0)); then
    echo "install: skipped (--no-install)"
elif fresh "$DEV_STAMP" || { ((DEV == 0)) && fresh "$NODEV_STAMP"; }; then
    echo "install: up to date (stamp newer than pyproject.toml)"
else
    # Editable installs of a pyproject.toml project (PEP 660) need pip 21.3; newer pips are left alone (no network).
    if ! "$VPY" -c "$PIP_IS_RECENT" 2>/dev/null; then
        echo "install: upgrading pip (editable installs need pip >= 21.3)"
        "$VPY" -m pip install -q --upgrade pip || fail "pip upgrade in $VENV_DIR"
    fi
    if [[ "$(uname -m)" == x86_64 ]] && ! "$VPY" -c 'import torch' 2>/dev/null; then
        echo "install: ${TORCH_PIN[*]}"
        "$VPY" -m pip install -q "${TORCH_PIN[@]}" || fail "pip install ${TORCH_PIN[*]}"
    fi
    if ((DEV)); then
        echo 'install: pip install -e ".[dev]"'
        "$VPY" -m pip install -q -e ".[dev]" || fail 'pip install -e ".[dev]"'
        touch "$DEV_STAMP"
    else
        echo 'install: pip install -e .'
        "$VPY" -m pip install -q -e . || fail "pip install -e ."
        touch "$NODEV_STAMP"
    fi
fi

# ---- 3. and 4. the tiny checkpoints and a one-question check, in one Python process (each import costs seconds) ----
# Local folders only: offline, so a missing file fails at once instead of reaching for the Hub; no progress bars.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
    "$VPY" - "$TINY" "$MODELS" <<'EOF' || fail "the check above, with $VPY"
import logging
import sys
import time

logging.disable(logging.WARNING)  # library notes (e.g. diffusers' safety-checker type); errors still show
try:
    import theworld
except ImportError as error:
    sys.exit(f"theworld is not importable ({error}); run scripts/setup.sh without --no-install")
print(f"package: theworld {theworld.__version__}")
if sys.argv[2] == "0":
    print("tiny checkpoints: skipped (--skip-models)")
    sys.exit(0)

from theworld import TheWorld
from theworld.testing import build_tiny_checkpoints, make_picture

# What `python -m theworld.testing DIR` does; a complete build is detected and kept, so a second run rewrites nothing.
tiny = build_tiny_checkpoints(sys.argv[1])
print(f"tiny checkpoints: {tiny.gemma}, {tiny.cosmos}")
start = time.perf_counter()
model = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64).eval()
question = "Is the red shape left of the blue shape?"
answer = model.answer(make_picture(seed=7), question, max_new_tokens=8)
print(f"verification: the tiny TheWorld answered {question!r} with {answer!r} ({time.perf_counter() - start:.1f} s;")
print("  random weights: the words are noise; the point is that loading and generation work)")
EOF

# ---- 5. the Hugging Face token: whether, never what ----
if [[ -n "${HF_TOKEN:-}" ]]; then
    echo "HF token: configured (\$HF_TOKEN)"
elif [[ -n "${HOME:-}" && -f "$HOME/.hf_token" ]] && grep -q '[^[:space:]]' "$HOME/.hf_token" 2>/dev/null; then
    echo "HF token: configured (~/.hf_token)"
else
    echo "HF token: not configured (needed only for the gated google/gemma-3 models and push_to_hub:" \
        "export HF_TOKEN=... or write it to ~/.hf_token)"
fi
echo "setup: done in $((SECONDS - started)) s"
