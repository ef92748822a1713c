"""Hook points of the training loop: the engine calls every installed callback at fixed moments.

`tools/pretrain.py` installs one: `pretraining.preemption.StopOnSignal`, which asks the run to stop (saved,
resumable) after SIGUSR1/SIGTERM. Tests install callbacks that kill the process, poison the loss or send
such a signal at a chosen point (`tests/fault_callbacks.py`), to prove that a killed or stopped run
resumes exactly and that a diverged run stops cleanly. Callers pass them to
`pretraining.cli.main(argv, callbacks=...)`.
"""

from __future__ import annotations

from typing import Sequence

import torch


class TrainingCallback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_stage_start(self, stage_index: int) -> None:
        """The run switched into stage `stage_index` (0-based): pipeline rebuilt, nothing trained yet."""

    def before_update(self, update: int) -> None:
        """Optimiser update `update` (1-based, counted over the whole run) is about to start."""

    def on_loss(self, update: int, loss: torch.Tensor) -> torch.Tensor:
        """The loss of update `update`, before the finiteness check and backward; return it (or a replacement)."""
        return loss

    def on_checkpoint_written(self) -> None:
        """A checkpoint's temporary file is complete and not yet renamed into place."""

    def stop_requested(self) -> bool:
        """Asked at every update boundary and after every epoch's last.pth: True stops the run there, resumable."""
        return False


class CallbackList(TrainingCallback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Sequence[TrainingCallback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_stage_start(self, stage_index: int) -> None:
        for callback in self.callbacks:
            callback.on_stage_start(stage_index)

    def before_update(self, update: int) -> None:
        for callback in self.callbacks:
            callback.before_update(update)

    def on_loss(self, update: int, loss: torch.Tensor) -> torch.Tensor:
        for callback in self.callbacks:
            loss = callback.on_loss(update, loss)
        return loss

    def on_checkpoint_written(self) -> None:
        for callback in self.callbacks:
            callback.on_checkpoint_written()

    def stop_requested(self) -> bool:
        return any([callback.stop_requested() for callback in self.callbacks])
