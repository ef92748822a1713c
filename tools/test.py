#!/usr/bin/env python
"""Evaluate a trained detector on COCO (coco_metrics.json) or segmentor on ADE20K (seg_metrics.json), with mmdet's /
mmseg's tools/test.py command line; see `--help`."""

from etcore.errors import run_cli
from finetune.test import main

if __name__ == "__main__":
    run_cli(main)
