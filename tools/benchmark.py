#!/usr/bin/env python
"""Benchmarks: curriculum speedup vs theory, low-frequency op cost, backbone and detector timing; see `--help`."""
from etcore.scripts import use_packages_not_tools

use_packages_not_tools(__file__)

from etcore.errors import run_cli  # noqa: E402
from pretrain.bench_cli import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
