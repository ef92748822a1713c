#!/usr/bin/env python
"""Generate the embedded demo dataset (ImageNet-style folders and a COCO instance set); see `--help`."""

from embedded_demo.data import main
from etcore.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
