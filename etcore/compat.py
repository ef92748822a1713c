"""Make mmengine 0.10.7 load its own checkpoints under torch >= 2.6 (`weights_only=True` by default).

mmengine's `Runner.save_checkpoint` pickles its message hub (`HistoryBuffer`, numpy scalars and arrays)
into every checkpoint, which the safe unpickler refuses. We allowlist exactly those globals with
`torch.serialization.add_safe_globals`; safe loading itself stays on everywhere.

One global needs care: protocol-2 pickles refer to `HistoryBuffer.min` (and the other statistics
methods) as `builtins.getattr(HistoryBuffer, 'min')`. Allowlisting `getattr` itself would let a crafted
file reach any attribute (and so `os.system`), so we register a stand-in under that name that resolves
only HistoryBuffer's registered statistics methods and refuses everything else.

Official ImageNet training codes (EfficientTrain, ConvNeXt, DeiT, Swin) pickle a little more than tensors
next to the weights: their command-line `argparse.Namespace` and Swin's yacs `CfgNode` config. Both are
allowlisted here so their checkpoints load as they are (docs/RELIABILITY.md lists each global, where it
comes from and why it is harmless). Their optimizer, scaler and scheduler states are plain dicts and need
nothing. yacs is not a dependency: a stand-in is registered under its name (`yacs_config_node`).
"""

from __future__ import annotations

import argparse
import pickle
from collections import OrderedDict

import numpy as np
import torch


def _numpy_globals() -> list:
    """The numpy reconstructors and dtype classes that pickled numpy scalars/arrays refer to."""
    from numpy.core.multiarray import _reconstruct, scalar

    dtype_classes = [
        type(np.dtype(name))
        for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


_BUILTIN_STATISTICS = ("min", "max", "mean", "current")


def history_buffer_method(owner: object, name: str) -> object:
    """Stand-in for `getattr` during safe unpickling: only `HistoryBuffer.<statistics method>`."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # mmengine registers its built-in statistics in HistoryBuffer.__init__, so a fresh process may not
    # have them in _statistics_methods yet: accept those four names as well as any registered since.
    if owner is HistoryBuffer and name in {*_BUILTIN_STATISTICS, *HistoryBuffer._statistics_methods}:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"refused getattr({owner!r}, {name!r}) while loading a checkpoint: only mmengine HistoryBuffer "
        "statistics methods may be resolved"
    )


def _mmengine_globals() -> list:
    """mmengine objects stored in its checkpoints' `message_hub` state."""
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # mmengine is optional for pure pretraining users
        return []
    return [HistoryBuffer, (history_buffer_method, "builtins.getattr")]


class YacsConfigNode:
    """Stand-in for `yacs.config.CfgNode` during safe unpickling: it builds a `collections.OrderedDict`.

    A pickled CfgNode (a dict subclass; protocol 2) is `NEWOBJ(CfgNode, ())`, then `SETITEMS` with its
    keys, then `BUILD` with its four flags (`__immutable__`, `__deprecated_keys__` (a set),
    `__renamed_keys__`, `__new_allowed__`). torch's weights-only unpickler fills only exact
    dict/OrderedDict/Counter objects with SETITEMS, so a dict subclass cannot be rebuilt there; returning
    an OrderedDict from `__new__` gives the config as nested OrderedDicts (BUILD stores the four flags as
    attributes of it). Called with any arguments (REDUCE or NEWOBJ) it only returns an empty OrderedDict:
    it imports nothing and runs no code of the file's choosing.
    """

    def __new__(cls, *args: object, **kwargs: object) -> OrderedDict:  # every argument is ignored
        return OrderedDict()


def _training_code_globals() -> list:
    """What official ImageNet training codes pickle besides tensors and plain containers.

    `argparse.Namespace` (EfficientTrain / ConvNeXt `save_model`, DeiT `main.py`: their `args`) is rebuilt
    as `Namespace.__new__` plus a `__dict__` update with already-unpickled values; called with arguments
    it raises TypeError. `yacs.config.CfgNode` (Swin `save_checkpoint`: its `config`) is the stand-in above.
    """
    return [argparse.Namespace, (YacsConfigNode, "yacs.config.CfgNode")]


def safe_globals() -> list:
    """Every global this project allows the weights-only unpickler to build."""
    return _numpy_globals() + _mmengine_globals() + _training_code_globals()


def install() -> None:
    """Register the allowlist once per process (idempotent)."""
    torch.serialization.add_safe_globals(safe_globals())


install()
