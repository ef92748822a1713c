"""Preemption of a fine-tune (detection or segmentation): SIGUSR1/SIGTERM end the run with a resumable checkpoint.

`tools/train.py` installs the handlers (`etcore.preemption.stop_signals`) around the run and adds
`PreemptionHook` to every runner. At each iteration boundary of an `IterBasedTrainLoop` the hook asks every
rank whether one was signalled (one max all-reduce); when so, the config's own `CheckpointHook` saves
`iter_N.pth` (its atomic backend, `last_checkpoint`, `max_keep_ckpts`; an interval save of that iteration is
reused, not repeated), and the loop is stopped with `train_loop.stop_training`, the flag mmengine's
`EarlyStoppingHook` uses, so the runner ends normally. `tools/train.py --resume` then continues from
`iter_N.pth` as from any checkpoint: mmengine replays the data order to that iteration.

An `EpochBasedTrainLoop` (the COCO 1x/3x configs) is stopped at the end of the current epoch instead:
mmengine 0.10.7 resumes such a loop only at an epoch start (it restores the epoch and iteration counters,
then trains the whole epoch again), so a checkpoint from inside an epoch would train part of it twice.
"""

from __future__ import annotations

import torch
from mmengine.dist import all_reduce, barrier
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

from etcore.preemption import StopRequest


class PreemptionHook(Hook):
    """Saves a checkpoint and stops the train loop at the first boundary after a stop request (any rank's)."""

    priority = "LOWEST"  # after CheckpointHook (VERY_LOW), so a checkpoint it just wrote is the one kept

    def __init__(self, request: StopRequest) -> None:
        self.request = request
        self.saved: str | None = None  # the checkpoint the run stopped at
        self._told = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            if self.request.requested and not self._told:
                self._told = True
                runner.logger.warning(
                    f"stop requested ({self.request.signal_name}): an epoch-based loop stops at the end of epoch "
                    f"{runner.epoch + 1}, where mmengine can resume it"
                )
            return
        if not self.is_last_train_iter(runner) and self._agreed():
            self._stop(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        if isinstance(runner.train_loop, IterBasedTrainLoop):  # called once, when its iterations are done
            return
        if not self.is_last_train_epoch(runner) and self._agreed():
            self._stop(runner, by_epoch=True)

    def _agreed(self) -> bool:
        """Whether any rank was asked to stop; every rank gets the same answer (no-op without a process group)."""
        flag = torch.tensor([1.0 if self.request.requested else 0.0])
        all_reduce(flag, op="max")
        return bool(flag.item() > 0)

    def _stop(self, runner, by_epoch: bool) -> None:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None or hook.by_epoch != by_epoch:
            if not self._told:
                self._told = True
                runner.logger.warning(
                    "stop requested, but the config's CheckpointHook cannot save here (none, or by_epoch does not "
                    "match the train loop): the run goes on"
                )
            return
        step = runner.epoch + 1 if by_epoch else runner.iter + 1
        path = hook.file_backend.join_path(hook.out_dir, hook.filename_tmpl.format(step))
        if hook.last_ckpt != path:
            # CheckpointHook's own save (mmengine has no public call for "save now"): the same file name,
            # meta, backend, last_checkpoint and max_keep_ckpts as its interval saves
            hook._save_checkpoint(runner)
        barrier()  # no rank leaves before rank 0's checkpoint is in place (a launcher may kill the rest)
        runner.train_loop.stop_training = True
        self.saved = hook.last_ckpt
        runner.logger.info(f"stopped on request after {'epoch' if by_epoch else 'iteration'} {step}: {path}")
