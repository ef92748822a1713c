"""Shared plumbing for `backbones` and `pretrain`: user-facing errors, safe checkpoint I/O, mmengine compat.

Kept free of heavy imports so command-line tools start fast: `etcore.errors` needs no torch.
`etcore.compat` (the torch safe-loading allowlist) is installed by `etcore.checkpoint_io` and by
`import backbones` / `import pretrain`.
"""

from etcore.errors import UserInputError, run_cli

__all__ = ["UserInputError", "run_cli"]
