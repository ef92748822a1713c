#!/usr/bin/env python
"""Search a low-frequency curriculum with real pretraining runs (EfficientTrain's greedy search); see `--help`."""

from etcore.errors import run_cli
from pretraining.search_cli import main

if __name__ == "__main__":
    run_cli(main)
