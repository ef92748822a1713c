"""Fault injection for the reliability tests: training callbacks that kill the run (SIGKILL) or make it diverge.

A fault spec is `sigkill@iter=N` (kill just before optimiser update N, 1-based over the whole run),
`sigkill@stage=K` (kill right after switching into stage K, 0-based), `sigkill@save=N` (kill during the
N-th checkpoint write of this process: temporary file written, not renamed) or `nan@iter=N` (the loss of
update N becomes NaN); several are comma-separated. Run a pretraining with faults in a subprocess:

    python tests/fault_callbacks.py SPEC -- <tools/pretrain.py arguments>
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

from pretraining.callbacks import TrainingCallback  # noqa: E402


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultCallback(TrainingCallback):
    """Kills the process or poisons the loss at the points a spec names."""

    KINDS = {("sigkill", "iter"), ("sigkill", "stage"), ("sigkill", "save"), ("nan", "iter")}

    def __init__(self, spec: str) -> None:
        self.faults: dict[tuple[str, str], int] = {}
        for item in spec.split(","):
            action, rest = item.strip().split("@", 1)
            point, value = rest.split("=", 1)
            if (action, point) not in self.KINDS:
                raise ValueError(f"unknown fault {item!r}")
            self.faults[(action, point)] = int(value)
        self.saves = 0

    def on_stage_start(self, stage_index: int) -> None:
        if self.faults.get(("sigkill", "stage")) == stage_index:
            _kill()

    def before_update(self, update: int) -> None:
        if self.faults.get(("sigkill", "iter")) == update:
            _kill()

    def on_loss(self, update: int, loss: torch.Tensor) -> torch.Tensor:
        return loss * float("nan") if self.faults.get(("nan", "iter")) == update else loss

    def on_checkpoint_written(self) -> None:
        self.saves += 1
        if self.faults.get(("sigkill", "save")) == self.saves:
            _kill()


def fault_command(spec: str, pretrain_args: list[str]) -> list[str]:
    """The subprocess command that runs a pretraining with `spec`'s faults installed."""
    return [sys.executable, str(Path(__file__).resolve()), spec, "--", *pretrain_args]


if __name__ == "__main__":
    from etcore.errors import run_cli
    from pretraining.cli import main

    cut = sys.argv.index("--")
    callback = FaultCallback(sys.argv[1])
    run_cli(lambda argv: main(argv, callbacks=[callback]), sys.argv[cut + 1 :])
