"""scripts/train_slurm.sh against stand-in `sbatch`, `srun` and `scontrol` executables (no SLURM here).

The stand-ins behave like a one-job cluster: `sbatch` runs the batch script with bash at once, with the SLURM_*
variables of an allocation, writing the job's output where `#SBATCH --output` says; `srun` drops its own options and
execs its command with the task's SLURM_NODEID; `scontrol show hostnames` expands a comma-separated node list. What is
checked: the batch script (job name, gres, nodes, mail, the accelerate command with the machine rank and the main
address taken from the SLURM variables at run time), resuming from the newest COMPLETE checkpoint, that the HF token
never appears anywhere, one-line errors with exit code 2, and a real tiny training run launched through the script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from theworld.testing import TinyCheckpoints
from theworld.training.checkpoints import COMPLETE_MARKER, resolve_resume

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_slurm.sh"
TOKEN = "hf_SENTINEL_tokEn_4b7d1e"  # must never show up in any output or file
JOB_ID = 4242

SBATCH = """#!/usr/bin/env bash
# Stand-in sbatch: record the arguments, run the batch script now as job @JOB@, print the id like --parsable.
set -euo pipefail
printf '%s\\n' "$@" > "$STANDIN_DIR/sbatch.args"
script="${@: -1}"
name="$(sed -n 's/^#SBATCH --job-name=//p' "$script")"
out="$(sed -n 's/^#SBATCH --output=//p' "$script")"
out="${out//%x/$name}"
out="${out//%j/@JOB@}"
cpus="$(sed -n 's/^#SBATCH --cpus-per-task=//p' "$script")"
if [[ -n "$cpus" ]]; then export SLURM_CPUS_PER_TASK="$cpus"; fi
status=0
SLURM_JOB_ID=@JOB@ SLURM_JOB_NAME="$name" SLURM_NNODES="${STANDIN_NNODES:-1}" SLURM_NODEID=0 SLURM_NTASKS=1 \\
    SLURM_JOB_NODELIST="${STANDIN_NODELIST:-localhost}" SLURM_SUBMIT_DIR="$PWD" \\
    bash "$script" > "$out" 2>&1 || status=$?
echo "$status" > "$STANDIN_DIR/job.rc"
echo "@JOB@;standin-cluster"
""".replace("@JOB@", str(JOB_ID))

SRUN = """#!/usr/bin/env bash
# Stand-in srun: record the arguments, drop srun's own --options, exec the command as the task on node
# $STANDIN_TASK_NODE.
printf '%s\\n' "$@" > "$STANDIN_DIR/srun.args"
while [[ $# -gt 0 && "$1" == --* ]]; do shift; done
export SLURM_NODEID="${STANDIN_TASK_NODE:-0}"
exec "$@"
"""

SCONTROL = """#!/usr/bin/env bash
# Stand-in scontrol: only `scontrol show hostnames a,b,c` (one host a line).
[[ "$1" == show && "$2" == hostnames ]] || exit 1
tr ',' '\\n' <<< "$3"
"""


def launcher_stub(base_python: str) -> str:
    """A `--python` for the multi-node test: a Python without theworld for the submit-time check, and an accelerate
    launcher that only records its arguments (one per line) for the job."""
    return f"""#!/usr/bin/env bash
if [[ "$1" == -c ]]; then exec {base_python} -I -S "$@"; fi
printf '%s\\n' "$@" > "$STANDIN_DIR/launch.args"
"""


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a login node: stand-ins first on PATH, a home without ~/.hf_token, $HF_TOKEN unset."""
    root = tmp_path_factory.mktemp("cluster")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "sbatch", SBATCH)
    write_executable(bin_dir / "srun", SRUN)
    write_executable(bin_dir / "scontrol", SCONTROL)
    home = root / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOME=str(home), HF_HUB_OFFLINE="1")
    return env


def run_script(
    args: list[str], env: dict[str, str], standin_dir: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    standin_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**env, "STANDIN_DIR": str(standin_dir)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_token_absent(*texts: str, roots: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert TOKEN not in text
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def make_checkpoint(output_dir: Path, step: int, complete: bool) -> Path:
    """A checkpoint-N folder as the Trainer leaves it: trainer_state.json is written last, so an interrupted save
    lacks it."""
    checkpoint = output_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    if complete:
        (checkpoint / COMPLETE_MARKER).write_text(json.dumps({"global_step": step}))
    return checkpoint


# ---- single node, dry run ----
@pytest.fixture(scope="module")
def single_dry_run(cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("single")
    output_dir = root / "run"
    make_checkpoint(output_dir, 2, complete=True)
    make_checkpoint(output_dir, 4, complete=False)  # newer, but interrupted while being written
    (output_dir / "checkpoint-notes").mkdir()
    env = {**cluster, "HF_TOKEN": TOKEN, "THEWORLD_TINY_DIR": str(root / "tiny")}
    args = ["--gpu-type", "a100", "--gpu-count", "1", "--config", "configs/tiny.json", "--python", sys.executable]
    args += ["--output-root", str(root / "slurm"), "--dry-run", "--", "--output_dir", str(output_dir)]
    result = run_script(args, env, root / "standin")
    return {"result": result, "root": root, "output_dir": output_dir}


def test_single_node_dry_run_prints_the_batch_script_and_submits_nothing(single_dry_run: dict[str, object]) -> None:
    result = single_dry_run["result"]
    root = single_dry_run["root"]
    assert isinstance(result, subprocess.CompletedProcess) and isinstance(root, Path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "#SBATCH --job-name=theworld-tiny-a100x1\n" in out
    assert "#SBATCH --gres=gpu:a100:1\n" in out
    assert "#SBATCH --nodes=1\n" in out and "#SBATCH --ntasks-per-node=1\n" in out
    assert "#SBATCH --time=24:00:00\n" in out
    assert f"#SBATCH --output={root / 'slurm'}/%x-%j.out\n" in out
    assert "--mail" not in out  # no --email: no mail options and no default address
    # One GPU in total: the single-GPU accelerate config and one process, no rendezvous across nodes.
    assert f"ACCELERATE_CONFIG={ROOT / 'configs/accelerate/single_gpu.yaml'}\n" in out
    assert "TOTAL_GPUS=1\n" in out and '--num_processes "$TOTAL_GPUS"' in out
    assert "--machine_rank" not in out and "scontrol" not in out
    assert f"--config {ROOT / 'configs/tiny.json'} --resume_from_checkpoint latest --output_dir {root / 'run'}" in out
    assert "sbatch --parsable --export=ALL " in out
    assert "HF token: configured" in out
    assert "dry run: nothing written, nothing submitted" in out
    assert not (root / "slurm").exists() and not (root / "standin" / "sbatch.args").exists()
    assert_token_absent(result.stdout, result.stderr)


def test_dry_run_names_the_newest_complete_checkpoint(single_dry_run: dict[str, object]) -> None:
    result = single_dry_run["result"]
    output_dir = single_dry_run["output_dir"]
    assert isinstance(result, subprocess.CompletedProcess) and isinstance(output_dir, Path)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("resume:")]
    assert f"latest = {output_dir / 'checkpoint-2'} " in line and "checkpoint-4" not in line
    # ... which is what the training code itself resumes from when the job passes `latest`.
    assert resolve_resume("latest", output_dir) == output_dir / "checkpoint-2"


# ---- two nodes: run the generated batch script with the stand-ins ----
def test_multi_node_job_takes_rank_and_main_address_from_slurm_at_run_time(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    standin = tmp_path / "standin"
    python = write_executable(tmp_path / "python", launcher_stub(str(Path(sys.base_prefix) / "bin" / "python3")))
    (Path(cluster["HOME"]) / ".hf_token").write_text(TOKEN + "\n")
    try:
        env = {**cluster, "STANDIN_NNODES": "2", "STANDIN_NODELIST": "gpu07,gpu08", "STANDIN_TASK_NODE": "1"}
        args = ["--gpu-type", "h100", "--gpu-count", "4", "--nodes", "2", "--config", "configs/default.json"]
        args += ["--python", str(python), "--output-root", str(tmp_path / "slurm"), "--email", "team@example.org"]
        args += ["--cpus-per-task", "16"]
        args += ["--partition", "gpu", "--mem", "200G", "--time", "2-00:00:00", "--", "--learning_rate", "1e-4"]
        result = run_script(args, env, standin)
    finally:
        (Path(cluster["HOME"]) / ".hf_token").unlink()
    assert result.returncode == 0, result.stderr
    log = next((tmp_path / "slurm").glob(f"*-{JOB_ID}.out")).read_text()
    assert (standin / "job.rc").read_text().strip() == "0", log
    assert f"submitted job {JOB_ID} (theworld-default-h100x4x2)" in result.stdout
    assert "HF token: configured (~/.hf_token" in result.stdout
    assert "resume: latest at run time" in result.stdout  # theworld is not importable by that Python

    (batch_file,) = (tmp_path / "slurm").glob("theworld-default-h100x4x2.*.sbatch")
    directives = [line for line in batch_file.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --nodes=2" in directives and "#SBATCH --gres=gpu:h100:4" in directives
    assert "#SBATCH --mail-type=END,FAIL" in directives and "#SBATCH --mail-user=team@example.org" in directives
    assert "#SBATCH --partition=gpu" in directives and "#SBATCH --mem=200G" in directives
    assert "#SBATCH --time=2-00:00:00" in directives and "#SBATCH --cpus-per-task=16" in directives
    assert (standin / "sbatch.args").read_text().splitlines() == ["--parsable", "--export=ALL", str(batch_file)]
    srun_args = (standin / "srun.args").read_text().splitlines()
    assert "--nodes=2" in srun_args and "--ntasks-per-node=1" in srun_args and "--cpus-per-task=16" in srun_args

    # The batch shell had SLURM_NODEID=0; the task's own shell read 1: the rank was not fixed at submit time, nor in
    # the batch shell. The main address is the allocation's first host.
    launch = (standin / "launch.args").read_text().splitlines()
    script_at = launch.index("scripts/train_hf.py")
    launcher, training = launch[:script_at], launch[script_at + 1 :]
    assert launcher[:2] == ["-m", "accelerate.commands.launch"]
    options = dict(zip(launcher[2::2], launcher[3::2], strict=True))
    assert options == {
        "--machine_rank": "1",
        "--num_machines": "2",
        "--main_process_ip": "gpu07",
        "--main_process_port": str(20000 + JOB_ID % 20000),
        "--num_processes": "8",
        "--config_file": str(ROOT / "configs/accelerate/multi_gpu_ddp.yaml"),
    }
    assert training == [
        "--config",
        str(ROOT / "configs/default.json"),
        "--resume_from_checkpoint",
        "latest",
        "--learning_rate",
        "1e-4",
    ]
    assert f"2 nodes (gpu07,gpu08), 8 processes, rendezvous gpu07:{20000 + JOB_ID % 20000}" in log
    assert_token_absent(result.stdout, result.stderr, roots=(tmp_path,))


# ---- a real run: the batch script launches the tiny training ----
def test_job_trains_the_tiny_model_and_writes_a_checkpoint(
    cluster: dict[str, str], tiny: TinyCheckpoints, tmp_path: Path
) -> None:
    output_dir = tmp_path / "run"
    env = {**cluster, "HF_TOKEN": TOKEN, "THEWORLD_TINY_DIR": str(tiny.gemma.parent)}
    # No GPU here: --cpu, and no bf16 autocast on CPU (single_gpu.yaml says bf16).
    args = ["--gpu-type", "a100", "--gpu-count", "1", "--config", "configs/tiny.json", "--python", sys.executable]
    args += [
        "--accelerate-config",
        "configs/accelerate/single_gpu.yaml",
        "--launcher-args",
        "--cpu --mixed_precision no",
    ]
    args += ["--output-root", str(tmp_path / "slurm"), "--", "--output_dir", str(output_dir), "--max_steps", "2"]
    args += ["--num_samples", "16", "--batch_size", "4", "--num_eval_samples", "0", "--save_steps", "2"]
    result = run_script(args, env, tmp_path / "standin", timeout=240)
    assert result.returncode == 0, result.stderr
    (log_file,) = (tmp_path / "slurm").glob(f"theworld-tiny-a100x1-{JOB_ID}.out")
    log = log_file.read_text()
    assert (tmp_path / "standin" / "job.rc").read_text().strip() == "0", log[-3000:]
    assert f"resume: latest = none yet (no complete checkpoint in {output_dir})" in result.stdout
    assert "no complete checkpoint" in log  # the training code got --resume_from_checkpoint latest
    assert (output_dir / "checkpoint-2" / COMPLETE_MARKER).is_file()
    assert f"done: {output_dir}" in log
    srun_args = (tmp_path / "standin" / "srun.args").read_text().splitlines()
    assert srun_args[:3] == ["--nodes=1", "--ntasks=1", "--kill-on-bad-exit=1"]
    assert resolve_resume("latest", output_dir) == output_dir / "checkpoint-2"  # the next submission resumes here
    assert_token_absent(result.stdout, result.stderr, roots=(tmp_path,))


# ---- errors ----
BASE = ["--gpu-type", "a100", "--config", "configs/default.json", "--dry-run"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "configs/default.json", "--dry-run"], "--gpu-type is required"),
        (["--gpu-type", "a100", "--dry-run"], "--config is required"),
        (["--gpu-type", "a100", "--config", "configs/nope.json"], "--config: no such file: configs/nope.json"),
        ([*BASE, "--gpu-count", "two"], "--gpu-count: expected a positive integer, got 'two'"),
        ([*BASE, "--nodes", "0"], "--nodes: expected a positive integer, got '0'"),
        ([*BASE, "--nodes=1.5"], "--nodes: expected a positive integer, got '1.5'"),
        ([*BASE, "--gpus", "2"], "unknown option --gpus"),
        ([*BASE, "--time", "tomorrow"], "--time: expected a SLURM time"),
        ([*BASE, "--email", "nobody"], "--email: expected an address"),
        (["--gpu-type", "a100", "--config", "--dry-run"], "--config needs a value"),
        ([*BASE, "--accelerate-config", "configs/accelerate/tpu.yaml"], "--accelerate-config: no such file"),
        ([*BASE, "stray"], "unexpected argument 'stray'"),
        ([*BASE, "--", "--hf_token", "x"], "never as --hf_token"),
        ([*BASE, "--", "--learning_rat", "1e-4"], "unknown key --learning_rat (did you mean --learning_rate?)"),
    ],
)
def test_bad_options_give_one_line_errors(
    cluster: dict[str, str], tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run_script(["--python", sys.executable, *args], {**cluster, "HF_TOKEN": TOKEN}, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("train_slurm.sh: error: ") and expected in result.stderr
    assert not (tmp_path / "sbatch.args").exists()
    assert_token_absent(result.stderr)


def test_help_lists_every_option(cluster: dict[str, str], tmp_path: Path) -> None:
    result = run_script(["--help"], cluster, tmp_path)
    assert result.returncode == 0
    for option in ("--gpu-type", "--gpu-count", "--nodes", "--time", "--mem", "--partition", "--account", "--email"):
        assert option in result.stdout
    for option in ("--config", "--accelerate-config", "--output-root", "--dry-run", "--launcher-args", "--python"):
        assert option in result.stdout


def test_skip_check_leaves_the_config_to_the_job(cluster: dict[str, str], tmp_path: Path) -> None:
    """A config naming a variable only the job has (here THEWORLD_TINY_DIR is unset) is submitted unread."""
    args = ["--gpu-type", "a100", "--config", "configs/tiny.json", "--python", sys.executable, "--dry-run"]
    refused = run_script([*args, "--skip-check", "--gpu-count", "x"], cluster, tmp_path)  # options still checked
    assert refused.returncode == 2 and "--gpu-count" in refused.stderr
    result = run_script([*args, "--skip-check"], cluster, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resume: latest at run time (--skip-check" in result.stdout
    assert "HF token: not configured" in result.stdout
