"""User-facing errors: one line naming the input and the fix, exit code 2, no traceback.

Tracebacks are for bugs; anything a user can cause (a bad path, a malformed file, an unknown model
name) raises `UserInputError` and the command-line entry points wrap `main` in `run_cli`.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Sequence

EXIT_USER_ERROR = 2
# A run stopped on request (SIGUSR1/SIGTERM: a cluster's warning before its time limit, or a preemption) after it
# saved a checkpoint to resume from: EX_TEMPFAIL of sysexits.h, "try again"; a Slurm batch script requeues on it.
EXIT_PREEMPTED = 75


class UserInputError(Exception):
    """An error caused by the user's input; the message names the input and how to fix it."""


def fail(message: str) -> NoReturn:
    """Print one `error:` line on stderr and exit with code 2."""
    first_line = " ".join(str(message).split())
    print(f"error: {first_line}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR)


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a command-line `main(argv)`; a `UserInputError` becomes one stderr line and exit code 2."""
    try:
        result = main(argv)
    except UserInputError as err:
        fail(str(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130)
    raise SystemExit(result if isinstance(result, int) else 0)
