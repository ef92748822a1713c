#!/usr/bin/env python
"""Curriculum pretraining of a timm model (baseline / EfficientTrain / EfficientTrain++); see `--help`."""
import sys
from pathlib import Path

# Python puts this script's folder first on sys.path, where this very file would shadow the `pretrain` package.
_TOOLS = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _TOOLS]

from etcore.errors import run_cli  # noqa: E402
from pretrain.cli import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
