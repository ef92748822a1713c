#!/usr/bin/env python
"""Convert a pretraining or release checkpoint into a clean timm-layout file with provenance; see `--help`."""

from backbones.convert import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
