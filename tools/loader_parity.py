#!/usr/bin/env python
"""Seed-paired parity of two loader modes (--lowfreq) on the demo data: top-1 and box AP; see `--help`."""

from etcore.errors import run_cli
from study_runner.parity import main

if __name__ == "__main__":
    run_cli(main)
