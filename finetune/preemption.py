"""Preemption of a fine-tune (detection or segmentation): SIGUSR1/SIGTERM end the run with a resumable checkpoint.

`tools/train.py` installs the handlers (`etcore.preemption.stop_signals`) around the run and adds
`PreemptionHook` to every runner. At each iteration boundary the hook asks every rank whether one was
signalled (one max all-reduce); when so, it saves `iter_N.pth` (N: iterations done) and stops the loop with
`train_loop.stop_training`, the flag mmengine's `EarlyStoppingHook` uses, so the runner ends normally.

- `IterBasedTrainLoop` (the ADE20K and tiny configs): the config's own `CheckpointHook` writes the file (its
  atomic backend, `last_checkpoint`, `max_keep_ckpts`; an interval save of that iteration is reused, not
  repeated). mmengine replays the data order on `--resume`.
- `finetune.loops.ResumableEpochBasedTrainLoop` (what `tools/train.py` runs for every `EpochBasedTrainLoop`,
  i.e. the COCO configs): the stop comes inside the epoch, after the current iteration. The config's
  CheckpointHook saves by epoch (`epoch_N.pth` must mean "epoch N finished": the study runner's done-check
  reads it), so this hook writes `iter_N.pth` itself with the same backend, meta and `last_checkpoint`; the
  checkpoint's message hub records how many batches of the epoch are done, and `--resume` continues there.
- A plain mmengine `EpochBasedTrainLoop` (a runner built without `tools/train.py`) stops at the end of the
  current epoch, where mmengine can resume it.

Every checkpoint also carries the ranks' RNG states (`finetune.rng_state`); before a save the hook gathers them.
"""

from __future__ import annotations

import os.path as osp

import torch
from mmengine.dist import all_reduce, barrier, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

from etcore.preemption import StopRequest
from finetune.checkpoints import AtomicLocalBackend
from finetune.loops import ResumableEpochBasedTrainLoop
from finetune.rng_state import RngStateHook


class PreemptionHook(Hook):
    """Saves a checkpoint and stops the train loop at the first boundary after a stop request (any rank's)."""

    priority = "LOWEST"  # after CheckpointHook (VERY_LOW), so a checkpoint it just wrote is the one kept

    def __init__(self, request: StopRequest) -> None:
        self.request = request
        self.saved: str | None = None  # the checkpoint the run stopped at
        self._told = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loop = runner.train_loop
        if isinstance(loop, (IterBasedTrainLoop, ResumableEpochBasedTrainLoop)):
            if not self.is_last_train_iter(runner) and self._agreed():
                self._stop(runner, by_epoch=False)
        elif self.request.requested and not self._told:
            self._told = True
            runner.logger.warning(
                f"stop requested ({self.request.signal_name}): an epoch-based loop stops at the end of epoch "
                f"{runner.epoch + 1}, where mmengine can resume it"
            )

    def after_train_epoch(self, runner) -> None:
        if isinstance(runner.train_loop, (IterBasedTrainLoop, ResumableEpochBasedTrainLoop)):
            return  # they stop after an iteration (an IterBasedTrainLoop calls this once, at its end)
        if not self.is_last_train_epoch(runner) and self._agreed():
            self._stop(runner, by_epoch=True)

    def _agreed(self) -> bool:
        """Whether any rank was asked to stop; every rank gets the same answer (no-op without a process group)."""
        flag = torch.tensor([1.0 if self.request.requested else 0.0])
        all_reduce(flag, op="max")
        return bool(flag.item() > 0)

    def _stop(self, runner, by_epoch: bool) -> None:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        inside_epoch = isinstance(runner.train_loop, ResumableEpochBasedTrainLoop)
        if hook is None or (hook.by_epoch != by_epoch and not inside_epoch):
            if not self._told:
                self._told = True
                runner.logger.warning(
                    "stop requested, but the config's CheckpointHook cannot save here (none, or by_epoch does not "
                    "match the train loop): the run goes on"
                )
            return
        step = runner.epoch + 1 if by_epoch else runner.iter + 1
        template = "iter_{}.pth" if inside_epoch and hook.by_epoch else hook.filename_tmpl
        path = hook.file_backend.join_path(hook.out_dir, template.format(step))
        if hook.last_ckpt != path:
            for rng in (h for h in runner.hooks if isinstance(h, RngStateHook)):
                rng.snapshot(runner)  # every rank's RNG states, for the checkpoint rank 0 writes
            if hook.by_epoch == by_epoch:
                # CheckpointHook's own save (mmengine has no public call for "save now"): the same file name,
                # meta, backend, last_checkpoint and max_keep_ckpts as its interval saves
                hook._save_checkpoint(runner)
            else:
                self._save_inside_epoch(runner, hook, path)
        barrier()  # no rank leaves before rank 0's checkpoint is in place (a launcher may kill the rest)
        runner.train_loop.stop_training = True
        self.saved = path
        runner.logger.info(f"stopped on request after {'epoch' if by_epoch else 'iteration'} {step}: {path}")

    @staticmethod
    def _save_inside_epoch(runner, hook: CheckpointHook, path: str) -> None:
        """`iter_N.pth` inside an epoch, written as the by-epoch CheckpointHook writes its files (not rotated by
        its max_keep_ckpts, which counts epochs), and named by `last_checkpoint` for `--resume`."""
        hook.last_ckpt = path
        runner.message_hub.update_info("last_ckpt", path)
        runner.save_checkpoint(
            hook.out_dir,
            osp.basename(path),
            hook.file_client_args,
            save_optimizer=hook.save_optimizer,
            save_param_scheduler=hook.save_param_scheduler,
            meta=dict(epoch=runner.epoch, iter=runner.iter + 1),
            by_epoch=False,
            backend_args=hook.backend_args,
            **hook.args,
        )
        if is_main_process():
            AtomicLocalBackend().put_text(path, osp.join(runner.work_dir, "last_checkpoint"))
