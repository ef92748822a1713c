#!/usr/bin/env python
"""The embedded demo (`make demo`): the shipped demo study, run here; see `--help`."""

from etcore.errors import run_cli
from study_runner.demo import main

if __name__ == "__main__":
    run_cli(main)
