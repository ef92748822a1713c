#!/usr/bin/env bash
# Fill the ignored .whl/ folder with the wheels a lent GPU machine needs beyond its image (CPython 3.12,
# manylinux x86_64), check them with pip's resolver for Python 3.12 and print what a device call carries.
#   bash tools/gpu_wheels.sh            # download what is missing, drop the rest, check, print the sizes
#   bash tools/gpu_wheels.sh --check    # only check and print
# Then name .whl in the device call's carry list (BENCHMARKS.md section 6). See bench/gpu_wheels.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "error: $PY does not exist: run make setup first (or set PYTHON to a Python with pip and torch)" >&2
  exit 2
fi
cd "$ROOT"
case "${1:-}" in
  "") exec "$PY" -m bench.gpu_wheels fill ;;
  --check) exec "$PY" -m bench.gpu_wheels check ;;
  *) echo "error: unknown option $1: give none (fill and check) or --check" >&2; exit 2 ;;
esac
