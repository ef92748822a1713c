"""Checkpoint files: safe reading (`weights_only=True`, safetensors) and atomic writing.

Every checkpoint the project reads goes through `load_checkpoint_file`; every file it writes that a
later run trusts goes through `save_atomic` (temporary file, fsync, rename), so a kill never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from etcore import compat  # noqa: F401  (allowlist must be installed before any torch.load)
from etcore.errors import UserInputError


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks: how provenance records name the exact checkpoint used."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a `.pth`/`.pt`/`.bin` (torch pickle, weights only) or `.safetensors` file.

    Raises `UserInputError` for a missing, truncated or unsafe file, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} does not exist: check the path (or train/convert it first)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserInputError(
                f"checkpoint {path} is not a readable safetensors file ({err}): re-download or re-export it"
            ) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            detail = next((ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln), reason)
            raise UserInputError(
                f"checkpoint {path} holds objects that are not plain tensors/containers "
                f"({detail}); refused for safety: only load checkpoints from sources you trust, "
                "re-saved as a plain state dict or safetensors"
            ) from None
        raise UserInputError(
            f"checkpoint {path} is corrupt or truncated ({reason}): delete it and re-create or re-download it"
        ) from None
    except Exception as err:  # noqa: BLE001  (the unpickler raises IndexError, KeyError ... on garbage bytes)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserInputError(
            f"checkpoint {path} is corrupt or truncated ({reason}): delete it and re-create or re-download it"
        ) from None


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a `.safetensors` file's header ({} when it has none or is not one)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise UserInputError(
            f"checkpoint {path} is not a readable safetensors file ({err}): re-download or re-export it"
        ) from None


def save_atomic(obj: Any, path: str | os.PathLike, writer: Callable[[Any, str], None] | None = None) -> Path:
    """Write `obj` to `path` through a temporary file in the same folder, fsync, then rename.

    `writer(obj, tmp_path)` defaults to `torch.save`; pass e.g. a JSON writer for other files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        (writer or (lambda o, p: torch.save(o, p)))(obj, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Atomically write a text file (JSON, YAML, markdown) with the same guarantees as `save_atomic`."""

    def _write(data: str, tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(data)

    return save_atomic(text, path, writer=_write)
