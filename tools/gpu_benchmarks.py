#!/usr/bin/env python
"""Run the GPU benchmark set in one go and collect its JSON in one folder; see `--help`."""

from bench.gpu import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
