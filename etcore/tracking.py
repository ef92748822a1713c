"""Experiment tracking backends (`--vis tensorboard|wandb`), shared by pretraining and fine-tuning.

One name per backend for every tool: `tools/pretrain.py --vis` writes through TensorBoard's own writer or
the wandb client, `tools/train.py --vis` adds mmengine's vis backend of the same name to the config's
`visualizer.vis_backends`. A backend whose package is missing is one `error:` line that says how to install
it; W&B is optional and never installed by `make setup`.
"""

from __future__ import annotations

import importlib.util

from etcore.errors import UserInputError

VIS_BACKENDS = ("tensorboard", "wandb")
MMENGINE_VIS_BACKENDS = {"tensorboard": "TensorboardVisBackend", "wandb": "WandbVisBackend"}
WANDB_PROJECT = "efficienttrain-det"  # the W&B project when WANDB_PROJECT is not set
_INSTALL = {
    "tensorboard": "tensorboard is pinned in requirements.lock: run `make setup` (or pip install tensorboard)",
    "wandb": "pip install wandb, then `wandb login` (or set WANDB_MODE=offline to log without an account)",
}


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def require_vis_backends(names: list[str] | tuple[str, ...], flag: str = "--vis") -> None:
    """Refuse an unknown backend, or one whose package is not installed, with one line that says what to do."""
    for name in names:
        if name not in VIS_BACKENDS:
            raise UserInputError(f"{flag} {name!r} is not a tracking backend: use {' or '.join(VIS_BACKENDS)}")
        if not _installed(name):
            raise UserInputError(f"{flag} {name} needs the {name} package, which is not installed: {_INSTALL[name]}")
