#!/usr/bin/env python
"""Train a detector from an mmdet 3.x config (mmdet's tools/train.py command line); see `--help`."""

from etcore.errors import run_cli
from finetune.train import main

if __name__ == "__main__":
    run_cli(main)
