"""scripts/setup.sh (what `make setup` runs), without installing anything into the shared test virtualenv.

- The install logic (stamps, the torch pin, --skip-dev, idempotence) runs against a stand-in virtualenv whose
  `bin/python` records `-m pip` calls instead of running them and hands everything else to the current interpreter.
- The checks (import, tiny checkpoints, one generated answer) run for real with `--venv <the current venv>
  --no-install`, twice: the second run must rewrite nothing.
- The Hugging Face token is reported as configured or not, and never printed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "setup.sh"
TOKEN = "hf_SENTINEL_setup_9c2e71"

# A virtualenv stand-in: pip calls are logged (one line each) and not run, `import torch` fails as in a new
# virtualenv, and the import/model check (a script on stdin) only says it ran: the real check is tested below with the
# real virtualenv. Anything else runs on the current interpreter.
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == -m && "$2" == pip ]]; then printf '%s\\n' "${*:3}" >> "$(dirname "$0")/../pip.log"; exit 0; fi
if [[ "$1" == -c && "$2" == "import torch" ]]; then exit 1; fi
if [[ "$1" == - ]]; then echo "package: stand-in check"; exit 0; fi
exec PYTHON "$@"
"""


def run_setup(args: list[str], home: Path, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "VENV", "TINY_DIR", "PYTHON")}
    env["HOME"] = str(home)
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=home, capture_output=True, text=True, timeout=240)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home directory without ~/.hf_token (the machine's own must not decide the outcome)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def fake_venv(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text(FAKE_PYTHON.replace("PYTHON", sys.executable))
    python.chmod(0o755)
    return root


def pip_calls(venv: Path) -> list[str]:
    log = venv / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


TORCH_PIN = ["install -q torch==2.14.1 torchvision==0.29.1"] if platform.machine() == "x86_64" else []


def test_installs_once_then_skips(tmp_path: Path, home: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    first = run_setup(["--venv", str(venv), "--skip-models"], home)
    assert first.returncode == 0, first.stderr
    # On x86_64 a virtualenv without torch gets the tested torch/torchvision pair first.
    assert pip_calls(venv) == [*TORCH_PIN, "install -q -e .[dev]"]
    assert (venv / ".theworld-installed").is_file()  # the Makefile's $(STAMP)
    assert "HF token: not configured" in first.stdout

    # Installed with the dev extras: a second run, and a run that asks for less, install nothing.
    for args in (["--skip-models"], ["--skip-models", "--skip-dev"]):
        again = run_setup(["--venv", str(venv), *args], home)
        assert again.returncode == 0, again.stderr
        assert "install: up to date" in again.stdout
    assert pip_calls(venv) == [*TORCH_PIN, "install -q -e .[dev]"]


def test_skip_dev_then_dev(tmp_path: Path, home: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    assert run_setup(["--venv", str(venv), "--skip-models", "--skip-dev"], home).returncode == 0
    assert pip_calls(venv) == [*TORCH_PIN, "install -q -e ."]
    assert (venv / ".theworld-installed-nodev").is_file() and not (venv / ".theworld-installed").exists()
    assert "install: up to date" in run_setup(["--venv", str(venv), "--skip-models", "--skip-dev"], home).stdout
    # The package alone does not satisfy a run that wants the dev tools (nor make's $(STAMP)).
    assert run_setup(["--venv", str(venv), "--skip-models"], home).returncode == 0
    assert pip_calls(venv)[-1] == "install -q -e .[dev]" and (venv / ".theworld-installed").is_file()


def test_a_changed_pyproject_reinstalls(tmp_path: Path, home: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    stamp = venv / ".theworld-installed"
    stamp.touch()
    old = (ROOT / "pyproject.toml").stat().st_mtime - 60
    os.utime(stamp, (old, old))  # installed before pyproject.toml last changed
    assert run_setup(["--venv", str(venv), "--skip-models"], home).returncode == 0
    assert pip_calls(venv)[-1] == "install -q -e .[dev]" and stamp.stat().st_mtime > old


def test_tiny_checkpoints_and_answer_with_the_current_venv(tmp_path: Path, home: Path) -> None:
    venv = Path(sys.prefix)
    stamp = venv / ".theworld-installed"
    stamp_before = stamp.stat().st_mtime_ns if stamp.exists() else None
    tiny = tmp_path / "tiny"
    args = ["--venv", str(venv), "--no-install", "--skip-dev", "--tiny-dir", str(tiny)]

    first = run_setup(args, home, token=TOKEN)
    assert first.returncode == 0, first.stderr
    assert "install: skipped (--no-install)" in first.stdout
    assert (tiny / "gemma" / "config.json").is_file() and (tiny / "cosmos").is_dir()
    assert f"tiny checkpoints: {tiny / 'gemma'}, {tiny / 'cosmos'}" in first.stdout
    assert "verification: the tiny TheWorld answered 'Is the red shape left of the blue shape?' with '" in first.stdout
    assert "HF token: configured ($HF_TOKEN)" in first.stdout
    assert TOKEN not in first.stdout + first.stderr

    # Idempotent: the second run rebuilds nothing (every file keeps its bytes and its time) and still answers.
    files = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in tiny.rglob("*") if path.is_file()}
    (home / ".hf_token").write_text(TOKEN + "\n")
    second = run_setup(args, home)
    assert second.returncode == 0, second.stderr
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in tiny.rglob("*") if path.is_file()} == files
    assert "verification: the tiny TheWorld answered" in second.stdout
    assert "HF token: configured (~/.hf_token)" in second.stdout
    assert TOKEN not in second.stdout + second.stderr
    # The shared virtualenv was only read.
    assert (stamp.stat().st_mtime_ns if stamp.exists() else None) == stamp_before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "unknown option --bogus"),
        (["--venv"], "--venv needs a value"),
        (["--tiny-dir", "--skip-dev"], "--tiny-dir needs a value"),
        (["--python="], "--python needs a value"),
        (["--venv", "no-such-venv", "--no-install"], "--no-install: no virtualenv at"),
        (["--venv", "new-venv", "--python", "no-such-python3"], "--python: not found: no-such-python3"),
    ],
)
def test_bad_options_give_one_line_errors(home: Path, args: list[str], expected: str) -> None:
    result = run_setup(args, home, token=TOKEN)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("setup.sh: error: ") and expected in result.stderr
    assert not (home / "new-venv").exists()


def test_help(home: Path) -> None:
    result = run_setup(["--help"], home)
    assert result.returncode == 0
    for option in ("--venv", "--python", "--tiny-dir", "--skip-dev", "--skip-models", "--no-install"):
        assert option in result.stdout
