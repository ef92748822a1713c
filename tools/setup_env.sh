#!/usr/bin/env bash
# Create .venv and install the pinned stack; builds mmcv 2.1.0 with its ops once and caches the wheel.
# Idempotent: a complete .venv is checked and left alone. Logs go to build/logs/ (named on failure).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
CACHE="${ETDET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/efficienttrain-det}"
LOGS="$ROOT/build/logs"
STAMP="$VENV/.setup-complete"
REQS="$ROOT/requirements.lock"
mkdir -p "$LOGS" "$CACHE/wheels"

TORCH_VERSION=2.14.1
MMCV_VERSION=2.1.0
OPS_KIND=$([[ "${FORCE_CUDA:-0}" == "1" ]] && echo cuda || echo cpu)  # a CPU-ops wheel must never serve a CUDA build
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION-$OPS_KIND"

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] FAILED: %s\n[setup] full log: %s\n' "$1" "$2" >&2; tail -n 15 "$2" | sed 's/^/[setup]   | /' >&2; exit 1; }
run_logged() {  # run_logged NAME CMD...: quiet step with its own log file, clear message on failure
  local name="$1"; shift
  local log="$LOGS/setup-$name.log"
  local t0=$SECONDS
  "$@" >"$log" 2>&1 || fail "step '$name' ($*)" "$log"
  say "  $name done in $((SECONDS - t0))s"
}

want_hash="$(cat "$REQS" "$0" | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_hash" ]] && "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, timm, backbones, pretraining, finetune, reporting" 2>/dev/null; then
  say ".venv is complete and current (nothing to do)"
  exit 0
fi

command -v "$PY" >/dev/null || { echo "[setup] $PY not found: install Python 3.11 (or set PYTHON=/path/to/python3.11)" >&2; exit 2; }
T_START=$SECONDS
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

say "installing torch $TORCH_VERSION and the pinned stack (requirements.lock; a few minutes on a new machine)"
run_logged pip-tools "${PIP[@]}" install 'pip>=23,<27' 'setuptools>=70,<81' wheel ninja
run_logged stack "${PIP[@]}" install --no-compile -r "$REQS"

if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    duration=$([[ "$OPS_KIND" == cuda ]] && echo "much longer with CUDA kernels" || echo "7-12 minutes on 2 cores")
    say "building mmcv $MMCV_VERSION with compiled $OPS_KIND ops from source ($duration; once per machine)"
    say "  progress: tail -f $LOGS/setup-mmcv-build.log"
    shim="$ROOT/build/cxx20"; mkdir -p "$shim"
    # torch 2.14 headers need C++20 but mmcv's setup.py passes -std=c++17; the last -std wins.
    printf '#!/bin/sh\nexec g++ "$@" -std=c++20\n' >"$shim/g++"; chmod +x "$shim/g++"
    tmp="$(mktemp -d "$CACHE/wheels/.build-XXXX")"
    MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" CXX="$shim/g++" \
      run_logged mmcv-build "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION"
    mkdir -p "$WHEEL_DIR" && mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rm -rf "$tmp"
    wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)"
    say "  cached $wheel"
  else
    say "mmcv $MMCV_VERSION: using the cached wheel $wheel"
  fi
  run_logged mmcv-install "${PIP[@]}" install --no-deps "$wheel"
fi

say "installing this project in editable mode"
run_logged project "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
run_logged check "$VENV/bin/python" -c "import mmcv, mmdet, mmseg, timm; from mmcv.ops import RoIAlign, nms; import backbones, pretraining, finetune, reporting; print(mmcv.__version__, mmdet.__version__, mmseg.__version__, timm.__version__)"
echo "$want_hash" >"$STAMP"
say "ready in $((SECONDS - T_START))s: $VENV"
