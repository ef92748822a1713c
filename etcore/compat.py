"""Make mmengine 0.10.7 load its own checkpoints under torch >= 2.6 (`weights_only=True` by default).

mmengine's `Runner.save_checkpoint` pickles its message hub (`HistoryBuffer`, numpy scalars and arrays)
into every checkpoint, which the safe unpickler refuses. We allowlist exactly those globals with
`torch.serialization.add_safe_globals`; safe loading itself stays on everywhere.
"""
from __future__ import annotations

import numpy as np
import torch


def _numpy_globals() -> list:
    """The numpy reconstructors and dtype classes that pickled numpy scalars/arrays refer to."""
    from numpy.core.multiarray import _reconstruct, scalar

    dtype_classes = [type(np.dtype(name)) for name in (
        "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def _mmengine_globals() -> list:
    """mmengine objects stored in its checkpoints' `message_hub` state."""
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # mmengine is optional for pure pretraining users
        return []
    return [HistoryBuffer]


def safe_globals() -> list:
    """Every global this project allows the weights-only unpickler to build."""
    return _numpy_globals() + _mmengine_globals()


def install() -> None:
    """Register the allowlist once per process (idempotent)."""
    torch.serialization.add_safe_globals(safe_globals())


install()
