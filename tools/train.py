#!/usr/bin/env python
"""Train a detector (mmdet 3.x config) or a semantic segmentor (mmseg 1.x config), with mmdet's / mmseg's
tools/train.py command line; see `--help`."""

from etcore.errors import run_cli
from finetune.train import main

if __name__ == "__main__":
    run_cli(main)
