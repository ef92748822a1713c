"""GPU-path checks and benchmarks, driven through the project's command lines (not its packages)."""
