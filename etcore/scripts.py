"""Start-up for the command lines in tools/.

Python puts a script's own folder first on `sys.path`; there `tools/pretrain.py` would shadow the
`pretrain` package for every tool that imports it. Each tool calls `use_packages_not_tools(__file__)`
before importing the project's packages.
"""
from __future__ import annotations

import sys
from pathlib import Path


def use_packages_not_tools(script: str) -> None:
    """Drop the script's folder from `sys.path` (idempotent) so `import pretrain` finds the package."""
    folder = Path(script).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != folder]
