#!/usr/bin/env bash
# Multi-GPU / multi-node pretraining with torchrun (DDP, env://; NCCL on GPUs, gloo on CPUs).
#
#   tools/dist_pretrain.sh GPUS [tools/pretrain.py arguments...]
#   tools/dist_pretrain.sh 8 --model convnext_tiny --data data/imagenet --curriculum efficienttrain \
#       --epochs 300 --work-dir work_dirs/convnext_t_et --batch-size 128 --accum-steps 4 --resume
#
# Multi-node: run it on every node with NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) set.
# --batch-size is per process: the effective batch is GPUS x NNODES x --batch-size x --accum-steps.
# Pass --resume so that a restarted job continues from WORK_DIR/last.pth (a no-op the first time).
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 GPUS [tools/pretrain.py arguments...]" >&2
    exit 2
fi
GPUS="$1"; shift
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node-rank="$NODE_RANK" --nproc-per-node="$GPUS" \
    --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \
    "$ROOT/tools/pretrain.py" "$@"
