"""Random-number state in fine-tune checkpoints, so that a resumed run with dropout or drop path (or any other
random draw in the main process) continues with the draws an uninterrupted run makes.

mmengine 0.10.7 stores no RNG state in its checkpoints: after a resume, python `random`, numpy and torch (CPU
and CUDA) start again from the seed, so every dropout mask after the resume differs from the uninterrupted
run's. `RngStateHook` (added to every runner by `tools/train.py`) writes each rank's states into
`checkpoint['meta']['rng_states']` (a list indexed by rank, plain tensors, ints and floats, so the file still
loads with `weights_only=True`) and puts them back on resume right before the first resumed batch is fetched:
after mmengine's resume and after the loop's replay of the skipped batches (the replay runs the data pipeline
again, which draws from these streams in the main process when there are no worker processes).
`finetune.loops` calls `restore_pending_rng` at that point.

mmengine saves checkpoints on rank 0 only (`Runner.save_checkpoint` is `master_only`, and so is the
`before_save_checkpoint` call in it), so the other ranks' states are gathered beforehand, at every point
where a checkpoint can be written: an iteration after which a `CheckpointHook` saves, every epoch's end,
every validation, and `PreemptionHook`'s save (which calls `snapshot`).

Validation leaves the training's streams as it found them (the states are put back after it): a checkpoint
is written before the validation of its epoch or iteration, and a resumed run does not validate that point
again, so whatever validation draws (its data loader draws a worker seed from torch's generator) must not
reach the training that follows.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook

META_KEY = "rng_states"


def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch CPU and (when CUDA is in use) current-device CUDA generator states.

    Only tensors, ints, floats and None: the checkpoint loader's `weights_only=True` needs no new allowlist
    entry (numpy's own state tuple holds a numpy array and dtype). CUDA is read only where this process has
    initialised it: a data-loader worker forked from a CUDA process must not touch it.
    """
    version, mt_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": [int(version), torch.tensor(mt_state, dtype=torch.int64), gauss_next],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the states `capture_rng_state` returned (CUDA only where this process uses CUDA)."""
    version, mt_state, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in mt_state.tolist()), gauss_next))
    keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached_gaussian)))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_initialized():
        torch.cuda.set_rng_state(state["cuda"])


def _iteration_save_due(runner) -> bool:
    """Whether a CheckpointHook will save after this iteration (its own rule, read through its public fields)."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and not hook.by_epoch:
            if hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                hook.save_last and hook.is_last_train_iter(runner)
            ):
                return True
    return False


class RngStateHook(Hook):
    """Saves every rank's RNG states with each checkpoint and restores this rank's on resume."""

    priority = 89  # just before CheckpointHook (VERY_LOW = 90): the gathered states are ready when it saves

    def __init__(self) -> None:
        self._gathered: list | None = None  # every rank's states at the current save point (several ranks)
        self._before_val: dict | None = None  # this rank's states when the running validation began
        self._pending: dict | None = None  # this rank's states from the resumed checkpoint, not yet restored

    def snapshot(self, runner) -> None:
        """Gather every rank's current states for a checkpoint written next (a collective: all ranks call it)."""
        if get_world_size() > 1:
            self._gathered = all_gather_object(capture_rng_state())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._gathered = None  # a snapshot belongs to the save point it was taken for
        if self._pending is not None:
            # a train loop other than finetune.loops' did not restore before fetching; this is the closest point
            runner.logger.warning("rng states restored after the first resumed batch was fetched (unknown loop)")
            self.restore_pending(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if get_world_size() > 1 and _iteration_save_due(runner):
            self.snapshot(runner)

    def after_train_epoch(self, runner) -> None:
        self.snapshot(runner)  # once an epoch: a by-epoch CheckpointHook may save now

    def before_val(self, runner) -> None:
        self._before_val = capture_rng_state()
        self.snapshot(runner)  # CheckpointHook's save_best writes during validation

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
        self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        world = get_world_size()
        if self._gathered is not None and len(self._gathered) == world:
            states = list(self._gathered)
            if self._before_val is not None:  # inside validation: the states training goes on with
                states[get_rank()] = self._before_val
        elif world == 1:
            states = [self._before_val or capture_rng_state()]
        else:  # a save from a point no snapshot was taken for: only this rank's states are known
            runner.logger.warning("checkpoint written without the other ranks' rng states: their resume is not exact")
            states = [None] * world
            states[get_rank()] = self._before_val or capture_rng_state()
        checkpoint.setdefault("meta", {})[META_KEY] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner.cfg.get("resume", False):  # load_from: new training from loaded weights, fresh streams
            return
        states = (checkpoint.get("meta") or {}).get(META_KEY)
        if states is None:
            runner.logger.warning("the resumed checkpoint holds no rng states: random draws differ from before")
            return
        world, rank = get_world_size(), get_rank()
        if len(states) != world or states[rank] is None:
            runner.logger.warning(
                f"the resumed checkpoint holds rng states of {len(states)} rank(s), not of rank {rank} of {world}: "
                "random draws differ from an uninterrupted run"
            )
            return
        self._pending = states[rank]

    def restore_pending(self, runner) -> None:
        """Put back the resumed checkpoint's states (once); the train loop calls it right before the first new batch."""
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None


def restore_pending_rng(runner) -> None:
    """Restore the resumed checkpoint's RNG states now, if the runner has an `RngStateHook` holding them."""
    for hook in runner.hooks:
        if isinstance(hook, RngStateHook):
            hook.restore_pending(runner)
