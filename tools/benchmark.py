#!/usr/bin/env python
"""Benchmarks: curriculum speedup vs theory, low-frequency op cost, backbone and detector timing; see `--help`."""

from bench.cli import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
