#!/usr/bin/env python
"""Plan, run, follow and cancel a study (pretrainings, fine-tunes, report) here or on Slurm; see `--help`."""

from etcore.errors import run_cli
from study_runner.cli import main

if __name__ == "__main__":
    run_cli(main)
