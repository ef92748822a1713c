#!/usr/bin/env python
"""Compare fine-tuning runs: pretraining cost, COCO AP and ADE20K mIoU, each arm against the baseline; see --help."""

from etcore.errors import run_cli
from reporting.cli import main

if __name__ == "__main__":
    run_cli(main)
