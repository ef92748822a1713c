"""Output folders: say in one line when a work dir cannot be created or written, before any work starts.

Checked without creating anything, so a run that fails on another input leaves no empty folder. Works for
root too, where permission bits do not stop writes: a path under a regular file, or a folder on a
read-only file system (`os.access` reports EROFS), is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from etcore.errors import UserInputError


def check_writable_dir(path: str | os.PathLike, flag: str = "--work-dir") -> None:
    """Raise `UserInputError` unless `path` is, or can be created as, a folder this process may write."""
    target = Path(path).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise UserInputError(
            f"{flag} {path} cannot be created: {existing} is a file, not a folder: choose another {flag}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(
            f"{flag} {path} is not writable ({existing} is read-only for this user or "
            f"file system): choose another {flag}"
        )
