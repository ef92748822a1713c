#!/usr/bin/env bash
# One GPU check of the whole GPU path (mmcv CUDA ops, Cascade Mask R-CNN and RetinaNet at full size,
# curriculum pretraining with a stage switch and resume, tools/gpu_benchmarks.py) in under 10 minutes:
#   bash tools/gpu_check.sh [--out DIR]            # on a machine with one CUDA GPU, after FORCE_CUDA=1 make setup
#   bash tools/gpu_check.sh --dry-run [--out DIR]  # CPU, tiny sizes: the same steps and code
# Writes DIR/gpu_check.json (default work_dirs/gpu_check) and prints a short table. See bench/gpu_check.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "error: $PY does not exist: run make setup first (FORCE_CUDA=1 make setup on a GPU machine)" >&2
  exit 2
fi
cd "$ROOT"
exec "$PY" -m bench.gpu_check "$@"
