#!/usr/bin/env python
"""Re-draw the demo's report.md (table and plots) from its finished runs; see `--help`."""

from etcore.errors import run_cli
from reporting.report import main

if __name__ == "__main__":
    run_cli(main)
