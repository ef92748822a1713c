"""Train loops that resume with the uninterrupted run's random draws.

`tools/train.py` puts them in place of mmengine's (`use_resumable_loops`, a config rewrite before the runner
is built; the config files stay the official recipes). `ResumableIterBasedTrainLoop` replaces
`IterBasedTrainLoop`: mmengine replays the data there on resume (the data pipeline runs again for the
skipped batches); the loop restores the RNG states saved with the checkpoint (`finetune.rng_state`) between
that replay and the first new batch, which no hook can do (the first hook after the replay,
`before_train_iter`, comes after the first new batch was fetched and, without worker processes, augmented).
"""

from __future__ import annotations

from typing import Any, Iterator

from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop

from finetune.rng_state import restore_pending_rng

REPLACEMENTS = {"IterBasedTrainLoop": "ResumableIterBasedTrainLoop"}


def use_resumable_loops(cfg: Any) -> None:
    """Train the config with this module's loops instead of mmengine's (other loop types are left alone)."""
    train_cfg = cfg.get("train_cfg")
    if not isinstance(train_cfg, dict):
        return
    kind = train_cfg.get("type")
    if kind is None and "by_epoch" in train_cfg:  # mmengine's shorthand: dict(by_epoch=True, max_epochs=12)
        kind = train_cfg["type"] = "EpochBasedTrainLoop" if train_cfg.pop("by_epoch") else "IterBasedTrainLoop"
    if kind in REPLACEMENTS:
        train_cfg["type"] = REPLACEMENTS[kind]


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
