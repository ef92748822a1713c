"""Preemption of a pretraining run: a stop request becomes a resumable `last.pth` at the next update boundary.

The signal handling itself is `etcore.preemption` (installed by `pretraining.cli.main`). Here is what the
engine sees of it: `StopOnSignal`, a training callback that reports the request at every update boundary
(`TrainingCallback.stop_requested`), and `RunStopped`, which the engine raises once every rank has agreed
to stop and `last.pth` is written; the CLI turns it into one stderr line and `EXIT_PREEMPTED`.
"""

from __future__ import annotations

from pathlib import Path

from etcore.preemption import StopRequest
from pretraining.callbacks import TrainingCallback


class StopOnSignal(TrainingCallback):
    """Asks the run to stop when this process received SIGUSR1/SIGTERM (`etcore.preemption.stop_signals`)."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request

    def stop_requested(self) -> bool:
        return self.request.requested


class RunStopped(Exception):
    """The run stopped on request after writing `checkpoint`: `--resume` continues at `epoch`, micro-batch `step`."""

    def __init__(self, checkpoint: Path, epoch: int, step: int, updates: int) -> None:
        super().__init__(checkpoint, epoch, step, updates)
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step  # micro-batches of `epoch` already trained (0: the epoch starts afresh)
        self.updates = updates

    def __str__(self) -> str:
        where = f"epoch {self.epoch} step {self.step}" if self.step else f"the start of epoch {self.epoch}"
        return f"{self.checkpoint} (resumes at {where}, after {self.updates} updates)"
