#!/usr/bin/env bash
# Submit a TheWorld training run to SLURM: write a batch script that runs `accelerate launch scripts/train_hf.py` on
# every node of the allocation (one task per node), and hand it to sbatch.
#
#   scripts/train_slurm.sh --gpu-type a100 --config configs/default.json [options] [-- --KEY VALUE ...]
#   scripts/train_slurm.sh --gpu-type h100 --gpu-count 8 --nodes 2 --config configs/default.json --dry-run
#
# Run `scripts/train_slurm.sh --help` for every option; docs/training/slurm.md shows a generated batch script.
#
# [Contract] The job always passes `--resume_from_checkpoint latest`: resubmitting the same command (or the kept
#   .sbatch file) continues from the newest COMPLETE checkpoint in the config's output_dir
#   (theworld.training.checkpoints), or starts fresh when there is none. Nothing is lost when a job hits its time limit.
# [Contract] The Hugging Face token is never read into this script's output, the batch script or the logs: the job
#   inherits $HF_TOKEN through sbatch's environment export, or the training code reads ~/.hf_token on the compute node
#   (theworld.training.config.resolve_hf_token). Only "configured" / "not configured" is printed.
# [Contract] Every mistake in the options is one line on stderr, `train_slurm.sh: error: ...`, and exit code 2, before
#   anything is written or submitted.
set -euo pipefail

PROG="train_slurm.sh"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'EOF'
Usage: scripts/train_slurm.sh --gpu-type TYPE --config FILE [options] [-- --KEY VALUE ...]

Submit scripts/train_hf.py to SLURM through `accelerate launch`, resuming from the newest complete checkpoint.

Required:
  --gpu-type TYPE          GPU type of the gres request, e.g. a100, h100 (--gres=gpu:TYPE:COUNT)
  --config FILE            training config (configs/*.json)

Resources:
  --gpu-count N            GPUs per node (default 2)
  --nodes N                nodes (default 1); more than one runs one accelerate launcher per node
  --time T                 wall-clock limit, SLURM format (default 24:00:00)
  --mem M                  memory per node, e.g. 200G (default: the partition's)
  --cpus-per-task N        CPUs for each node's launcher task (default: the partition's)
  --partition NAME         partition (default: the cluster's)
  --account NAME           account to charge (default: yours)
  --email ADDRESS          mail ADDRESS when the job ends or fails (default: no mail)
  --requeue                let SLURM requeue the job after preemption (it resumes from its latest checkpoint)

Launch:
  --accelerate-config F    accelerate config (default: configs/accelerate/multi_gpu_ddp.yaml for more than one GPU
                           in total, configs/accelerate/single_gpu.yaml otherwise)
  --launcher-args "ARGS"   extra `accelerate launch` options, split on spaces (e.g. "--mixed_precision no")
  --port N                 rendezvous port (default: 20000 + job id % 20000, so jobs sharing a node differ)
  --python PY              the job's Python, with theworld installed (default: $VIRTUAL_ENV's, else python3)
  --output-root DIR        where the batch scripts and SLURM logs go (default: outputs/slurm in the repository)
  --dry-run                print the batch script and the sbatch command; write and submit nothing
  --skip-check             do not read the config here (e.g. it uses variables that only the job has, such as
                           $SLURM_TMPDIR); by default it is validated with the overrides before submitting
  -- --KEY VALUE ...       training overrides for scripts/train_hf.py (any TrainingConfig key)

The Hugging Face token comes from $HF_TOKEN or ~/.hf_token and is never printed or written into the batch script.
EOF
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

# Quote one value for the generated batch script (shell-safe; plain paths stay readable).
quoted() {
    printf '%q' "$1"
}

GPU_TYPE=""
GPU_COUNT=2
NODES=1
TIME_LIMIT="24:00:00"
MEM=""
CPUS_PER_TASK=""
PARTITION=""
ACCOUNT=""
EMAIL=""
REQUEUE=0
CONFIG=""
ACCELERATE_CONFIG=""
LAUNCHER_ARGS_TEXT=""
PORT=""
PYTHON_BIN=""
OUTPUT_ROOT="$REPO_DIR/outputs/slurm"
DRY_RUN=0
SKIP_CHECK=0
TRAIN_OVERRIDES=()

VALUE_OPTIONS=" --gpu-type --gpu-count --nodes --time --mem --cpus-per-task --partition --account --email --config \
--accelerate-config --launcher-args --port --python --output-root "

while (($#)); do
    case "$1" in
        --)
            shift
            TRAIN_OVERRIDES=("$@")
            break
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --dry-run)
            DRY_RUN=1
            shift
            continue
            ;;
        --requeue)
            REQUEUE=1
            shift
            continue
            ;;
        --skip-check)
            SKIP_CHECK=1
            shift
            continue
            ;;
        --dry-run=* | --requeue=* | --skip-check=* | --help=*)
            die "${1%%=*} takes no value"
            ;;
        --*=*)
            name="${1%%=*}"
            value="${1#*=}"
            shift
            ;;
        --*)
            name="$1"
            [[ "$VALUE_OPTIONS" == *" $name "* ]] || die "unknown option $name (see --help)"
            [[ $# -ge 2 ]] || die "$name needs a value"
            # A missing value must not swallow the next option ("--config --dry-run"); only --launcher-args takes
            # options as its value.
            [[ "$2" != --* || "$name" == --launcher-args ]] || die "$name needs a value"
            value="$2"
            shift 2
            ;;
        -*)
            die "unknown option $1 (see --help)"
            ;;
        *)
            die "unexpected argument '$1' (training overrides go after --, e.g. -- --learning_rate 1e-4)"
            ;;
    esac
    [[ "$VALUE_OPTIONS" == *" $name "* ]] || die "unknown option $name (see --help)"
    case "$name" in
        --gpu-type) GPU_TYPE="$value" ;;
        --gpu-count) GPU_COUNT="$value" ;;
        --nodes) NODES="$value" ;;
        --time) TIME_LIMIT="$value" ;;
        --mem) MEM="$value" ;;
        --cpus-per-task) CPUS_PER_TASK="$value" ;;
        --partition) PARTITION="$value" ;;
        --account) ACCOUNT="$value" ;;
        --email) EMAIL="$value" ;;
        --config) CONFIG="$value" ;;
        --accelerate-config) ACCELERATE_CONFIG="$value" ;;
        --launcher-args) LAUNCHER_ARGS_TEXT="$value" ;;
        --port) PORT="$value" ;;
        --python) PYTHON_BIN="$value" ;;
        --output-root) OUTPUT_ROOT="$value" ;;
    esac
done

# ---- validation: everything is checked before anything is written ----
positive_int() { # NAME VALUE
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1: expected a positive integer, got '$2'"
}
# #SBATCH lines are not shell-parsed: a value with spaces or quotes would be cut or misread there.
sbatch_safe() { # NAME VALUE
    [[ "$2" =~ ^[^[:space:]\"\'\\]+$ ]] || die "$1: '$2' must not contain spaces, quotes or backslashes"
}

[[ -n "$GPU_TYPE" ]] || die "--gpu-type is required (e.g. --gpu-type a100)"
[[ "$GPU_TYPE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--gpu-type: expected a gres GPU type like a100 or h100, got '$GPU_TYPE'"
positive_int --gpu-count "$GPU_COUNT"
positive_int --nodes "$NODES"
[[ -z "$CPUS_PER_TASK" ]] || positive_int --cpus-per-task "$CPUS_PER_TASK"
if [[ -n "$PORT" ]]; then
    positive_int --port "$PORT"
    ((PORT >= 1024 && PORT <= 65535)) || die "--port: expected 1024..65535, got '$PORT'"
fi
# SLURM's time formats: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
[[ "$TIME_LIMIT" =~ ^([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}$ ]] ||
    die "--time: expected a SLURM time such as 24:00:00 or 2-00:00:00, got '$TIME_LIMIT'"
[[ -z "$MEM" || "$MEM" =~ ^[1-9][0-9]*[KMGTkmgt]?$ ]] || die "--mem: expected a size such as 200G, got '$MEM'"
[[ -z "$PARTITION" ]] || sbatch_safe --partition "$PARTITION"
[[ -z "$ACCOUNT" ]] || sbatch_safe --account "$ACCOUNT"
if [[ -n "$EMAIL" ]]; then
    [[ "$EMAIL" =~ ^[^[:space:]@\"\'\\]+@[^[:space:]@\"\'\\]+$ ]] || die "--email: expected an address, got '$EMAIL'"
fi

[[ -n "$CONFIG" ]] || die "--config is required (e.g. --config configs/default.json)"
[[ -f "$CONFIG" ]] || die "--config: no such file: $CONFIG"
CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"

TOTAL_GPUS=$((GPU_COUNT * NODES))
if [[ -z "$ACCELERATE_CONFIG" ]]; then
    if ((TOTAL_GPUS > 1)); then
        ACCELERATE_CONFIG="$REPO_DIR/configs/accelerate/multi_gpu_ddp.yaml"
    else
        ACCELERATE_CONFIG="$REPO_DIR/configs/accelerate/single_gpu.yaml"
    fi
fi
[[ -f "$ACCELERATE_CONFIG" ]] || die "--accelerate-config: no such file: $ACCELERATE_CONFIG"
ACCELERATE_CONFIG="$(cd "$(dirname "$ACCELERATE_CONFIG")" && pwd)/$(basename "$ACCELERATE_CONFIG")"

LAUNCHER_ARGS=()
if [[ -n "$LAUNCHER_ARGS_TEXT" ]]; then
    read -r -a LAUNCHER_ARGS <<<"$LAUNCHER_ARGS_TEXT"
fi
for arg in ${LAUNCHER_ARGS[@]+"${LAUNCHER_ARGS[@]}"}; do
    case "$arg" in
        --num_processes* | --num_machines* | --machine_rank* | --main_process_ip* | --config_file*)
            die "--launcher-args: $arg is set by this script (use --gpu-count, --nodes or --accelerate-config)"
            ;;
    esac
done

if ((${#TRAIN_OVERRIDES[@]})); then
    [[ "${TRAIN_OVERRIDES[0]}" == --* ]] ||
        die "training overrides: expected --KEY VALUE after --, got '${TRAIN_OVERRIDES[0]}'"
fi
for arg in ${TRAIN_OVERRIDES[@]+"${TRAIN_OVERRIDES[@]}"}; do
    case "$arg" in
        --hf_token | --hf_token=* | --hf-token | --hf-token=*)
            # On the command line it would be written into the batch script and shown by `ps`.
            die "training overrides: pass the token as \$HF_TOKEN or in ~/.hf_token, never as --hf_token"
            ;;
        --config | --config=*)
            die "training overrides: use this script's --config"
            ;;
        --resume_from_checkpoint | --resume_from_checkpoint=*)
            die "training overrides: the job always resumes from the newest complete checkpoint in output_dir" \
                "(use another --output_dir to start fresh)"
            ;;
    esac
done

if [[ -z "$PYTHON_BIN" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
        PYTHON_BIN="$VIRTUAL_ENV/bin/python"
    else
        PYTHON_BIN="python3"
    fi
fi
# Absolute, so that the job runs the same interpreter whatever PATH the compute nodes have.
resolved="$(command -v -- "$PYTHON_BIN" || true)"
[[ -n "$resolved" && -x "$resolved" ]] || die "--python: not an executable: $PYTHON_BIN"
[[ "$resolved" == /* ]] || resolved="$(pwd)/$resolved"
PYTHON_BIN="$resolved"

sbatch_safe --output-root "$OUTPUT_ROOT"
[[ "$OUTPUT_ROOT" == /* ]] || OUTPUT_ROOT="$(pwd)/$OUTPUT_ROOT"

# ---- derived names ----
config_stem="$(basename "$CONFIG")"
config_stem="${config_stem%.json}"
config_stem="${config_stem//[^A-Za-z0-9_.-]/-}"
JOB_NAME="theworld-${config_stem}-${GPU_TYPE}x${GPU_COUNT}"
if ((NODES > 1)); then
    JOB_NAME="${JOB_NAME}x${NODES}"
fi
BATCH_FILE="$OUTPUT_ROOT/${JOB_NAME}.$(date +%Y%m%d-%H%M%S).sbatch"

# ---- the Hugging Face token: whether it is configured, never what it is ----
if [[ -n "${HF_TOKEN:-}" ]]; then
    TOKEN_STATUS="configured (\$HF_TOKEN, handed to the job by sbatch's environment export)"
elif [[ -n "${HOME:-}" && -f "$HOME/.hf_token" ]] && grep -q '[^[:space:]]' "$HOME/.hf_token" 2>/dev/null; then
    TOKEN_STATUS="configured (~/.hf_token, read by the training code on the compute node)"
else
    TOKEN_STATUS="not configured (set HF_TOKEN or write ~/.hf_token; needed for gated models and push_to_hub)"
fi

# ---- which checkpoint the job would resume from, as far as it can be told here ----
# The training code's own config reader and checkpoint finder: the same output_dir and the same notion of "complete".
# Exit 3: theworld not importable with this Python; exit 4: the config (with the overrides) is invalid.
PREVIEW_PY='
import sys
try:
    from pathlib import Path

    from theworld.training.checkpoints import complete_checkpoints
    from theworld.training.cli_args import config_from_args
    from theworld.training.config import ConfigError
except ImportError:
    sys.exit(3)
try:
    config = config_from_args(sys.argv[1], sys.argv[2:])
except ConfigError as error:
    print(error)
    sys.exit(4)
output_dir = Path(config.output_dir).resolve()
found = complete_checkpoints(output_dir)
print(output_dir)
print(found[-1] if found else "")
'
preview=""
if ((SKIP_CHECK)); then
    preview_status=5
elif preview="$(cd "$REPO_DIR" && "$PYTHON_BIN" -c "$PREVIEW_PY" "$CONFIG" \
    ${TRAIN_OVERRIDES[@]+"${TRAIN_OVERRIDES[@]}"} 2>/dev/null)"; then
    preview_status=0
else
    preview_status=$?
fi
case "$preview_status" in
    0)
        preview_output_dir="$(sed -n 1p <<<"$preview")"
        preview_checkpoint="$(sed -n 2p <<<"$preview")"
        if [[ -n "$preview_checkpoint" ]]; then
            RESUME_STATUS="resume: latest = $preview_checkpoint (newest complete checkpoint in $preview_output_dir)"
        else
            RESUME_STATUS="resume: latest = none yet (no complete checkpoint in $preview_output_dir): starts fresh"
        fi
        ;;
    4) die "$preview" ;;
    3) RESUME_STATUS="resume: latest at run time (theworld is not importable by $PYTHON_BIN here)" ;;
    5) RESUME_STATUS="resume: latest at run time (--skip-check: the config was not read here)" ;;
    *) RESUME_STATUS="resume: latest at run time (the config could not be read here)" ;;
esac

# ---- the batch script ----
sbatch_lines=(
    "--job-name=$JOB_NAME"
    "--nodes=$NODES"
    "--ntasks-per-node=1"
    "--gres=gpu:$GPU_TYPE:$GPU_COUNT"
    "--time=$TIME_LIMIT"
    "--output=$OUTPUT_ROOT/%x-%j.out"
)
[[ -z "$CPUS_PER_TASK" ]] || sbatch_lines+=("--cpus-per-task=$CPUS_PER_TASK")
[[ -z "$MEM" ]] || sbatch_lines+=("--mem=$MEM")
[[ -z "$PARTITION" ]] || sbatch_lines+=("--partition=$PARTITION")
[[ -z "$ACCOUNT" ]] || sbatch_lines+=("--account=$ACCOUNT")
if [[ -n "$EMAIL" ]]; then
    sbatch_lines+=("--mail-type=END,FAIL" "--mail-user=$EMAIL")
fi
((REQUEUE == 0)) || sbatch_lines+=("--requeue")

array_literal() { # the arguments as a bash array literal: (a b c)
    local out="(" item
    for item in "$@"; do
        out+="$(quoted "$item") "
    done
    printf '%s)' "${out% }"
}

generate_batch_script() {
    local line
    echo "#!/bin/bash"
    echo "# TheWorld training, generated by scripts/train_slurm.sh: $(basename "$CONFIG") on $NODES node(s) x" \
        "$GPU_COUNT $GPU_TYPE GPU(s)."
    echo "# Submitting this file again continues the run from the newest complete checkpoint in output_dir."
    for line in "${sbatch_lines[@]}"; do
        echo "#SBATCH $line"
    done
    echo
    echo "set -euo pipefail"
    echo
    echo "REPO_DIR=$(quoted "$REPO_DIR")"
    echo "PYTHON=$(quoted "$PYTHON_BIN")"
    echo "CONFIG=$(quoted "$CONFIG")"
    echo "ACCELERATE_CONFIG=$(quoted "$ACCELERATE_CONFIG")"
    echo "TOTAL_GPUS=$TOTAL_GPUS"
    echo "LAUNCHER_ARGS=$(array_literal ${LAUNCHER_ARGS[@]+"${LAUNCHER_ARGS[@]}"})"
    echo "TRAIN_ARGS=$(array_literal --config "$CONFIG" --resume_from_checkpoint latest \
        ${TRAIN_OVERRIDES[@]+"${TRAIN_OVERRIDES[@]}"})"
    # Everything below is written literally: it expands in the job, on the compute node, not here.
    cat <<'EOF'

cd "$REPO_DIR"
export PYTHONUNBUFFERED=1  # log lines reach the .out file as they happen
EOF
    if [[ -n "$PORT" ]]; then
        echo "MAIN_PROCESS_PORT=$PORT"
    else
        cat <<'EOF'
# A port derived from the job id: two jobs sharing a node do not try to bind the same rendezvous port.
MAIN_PROCESS_PORT=$((20000 + SLURM_JOB_ID % 20000))
EOF
    fi
    if ((NODES > 1)); then
        cat <<'EOF'
# Rank 0 of the whole job runs on the first host of the allocation; every node's launcher connects to it.
mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if ((${#HOSTS[@]} == 0)); then
    echo "error: scontrol show hostnames gave no host for SLURM_JOB_NODELIST=${SLURM_JOB_NODELIST}" >&2
    exit 1
fi
MAIN_PROCESS_IP="${HOSTS[0]}"
echo "job ${SLURM_JOB_ID}: ${SLURM_NNODES} nodes (${SLURM_JOB_NODELIST}), ${TOTAL_GPUS} processes," \
    "rendezvous ${MAIN_PROCESS_IP}:${MAIN_PROCESS_PORT}"

# One task per node, each running one accelerate launcher (= `accelerate launch`, run as a module of $PYTHON) for
# that node's GPUs. The single quotes matter: SLURM_NODEID is read by each task's own shell, so every node gets its
# own machine rank.
# srun is given the job's CPUs explicitly: since SLURM 22.05 a step does not always inherit --cpus-per-task.
exec srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    ${SLURM_CPUS_PER_TASK:+"--cpus-per-task=$SLURM_CPUS_PER_TASK"} \
    bash -c 'exec "$1" -m accelerate.commands.launch --machine_rank "$SLURM_NODEID" "${@:2}"' node-launcher \
    "$PYTHON" --num_machines "$SLURM_NNODES" --main_process_ip "$MAIN_PROCESS_IP" \
    --main_process_port "$MAIN_PROCESS_PORT" --num_processes "$TOTAL_GPUS" --config_file "$ACCELERATE_CONFIG" \
    ${LAUNCHER_ARGS[@]+"${LAUNCHER_ARGS[@]}"} scripts/train_hf.py "${TRAIN_ARGS[@]}"
EOF
    else
        cat <<'EOF'
echo "job ${SLURM_JOB_ID}: 1 node (${SLURM_JOB_NODELIST}), ${TOTAL_GPUS} process(es)"

# One launcher (= `accelerate launch`, run as a module of $PYTHON) starting one process per GPU.
# srun is given the job's CPUs explicitly: since SLURM 22.05 a step does not always inherit --cpus-per-task.
exec srun --nodes=1 --ntasks=1 --kill-on-bad-exit=1 ${SLURM_CPUS_PER_TASK:+"--cpus-per-task=$SLURM_CPUS_PER_TASK"} \
    "$PYTHON" -m accelerate.commands.launch --num_processes "$TOTAL_GPUS" --main_process_port "$MAIN_PROCESS_PORT" \
    --config_file "$ACCELERATE_CONFIG" ${LAUNCHER_ARGS[@]+"${LAUNCHER_ARGS[@]}"} scripts/train_hf.py "${TRAIN_ARGS[@]}"
EOF
    fi
}

SBATCH_COMMAND=(sbatch --parsable --export=ALL "$BATCH_FILE")

if ((DRY_RUN)); then
    echo "# ---- batch script (dry run: would be written to $BATCH_FILE) ----"
    generate_batch_script
    echo "# ---- launch command ----"
    command_line=""
    for arg in "${SBATCH_COMMAND[@]}"; do
        command_line+="$(quoted "$arg") "
    done
    echo "${command_line% }"
    echo "# ---- notes ----"
    echo "job name: $JOB_NAME"
    if [[ -z "$CPUS_PER_TASK" ]]; then
        echo "cpus: the partition's default per node task, shared by its $GPU_COUNT processes (see --cpus-per-task)"
    fi
    echo "$RESUME_STATUS"
    echo "HF token: $TOKEN_STATUS"
    echo "dry run: nothing written, nothing submitted"
    exit 0
fi

command -v sbatch >/dev/null || die "sbatch not found on PATH (run this on a SLURM login node, or use --dry-run)"
mkdir -p "$OUTPUT_ROOT"
generate_batch_script >"$BATCH_FILE"
echo "batch script: $BATCH_FILE"
echo "$RESUME_STATUS"
echo "HF token: $TOKEN_STATUS"
if ! job_id="$("${SBATCH_COMMAND[@]}")"; then
    printf '%s: sbatch failed (its message is above); the batch script is kept: %s\n' "$PROG" "$BATCH_FILE" >&2
    exit 1
fi
job_id="${job_id%%;*}" # --parsable prints "id" or "id;cluster"
echo "submitted job $job_id ($JOB_NAME); log: $OUTPUT_ROOT/$JOB_NAME-$job_id.out"
