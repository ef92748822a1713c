"""Fault injection for the reliability tests: make a run die (SIGKILL) or diverge (NaN) at a chosen point.

Set ``ETRAIN_FAULT`` to one of
  ``sigkill@iter=N``   kill the process just before optimisation step N (1-based, counted over the
                       whole run including epochs done before a resume),
  ``sigkill@stage=K``  kill right after the run switched into stage K (0-based; pipeline rebuilt,
                       model resized, nothing trained yet at the new size),
  ``sigkill@save=N``   kill during the N-th checkpoint write of this process (temporary file written,
                       not yet renamed),
  ``nan@iter=N``       make the loss of step N NaN (exercises the divergence guard).
Unset (the normal case) every hook is a no-op. Several faults may be given, comma-separated.
"""
from __future__ import annotations

import os
import signal

from etcore.errors import UserInputError

ENV_VAR = "ETRAIN_FAULT"
_KINDS = {("sigkill", "iter"), ("sigkill", "stage"), ("sigkill", "save"), ("nan", "iter")}


def _parse() -> dict[tuple[str, str], int]:
    spec = os.environ.get(ENV_VAR, "").strip()
    faults: dict[tuple[str, str], int] = {}
    if not spec:
        return faults
    for item in spec.split(","):
        try:
            action, rest = item.strip().split("@", 1)
            point, value = rest.split("=", 1)
            key = (action, point)
            if key not in _KINDS:
                raise ValueError
            faults[key] = int(value)
        except ValueError:
            raise UserInputError(f"{ENV_VAR}={spec!r} is not understood: use e.g. sigkill@iter=5, sigkill@stage=1, "
                                 "sigkill@save=2 or nan@iter=3 (or unset it)") from None
    return faults


class FaultInjector:
    """Reads ``ETRAIN_FAULT`` once per run; the engine calls the hooks at the matching points."""

    def __init__(self) -> None:
        self.faults = _parse()
        self.saves = 0

    @staticmethod
    def _kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def before_step(self, step: int) -> None:
        if self.faults.get(("sigkill", "iter")) == step:
            self._kill()

    def poison_loss(self, step: int) -> bool:
        return self.faults.get(("nan", "iter")) == step

    def entered_stage(self, stage_index: int) -> None:
        if self.faults.get(("sigkill", "stage")) == stage_index:
            self._kill()

    def during_save(self) -> None:
        self.saves += 1
        if self.faults.get(("sigkill", "save")) == self.saves:
            self._kill()
