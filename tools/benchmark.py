#!/usr/bin/env python
"""Benchmarks: curriculum speedup vs theory, low-frequency op cost, backbone and detector timing; see `--help`."""
import sys
from pathlib import Path

# Python puts this script's folder first on sys.path; keep the repository's packages importable without it.
_TOOLS = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _TOOLS]
sys.path.insert(0, str(_TOOLS.parent))

from etcore.errors import run_cli  # noqa: E402
from pretrain.bench_cli import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
