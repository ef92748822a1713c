"""Shared plumbing for `backbones` and `pretrain`: user-facing errors, safe checkpoint I/O, mmengine compat.

Importing this package installs the torch safe-loading allowlist (see `etcore.compat`).
"""
from etcore import compat as _compat  # noqa: F401  (side effect: allowlist for weights_only loading)
from etcore.errors import UserInputError, run_cli

__all__ = ["UserInputError", "run_cli"]
