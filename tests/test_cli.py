"""The `theworld` console script: every subcommand reaches the same code as its script; errors are one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from theworld.cli import COMMANDS, EVALS, main
from theworld.testing import TinyCheckpoints, make_picture

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_is_installed_and_lists_every_command() -> None:
    executable = shutil.which("theworld") or str(Path(sys.executable).with_name("theworld"))
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for command in ("generate", "eval", *COMMANDS):
        assert command in result.stdout


def test_every_entry_point_resolves() -> None:
    import importlib

    for module, function, _ in COMMANDS.values():
        assert callable(getattr(importlib.import_module(module), function)), module
    for module, function in EVALS.values():
        assert callable(getattr(importlib.import_module(module), function)), module


def test_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["eval"])
    assert caught.value.code == 2
    assert main(["generate", "--model", str(tmp_path / "nope"), "--prompt", "hi", "--image", "missing.jpg"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == "error: --image missing.jpg: no such file"


def test_generate_answers_on_the_tiny_model(
    tiny: TinyCheckpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "shapes.png"
    make_picture(3).save(picture)
    argv = ["generate", "--model", str(tiny.gemma), "--cosmos-model", str(tiny.cosmos), "--image", str(picture)]
    assert main([*argv, "--prompt", "Is the red shape left of the blue shape?", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()


def test_tiny_builds_the_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: TinyCheckpoints) -> None:
    # Same seed as the session fixture: the factory reuses nothing across directories, so this is a real build.
    assert main(["tiny", str(tmp_path / "tiny")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "tiny" / "gemma"), str(tmp_path / "tiny" / "cosmos")]
    assert (tmp_path / "tiny" / "gemma" / "model.safetensors").is_file()
