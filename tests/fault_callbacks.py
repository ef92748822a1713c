"""Fault injection for the reliability tests: training callbacks that kill the run (SIGKILL), make it diverge,
or ask it to stop the way a cluster does (SIGUSR1 / SIGTERM).

A fault spec is `sigkill@iter=N` (kill just before optimiser update N, 1-based over the whole run),
`sigkill@stage=K` (kill right after switching into stage K, 0-based), `sigkill@save=N` (kill during the
N-th checkpoint write of this process: temporary file written, not renamed) or `nan@iter=N` (the loss of
update N becomes NaN); several are comma-separated. The stop signals `sigusr1`, `sigterm` and
`sigusr1-group` (SIGUSR1 to this process's whole group, data-loader workers included, as Slurm signals
every process of a job step; start the run in its own session) go at `iter=N` (just before update N),
`micro=K` (during the loss of the K-th micro-batch of this process, so inside a gradient accumulation)
or `save=N` (inside the N-th checkpoint write); `@rank=R` limits a fault to rank R (`RANK`).
The signal reaches this process's handler before `os.kill` returns (CPython checks its own signals
there), so the point is exact. Run a pretraining with faults in a subprocess:

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


STOP_SIGNALS = {"sigusr1": signal.SIGUSR1, "sigterm": signal.SIGTERM, "sigusr1-group": signal.SIGUSR1}


def _send(action: str) -> None:
    if action.endswith("-group"):
        os.killpg(os.getpgid(0), STOP_SIGNALS[action])
    else:
        os.kill(os.getpid(), STOP_SIGNALS[action])


class FaultCallback(TrainingCallback):
    """Kills the process, poisons the loss or sends a stop signal at the points a spec names."""

    KINDS = {("sigkill", "iter"), ("sigkill", "stage"), ("sigkill", "save"), ("nan", "iter")} | {
        (action, point) for action in STOP_SIGNALS for point in ("iter", "micro", "save")
    }

    def __init__(self, spec: str) -> None:
        self.faults: dict[tuple[str, str], int] = {}
        rank = int(os.environ.get("RANK", "0"))
        for item in spec.split(","):
            action, rest = item.strip().split("@", 1)
            point, value = rest.split("@rank=")[0].split("=", 1)
            if (action, point) not in self.KINDS:
                raise ValueError(f"unknown fault {item!r}")
            if "@rank=" not in rest or int(rest.split("@rank=")[1]) == rank:
                self.faults[(action, point)] = int(value)
        self.saves = 0
        self.micro_batches = 0

    def _signal_at(self, point: str, count: int) -> None:
        for action in STOP_SIGNALS:
            if self.faults.get((action, point)) == count:
                _send(action)

    def on_stage_start(self, stage_index: int) -> None:
        if self.faults.get(("sigkill", "stage")) == stage_index:
            _kill()

    def before_update(self, update: int) -> None:
        if self.faults.get(("sigkill", "iter")) == update:
            _kill()
        self._signal_at("iter", update)

    def on_loss(self, update: int, loss: torch.Tensor) -> torch.Tensor:
        self.micro_batches += 1
        self._signal_at("micro", self.micro_batches)
        return loss * float("nan") if self.faults.get(("nan", "iter")) == update else loss

    def on_checkpoint_written(self) -> None:
        self.saves += 1
        if self.faults.get(("sigkill", "save")) == self.saves:
            _kill()
        self._signal_at("save", self.saves)


def fault_command(spec: str, pretrain_args: list[str]) -> list[str]:
    """The subprocess command that runs a pretraining with `spec`'s faults installed."""
    return [sys.executable, str(Path(__file__).resolve()), spec, "--", *pretrain_args]


if __name__ == "__main__":
    from etcore.errors import run_cli
    from pretraining.cli import main

    cut = sys.argv.index("--")
    callback = FaultCallback(sys.argv[1])
    run_cli(lambda argv: main(argv, callbacks=[callback]), sys.argv[cut + 1 :])
