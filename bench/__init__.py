"""Benchmarks: curriculum speedup against theory, low-frequency op and loader cost, backbone and detector timing.

Measured side by side in one process and reported as ratios; nothing here asserts a time (tests only
check that the code paths run). `tools/benchmark.py` and `tools/gpu_benchmarks.py` are its command lines.
"""
