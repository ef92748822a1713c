"""Run one of the project's command lines as a process: its log, its time limit, its share of the threads.

One place for what the demo, the study runner's local executor and the GPU check all need: the step is a
copyable command line, its output goes to a log (or the terminal), it may be cut off after a time limit
(the whole process group, so data-loader workers go with it), and it may be given a number of CPU threads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

TIMED_OUT = 124  # the exit code `timeout(1)` gives a command it stopped; kept so logs read the same
_QUIET = "ignore:pkg_resources is deprecated"  # mmengine imports pkg_resources; nothing a user can act on


@dataclass(frozen=True)
class ProcessResult:
    """What one run of a command line did: its exit code (124 when cut off), seconds and log."""

    command: tuple[str, ...]
    rc: int
    seconds: float
    log: Path | None

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 3) -> str:
        """The last lines of the log, joined with ' | ' (empty without a log)."""
        if self.log is None or not self.log.is_file():
            return ""
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])


def tool_env(threads: int | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child tool: unbuffered output, quiet about pkg_resources, its threads."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), _QUIET])),
    }
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(extra or {})
    return env


def python_command(args: Sequence[str]) -> list[str]:
    """`python tools/x.py ...` with this interpreter: the form every step of the project takes."""
    return [sys.executable, *args]


def run_process(
    command: Sequence[str],
    *,
    cwd: Path,
    log: Path | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    env: Mapping[str, str] | None = None,
    append: bool = False,
) -> ProcessResult:
    """Run `command` in `cwd`; stdout and stderr go to `log` (else the terminal). Never raises on a bad exit.

    After `timeout` seconds the whole process group gets SIGTERM, then SIGKILL 10 s later, and rc is 124.
    """
    started = time.perf_counter()
    handle = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "a" if append else "w", encoding="utf-8")
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=tool_env(threads, env),
            stdout=handle,
            stderr=subprocess.STDOUT if handle else None,
            start_new_session=timeout is not None,  # its own group, so the limit reaches its workers too
        )
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            rc = TIMED_OUT
        except BaseException:  # Ctrl-C or a stopped lane: take the child down with us
            _stop_group(process)
            raise
    finally:
        if handle is not None:
            handle.close()
    return ProcessResult(tuple(str(c) for c in command), rc, round(time.perf_counter() - started, 1), log)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process (its group when it has one of its own), then SIGKILL if it is still there after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        try:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
