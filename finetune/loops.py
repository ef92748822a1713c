"""Train loops that stop and resume anywhere with the uninterrupted run's data, augmentation and random draws.

`tools/train.py` puts them in place of mmengine's (`use_resumable_loops`, a config rewrite before the runner
is built; the config files stay the official recipes):

- `ResumableEpochBasedTrainLoop` for `EpochBasedTrainLoop` (every COCO config: about 7,300 iterations an
  epoch). mmengine 0.10.7 resumes an epoch-based loop only at an epoch start, so `PreemptionHook` could stop
  one only at an epoch's end. This loop records how many batches of the current epoch are done (message hub
  info `BATCHES_DONE`, saved in every checkpoint with the hub) and may be stopped after any iteration
  (`stop_training`, checked after each one); resumed from a checkpoint written inside an epoch, it replays
  the epoch's first batches through the data loader, puts the saved RNG states back and trains the rest.
- `ResumableIterBasedTrainLoop` for `IterBasedTrainLoop`: mmengine already replays the data there; the loop
  only restores the saved RNG states between that replay and the first new batch, which no hook can do.

Why a replay makes the rest of the epoch exact: the sampler's order depends only on (seed, epoch), and the
augmentation's draws come from the process that runs the pipeline. Without worker processes that is the main
process, whose states `finetune.rng_state` saves and restores after the replay. Worker processes are seeded
by mmengine's `worker_init_fn` from (seed, rank, worker id) when they start; non-persistent workers start
anew every epoch, so replaying the epoch's first batches from fresh workers repeats their draws exactly.
Persistent workers (the COCO configs) carry their streams over from earlier epochs: the loop therefore has
each worker return its states with every batch (`_TaggedCollate`), keeps the states every worker starts the
epoch with (message hub info `WORKER_RNG`, every rank's, gathered once an epoch), and on resume starts the
workers with them (`_RestoreWorkerRng`) before the replay.

Cost of the replay: loading (not training) the epoch's first batches again, with the config's workers, at
most one epoch's worth (up to about 7,300 batches on COCO); data loading normally keeps pace with training,
so this is well under the training time it saves. A checkpoint written at an epoch's end needs no replay.

Creating a data loader iterator draws a worker base seed from torch's global generator; mmengine's
`worker_init_fn` reseeds every worker anyway, so the loop puts the generator back, so that training's
random draws do not depend on when iterators are created (a resumed run creates one at another point).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import get_worker_info

from etcore.errors import UserInputError
from finetune.rng_state import capture_rng_state, restore_pending_rng, restore_rng_state

BATCHES_DONE = "batches_done_in_epoch"  # message hub info: batches of `epoch` already trained
WORKER_RNG = "worker_rng_at_epoch_start"  # message hub info: [rank][worker] states (None: as seeded)
REPLACEMENTS = {
    "EpochBasedTrainLoop": "ResumableEpochBasedTrainLoop",
    "IterBasedTrainLoop": "ResumableIterBasedTrainLoop",
}


def use_resumable_loops(cfg: Any) -> None:
    """Train the config with this module's loops instead of mmengine's two (other loop types are left alone)."""
    train_cfg = cfg.get("train_cfg")
    if not isinstance(train_cfg, dict):
        return
    kind = train_cfg.get("type")
    if kind is None and "by_epoch" in train_cfg:  # mmengine's shorthand: dict(by_epoch=True, max_epochs=12)
        kind = train_cfg["type"] = "EpochBasedTrainLoop" if train_cfg.pop("by_epoch") else "IterBasedTrainLoop"
    if kind in REPLACEMENTS:
        train_cfg["type"] = REPLACEMENTS[kind]


class _Tagged:
    """A batch from a persistent worker, with the worker's id and its RNG states after making the batch."""

    __slots__ = ("batch", "worker", "rng")

    def __init__(self, batch: Any, worker: int, rng: dict) -> None:
        self.batch, self.worker, self.rng = batch, worker, rng


class _TaggedCollate:
    """The loader's collate function, run in a worker, returning a `_Tagged` batch."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, samples: Any) -> Any:
        batch = self.collate(samples)
        info = get_worker_info()
        return batch if info is None else _Tagged(batch, info.id, capture_rng_state())


class _RestoreWorkerRng:
    """A worker_init_fn: the loader's own (mmengine's seeding), then this worker's saved states if any."""

    def __init__(self, init: Any, states: list) -> None:
        self.init, self.states = init, states

    def __call__(self, worker_id: int) -> None:
        if self.init is not None:
            self.init(worker_id)
        if worker_id < len(self.states) and self.states[worker_id] is not None:
            restore_rng_state(self.states[worker_id])


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """`EpochBasedTrainLoop` that can stop after any iteration and resume there exactly.

    mmengine has no mid-epoch resume (0.10.7 restarts the epoch); this loop replays the epoch's trained
    batches instead (module docstring).
    """

    def __init__(self, runner, dataloader, max_epochs: int, **kwargs: Any) -> None:
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        loader = self.dataloader
        self._track_workers = bool(getattr(loader, "persistent_workers", False)) and loader.num_workers > 0
        self._worker_rng: list = [None] * loader.num_workers  # this rank's workers' latest states
        self._workers_started = False  # persistent workers start with this process's first epoch
        if self._track_workers:
            loader.collate_fn = _TaggedCollate(loader.collate_fn)

    @property
    def batches_done(self) -> int:
        """Batches of the current epoch trained so far (restored from the checkpoint on resume)."""
        return int(self.runner.message_hub.get_info(BATCHES_DONE, 0))

    def run(self) -> torch.nn.Module:
        """Train to max_epochs, validating as EpochBasedTrainLoop does, or until stopped."""
        self.runner.call_hook("before_train")
        while self._epoch < self._max_epochs and not self.stop_training:
            if not self.run_epoch():
                break  # stopped inside the epoch: no epoch end, no validation
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0 or self._epoch == self._max_epochs)
            ):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train")
        return self.runner.model

    def run_epoch(self) -> bool:
        """Train the current epoch from `batches_done` on; False when stopped before its end."""
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        start = self.batches_done
        if start > len(self.dataloader):
            raise UserInputError(
                f"the resumed checkpoint stopped after batch {start} of epoch {self._epoch + 1}, but this run's "
                f"epochs have {len(self.dataloader)} batches: resume with the config and data it was trained with"
            )
        batches = self._epoch_batches()
        # replay: load (not train) the batches already trained, so that the sampler, a batch sampler's
        # buckets and the workers' random streams are where the interrupted run left them
        for done in range(start):
            if next(batches, None) is None:
                raise UserInputError(
                    f"the resumed checkpoint stopped after batch {start} of epoch {self._epoch + 1}, but the data "
                    f"loader ended after {done}: resume with the config and data it was trained with"
                )
        restore_pending_rng(self.runner)
        for idx, data_batch in enumerate(batches, start):
            self.runner.message_hub.update_info(BATCHES_DONE, idx + 1)
            self.run_iter(idx, data_batch)
            if self.stop_training:
                return False
        self.runner.message_hub.update_info(BATCHES_DONE, 0)  # an epoch-end checkpoint resumes at the next one
        self._store_worker_rng()
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1
        return True

    def _epoch_batches(self) -> Iterator:
        """This epoch's batches, the persistent workers started from the saved states on a resume."""
        loader = self.dataloader
        init = loader.worker_init_fn
        if self._track_workers and not self._workers_started:
            self._workers_started = True
            mine = self._rank_states(self.runner.message_hub.get_info(WORKER_RNG))
            if mine is not None:  # a resumed run: its workers start where the interrupted run's began this epoch
                self._worker_rng = list(mine)
                loader.worker_init_fn = _RestoreWorkerRng(init, mine)
        torch_state = torch.get_rng_state()
        try:
            iterator = iter(loader)
        finally:
            loader.worker_init_fn = init
            torch.set_rng_state(torch_state)  # the iterator's base-seed draw (module docstring)
        return self._untag(iterator) if self._track_workers else iterator

    def _rank_states(self, saved: list | None) -> list | None:
        """This rank's workers' states from the message hub, if they fit this run's workers."""
        if saved is None:
            return None
        rank, world = get_rank(), get_world_size()
        if len(saved) != world or len(saved[rank]) != self.dataloader.num_workers:
            self.runner.logger.warning(
                "the resumed checkpoint's data-loader worker states are for another number of ranks or workers: "
                "the augmentation of the rest of the run differs from an uninterrupted run's"
            )
            return None
        return saved[rank]

    def _untag(self, iterator: Iterator) -> Iterator:
        for item in iterator:
            if isinstance(item, _Tagged):
                self._worker_rng[item.worker] = item.rng
                item = item.batch
            yield item

    def _store_worker_rng(self) -> None:
        """Every rank's workers' states after this epoch: those the next epoch starts from (a collective)."""
        if self._track_workers:
            self.runner.message_hub.update_info(WORKER_RNG, all_gather_object(list(self._worker_rng)))


class _RestoreAfterReplay:
    """IterBasedTrainLoop's data iterator, restoring the resumed RNG states right before the first new batch."""

    def __init__(self, iterator: Iterator, loop: IterBasedTrainLoop) -> None:
        self.iterator, self.loop = iterator, loop
        self.fetched = 0
        self.replay: int | None = None

    def __iter__(self) -> _RestoreAfterReplay:
        return self

    def __next__(self) -> Any:
        if self.replay is None:
            self.replay = self.loop.iter  # IterBasedTrainLoop.run replays exactly `iter` batches first
        if self.fetched == self.replay:
            restore_pending_rng(self.loop.runner)
        self.fetched += 1
        return next(self.iterator)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """`IterBasedTrainLoop` whose resume also restores the RNG states saved with the checkpoint."""

    def __init__(self, runner, dataloader, max_iters: int, **kwargs: Any) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self.dataloader_iterator = _RestoreAfterReplay(self.dataloader_iterator, self)
