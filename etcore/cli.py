"""Command-line plumbing shared by every entry point: an argparse parser whose usage errors are user errors.

argparse prints usage and exits with code 2 by itself; the project wants every input error as one
`error:` line naming the input and the fix, so the parser raises `UserInputError` and `run_cli` prints it.
"""

from __future__ import annotations

import argparse

from etcore.errors import UserInputError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `UserInputError` line (exit 2) like every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserInputError(f"{message} (see {self.prog} --help)")
