#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun.
#   tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Without GPUs it runs NUM_PROCS CPU processes (gloo).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG NUM_PROCS [tools/train.py options]" >&2
  exit 2
fi
CONFIG=$1
NPROCS=$2
shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
