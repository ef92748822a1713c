#!/usr/bin/env python
"""The embedded demo: pretrain two ways, fine-tune two detectors from each, compare; see `--help`."""

from embedded_demo.pipeline import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
