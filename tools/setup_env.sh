#!/usr/bin/env bash
# Create .venv and install the pinned stack; builds mmcv 2.1.0 with its ops once and caches the wheel.
# Idempotent: a complete .venv is checked and left alone. Logs go to build/logs/ (named on failure).
#
# FORCE_CUDA=1 builds mmcv's CUDA ops instead (README: "Installing on a GPU machine"):
#   TORCH_CUDA_ARCH_LIST  GPUs to build for, e.g. "9.0" or "8.0;9.0" (default: the GPUs this machine has;
#                         required on a machine without one)
#   CUDA_TOOLKIT          index (default): nvcc & headers from NVIDIA's packages on the package index, the
#                         release torch pins, installed into a build-only folder in the cache (not .venv);
#                         system: the toolkit at CUDA_HOME (or the nvcc on PATH)
#   MAX_JOBS              parallel compile jobs (default: cores, fewer if memory is short)
# The CUDA wheel is cached in a folder that names CUDA version and archs, and carries them in its build tag.
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
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
OPS_KIND=$([[ "${FORCE_CUDA:-0}" == "1" ]] && echo cuda || echo cpu)  # a CPU-ops wheel must never serve a CUDA build
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION-$OPS_KIND"  # CUDA: set from the build plan below
OPS_MARKER="$VENV/.mmcv-ops"  # which cached wheel the venv's mmcv came from
CUDA_TOOLKIT="${CUDA_TOOLKIT:-index}"
if [[ "$OPS_KIND" == cuda && "$CUDA_TOOLKIT" != index && "$CUDA_TOOLKIT" != system ]]; then
  echo "error: CUDA_TOOLKIT=$CUDA_TOOLKIT is not known: use index (nvcc from the package index, the default) or system (CUDA_HOME)" >&2
  exit 2
fi

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] FAILED: %s\n[setup] full log: %s\n' "$1" "$2" >&2; tail -n 15 "$2" | sed 's/^/[setup]   | /' >&2; exit 1; }
run_logged() {  # run_logged NAME CMD...: quiet step with its own log file, clear message on failure
  local name="$1"; shift
  local log="$LOGS/setup-$name.log"
  local t0=$SECONDS
  "$@" >"$log" 2>&1 || fail "step '$name' ($*)" "$log"
  say "  $name done in $((SECONDS - t0))s"
}

want_hash="$({ cat "$REQS" "$0"; [[ "$OPS_KIND" == cpu ]] || echo "cuda ${TORCH_CUDA_ARCH_LIST:-} $CUDA_TOOLKIT"; } | sha256sum | cut -c1-16)"
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

cxx20_shim() {  # torch 2.14 headers need C++20 but mmcv's setup.py passes -std=c++17; the last -std wins.
  local shim="$ROOT/build/cxx20"; mkdir -p "$shim"
  printf '#!/bin/sh\nexec g++ "$@" -std=c++20\n' >"$shim/g++"; chmod +x "$shim/g++"
  echo "$shim/g++"
}

build_cuda_wheel() {  # mmcv's CUDA ops from the patched sdist, with the toolkit the plan names
  local home toolkit="$CACHE/cuda-toolkit-$TOOLKIT_VERSION" src="$ROOT/build/mmcv-src-$WHEEL_ID"
  local tmp log="$LOGS/setup-mmcv-cuda-build.log" t0
  if [[ "$CUDA_TOOLKIT" == system ]]; then
    home="$("$VENV/bin/python" -m bench.cuda_build toolkit --system --cuda "$TORCH_CUDA")" || exit 2
  else
    if [[ ! -f "$toolkit/.complete" ]]; then
      say "installing NVIDIA's CUDA $TORCH_CUDA compiler packages from the package index into $toolkit (build only)"
      rm -rf "$toolkit"
      run_logged cuda-toolkit "${PIP[@]}" install --no-compile --target "$toolkit" "$TOOLKIT_REQUIREMENT"
      touch "$toolkit/.complete"
    fi
    home="$("$VENV/bin/python" -m bench.cuda_build toolkit "$toolkit" --cuda "$TORCH_CUDA")" || exit 2
  fi
  say "  CUDA_HOME=$home ($("$home/bin/nvcc" --version | grep -o 'V[0-9][0-9.]*'))"
  if [[ ! -f "$src/mmcv-$MMCV_VERSION/setup.py" ]]; then  # kept after a failed build: ninja resumes it
    rm -rf "$src"; mkdir -p "$src"
    run_logged mmcv-sdist "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation -d "$src" "mmcv==$MMCV_VERSION"
    echo "$MMCV_SDIST_SHA256  $src/mmcv-$MMCV_VERSION.tar.gz" | sha256sum --check --status \
      || { echo "[setup] FAILED: $src/mmcv-$MMCV_VERSION.tar.gz is not the mmcv $MMCV_VERSION sdist (sha256 differs)" >&2; exit 1; }
    tar -xzf "$src/mmcv-$MMCV_VERSION.tar.gz" -C "$src"
  fi
  "$VENV/bin/python" -m bench.cuda_build patch "$src/mmcv-$MMCV_VERSION" | sed 's/^/[setup]   patch /' || exit 2
  say "building mmcv $MMCV_VERSION with CUDA $TORCH_CUDA ops for $ARCH_LIST ($ARCH_SOURCE), ${MAX_JOBS:-$DEFAULT_JOBS} jobs"
  say "  (an hour or more on 2 cores; once per machine) progress: tail -f $log"
  tmp="$(mktemp -d "$CACHE/wheels/.build-XXXX")"
  t0=$SECONDS
  if ! (cd "$src/mmcv-$MMCV_VERSION" && env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH_LIST" \
        CUDA_HOME="$home" CUDA_PATH="$home" MAX_JOBS="${MAX_JOBS:-$DEFAULT_JOBS}" CXX="$(cxx20_shim)" \
        "${PIP[@]}" wheel --no-build-isolation --no-deps -v -w "$tmp" .) >"$log" 2>&1; then
    rm -rf "$tmp"
    first="$(grep -m1 -E 'error|Error' "$log" | cut -c1-300 || true)"
    echo "[setup] FAILED: mmcv CUDA build: ${first:-see the log}" >&2
    echo "[setup] full log: $log" >&2
    exit 1
  fi
  "$VENV/bin/python" -m wheel tags --remove --build "$BUILD_TAG" "$tmp"/mmcv-*.whl >/dev/null
  mkdir -p "$WHEEL_DIR" && mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rm -rf "$tmp" "$src"
  say "  mmcv-cuda-build done in $((SECONDS - t0))s"
}

if [[ "$OPS_KIND" == cuda ]]; then
  # archs, toolkit release and wheel id, checked (one error line, exit 2, for a CPU torch or no arch list)
  plan="$(cd "$ROOT" && "$VENV/bin/python" -m bench.cuda_build plan --torch-version "$TORCH_VERSION" \
          --mmcv-version "$MMCV_VERSION")" || exit 2
  eval "$plan"
  WHEEL_DIR="$CACHE/wheels/$WHEEL_ID"
  if [[ "$(cat "$OPS_MARKER" 2>/dev/null)" != "$WHEEL_ID" ]] || ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
    wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
      build_cuda_wheel
      wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)"
      say "  cached $wheel ($(du -h "$wheel" | cut -f1))"
    else
      say "mmcv $MMCV_VERSION: using the cached CUDA wheel $wheel"
    fi
    run_logged mmcv-install "${PIP[@]}" install --no-deps --force-reinstall "$wheel"
    echo "$WHEEL_ID" >"$OPS_MARKER"
  fi
elif ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then  # any mmcv with ops (CPU or CUDA) is kept
  wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    say "building mmcv $MMCV_VERSION with compiled cpu ops from source (7-12 minutes on 2 cores; once per machine)"
    say "  progress: tail -f $LOGS/setup-mmcv-build.log"
    shim="$(cxx20_shim)"
    tmp="$(mktemp -d "$CACHE/wheels/.build-XXXX")"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" CXX="$shim" \
      run_logged mmcv-build "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION"
    mkdir -p "$WHEEL_DIR" && mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rm -rf "$tmp"
    wheel="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)"
    say "  cached $wheel"
  else
    say "mmcv $MMCV_VERSION: using the cached wheel $wheel"
  fi
  run_logged mmcv-install "${PIP[@]}" install --no-deps --force-reinstall "$wheel"
  basename "$WHEEL_DIR" >"$OPS_MARKER"
fi

say "installing this project in editable mode"
run_logged project "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
run_logged check "$VENV/bin/python" -c "import mmcv, mmdet, mmseg, timm; from mmcv.ops import RoIAlign, nms; import backbones, pretraining, finetune, reporting; print(mmcv.__version__, mmdet.__version__, mmseg.__version__, timm.__version__)"
echo "$want_hash" >"$STAMP"
say "ready in $((SECONDS - T_START))s: $VENV"
