#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): pytest -m gpu, then tools/gpu_benchmarks.py, one report in DIR
# (gpu_check.json and gpu_check.txt, default work_dirs/gpu_check); every run works in a fresh folder.
#   bash tools/gpu_check.sh [--tier 1|2|all] [--out DIR]        # one CUDA GPU, after FORCE_CUDA=1 make setup
#   bash tools/gpu_check.sh --lent [--tier 1|2] --out "$OUT"    # the device tool's machine: its python3 + .whl/
#   bash tools/gpu_check.sh --dry-run [--tier ...] [--out DIR]  # CPU, tiny sizes: the same tests and code
#   LENT_PYTHON=/path/python3.12 bash tools/gpu_check.sh --dry-run --as-lent   # rehearse the lent machine here
# BENCHMARKS.md section 6 has the device call and what a run there reports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ " $* " == *" --lent "* ]]; then
  PY="${LENT_PYTHON:-python3}"  # the lent image's Python; the project is not installed there
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
  PY="${PYTHON:-$ROOT/.venv/bin/python}"
  if [[ ! -x "$PY" ]]; then
    echo "error: $PY does not exist: run make setup first (FORCE_CUDA=1 make setup on a GPU machine)" >&2
    exit 2
  fi
fi
exec "$PY" -m bench.gpu_check "$@"
