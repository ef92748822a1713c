"""Seeds, RNG states and global torch switches: set for a run, saved in checkpoints, restored afterwards.

`main()` can be called several times in one process (the curriculum search and the demo do), so
`isolated_global_state()` puts every global it touches back as it found it. RNG states are stored as
plain tensors/tuples so that `torch.load(weights_only=True)` reads them back.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Iterator

import numpy as np
import torch


@contextlib.contextmanager
def isolated_global_state() -> Iterator[None]:
    """Restore RNGs, deterministic-algorithm flags, cuDNN switches and thread count on exit."""
    saved = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "threads": torch.get_num_threads(),
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    try:
        yield
    finally:
        random.setstate(saved["python"])
        np.random.set_state(saved["numpy"])
        torch.set_rng_state(saved["torch"])
        if saved["cuda"] is not None:
            torch.cuda.set_rng_state_all(saved["cuda"])
        torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["deterministic_warn"])
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
        torch.set_num_threads(saved["threads"])
        if saved["cublas"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved["cublas"]


def configure_determinism(deterministic: bool, device_type: str = "cpu") -> None:
    """`--deterministic`: deterministic kernels (bit-identical reruns on CPU); otherwise cuDNN autotuning.

    On CUDA a few backward kernels (e.g. adaptive average pooling) have no deterministic version; there
    torch only warns about them instead of stopping the run, so GPU reruns are close, not bit-identical.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device_type == "cuda")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states in checkpoint-safe form (tensors, tuples, ints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def seeded_sample(seed: int) -> Iterator[None]:
    """Run one sample's augmentation under RNGs seeded by `seed`, leaving the caller's RNGs untouched.

    Seeding per sample (from run seed, epoch and index) makes augmentation independent of the number
    of workers and processes, so resumed and multi-process runs see exactly the same images.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def sample_seed(run_seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one (run, epoch, sample) triple."""
    # Hand-written: a SplitMix64 finaliser; neither torch nor numpy exposes a cheap stateless hash of ints.
    value = (run_seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % 2**64
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) % 2**64
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) % 2**64
    value ^= value >> 31
    return value >> 1
