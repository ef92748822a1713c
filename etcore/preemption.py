"""Stop requests from a cluster: SIGUSR1 / SIGTERM only set a flag, which training reads at a safe point.

Slurm sends SIGUSR1 before a job's time limit (`sbatch --signal=USR1@SECONDS`) and SIGTERM when it
preempts or requeues a job. A handler that saved or exited on the spot could cut a checkpoint write or a
collective in half, so `stop_signals()` installs handlers that only record the request; the training loops
(`pretraining.preemption`, `finetune.preemption`) look at it at their next step boundary, save a
resumable checkpoint there and return `EXIT_PREEMPTED`. The previous handlers come back on exit, because
the tools' `main` may be called in-process (tests, the curriculum search).

Data-loader worker processes forked while the handlers are installed inherit them, so a signal sent to
the whole job (every process of a Slurm step) does not kill them: it only sets their own copy of the flag.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Sequence

from etcore.errors import EXIT_PREEMPTED

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1, signal.SIGTERM)


class StopRequest:
    """Whether (and by which signal) this process was asked to stop; set by the handlers, read by the loop."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def set(self, signum: int, frame: Any = None) -> None:
        """The signal handler: remember the first request; nothing else is safe to do inside a handler."""
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Install flag-setting handlers for `signals` for the duration of the block, then restore the old ones.

    Outside the main thread Python cannot install handlers; the request is then never set (the run
    behaves as before: a signal does what the previous handler does).
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in signals}
    try:
        for signum in signals:
            signal.signal(signum, request.set)
        yield request
    finally:
        for signum, handler in previous.items():
            # None: a handler installed from C, which Python cannot reinstall; the default is the closest
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def stopped_line(request: StopRequest, saved: str, resume: str) -> str:
    """The one stderr line of a run that stopped on request: what it saved and how to continue."""
    cause = request.signal_name or "a stop signal to another rank"  # ranks agree to stop; one may be signalled
    return f"stopped on {cause}: saved {saved}; continue with {resume} (exit code {EXIT_PREEMPTED})"
