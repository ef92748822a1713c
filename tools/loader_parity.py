#!/usr/bin/env python
"""Seed-paired parity of two loader modes (--lowfreq) on the demo data: top-1 and box AP; see `--help`."""

from embedded_demo.parity import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
