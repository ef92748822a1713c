"""Benchmarks: curriculum speedup against theory, low-frequency op and loader cost, backbone and detector timing,
and the GPU path (the CUDA build's plan and patches, `tools/gpu_check.sh`).

Measured side by side in one process and reported as ratios; nothing here asserts a time (tests only
check that the code paths run). `tools/benchmark.py`, `tools/gpu_benchmarks.py` and `tools/gpu_check.sh`
are its command lines.
"""
