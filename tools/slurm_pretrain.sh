#!/usr/bin/env bash
# Pretraining under Slurm: one task per GPU started by srun; tools/pretrain.py maps SLURM_PROCID,
# SLURM_NTASKS and SLURM_LOCALID to RANK, WORLD_SIZE and LOCAL_RANK (pretraining/distributed.py).
#
#   tools/slurm_pretrain.sh PARTITION JOB_NAME GPUS [tools/pretrain.py arguments...]
#   GPUS_PER_NODE=8 tools/slurm_pretrain.sh gpu et_convnext_t 16 --model convnext_tiny \
#       --data data/imagenet --curriculum efficienttrain --epochs 300 --work-dir work_dirs/convnext_t_et
#
# --resume is added, so a requeued job continues from WORK_DIR/last.pth. Extra srun options go in
# SRUN_ARGS (e.g. "--time=72:00:00 --requeue"); CPUS_PER_TASK defaults to 8 (set --workers to match).
set -euo pipefail

if [[ $# -lt 3 || ! "$3" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 PARTITION JOB_NAME GPUS [tools/pretrain.py arguments...]" >&2
    exit 2
fi
PARTITION="$1"; JOB_NAME="$2"; GPUS="$3"; shift 3
GPUS_PER_NODE="${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}"
CPUS_PER_TASK="${CPUS_PER_TASK:-8}"
SRUN_ARGS="${SRUN_ARGS:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
export MASTER_PORT="${MASTER_PORT:-$(( 20000 + RANDOM % 20000 ))}"

# MASTER_ADDR is the job's first host, resolved inside the allocation by each task.
# shellcheck disable=SC2086
exec srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres="gpu:$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    bash -c 'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"; exec "$0" "$@"' \
    "$PYTHON" "$ROOT/tools/pretrain.py" "$@" --resume
