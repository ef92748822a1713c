#!/usr/bin/env python
"""Curriculum pretraining of a timm model (baseline / EfficientTrain / EfficientTrain++); see `--help`."""

from etcore.errors import run_cli
from pretraining.cli import main

if __name__ == "__main__":
    run_cli(main)
