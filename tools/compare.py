#!/usr/bin/env python
"""Compare fine-tuning runs: pretraining cost and COCO AP, each curriculum against the baseline; see `--help`."""

from etcore.errors import run_cli
from reporting.cli import main

if __name__ == "__main__":
    run_cli(main)
