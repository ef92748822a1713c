"""Experiment tracking of a pretraining run: timm's `summary.csv` always, TensorBoard and W&B on request (`--vis`).

The engine calls a `Tracker` at three points: after every micro-batch (`batch`), after every epoch's log.jsonl
record (`epoch`) and at the end (`close`). What it writes (docs/FORMATS.md):

* `W/summary.csv`, timm's per-epoch summary (`timm.utils.update_summary`: epoch, train_loss, eval_top1,
  eval_top5, lr; the eval cells are empty where the epoch did not validate), trimmed on resume by
  `timm.utils.trim_summary` as timm's train.py does;
* with `--vis tensorboard`, event files in `W/tensorboard/` (TensorBoard's `SummaryWriter`); every scalar
  is plotted against the optimizer update count: `train/loss`, `train/lr`, `train/images_per_s` every
  `--log-interval` updates (means over the interval), and at the end of every epoch `epoch/<name>` for the
  log.jsonl fields in `EPOCH_SCALARS` and `val/<name>` for the top-1/top-5 numbers of the epochs that
  validated. One step axis lets a resumed run drop what the killed run logged after its checkpoint
  (`purge_step`), so curves never double back;
* with `--vis wandb`, the same scalars at the same steps through the wandb client (a resumed run is a new
  W&B run, as mmengine's WandbVisBackend does for fine-tunes).

Only the main process writes; other ranks get a tracker that does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from etcore.formats import PRETRAIN_SUMMARY, PRETRAIN_TENSORBOARD
from etcore.tracking import WANDB_PROJECT, require_vis_backends

# log.jsonl fields plotted once per epoch as `epoch/<name>`; evaluation results go to `val/<name>`
EPOCH_SCALARS = (
    "train_loss",
    "lr",
    "images_per_s",
    "stage",
    "input_size",
    "randaug_magnitude",
    "epoch_time_s",
    "wall_clock_s",
)
VAL_SCALARS = ("top1", "top5", "ema_top1", "ema_top5")


class Tracker:
    """Writes one run's summary.csv and its TensorBoard / W&B scalars (see the module docstring)."""

    def __init__(
        self,
        work_dir: Path,
        backends: Sequence[str] = (),
        interval: int = 50,
        start_epoch: int = 0,
        start_update: int = 0,
        run_config: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.interval = max(1, interval)
        self.summary = Path(work_dir) / PRETRAIN_SUMMARY
        self._writer = None
        self._wandb = None
        self._window_loss = 0.0
        self._window_batches = 0
        self._window_images = 0
        self._window_start = time.perf_counter()
        self._last_logged = start_update
        if not enabled:
            return
        require_vis_backends(list(backends))
        from timm.utils import trim_summary

        trim_summary(str(self.summary), start_epoch)  # a resume redoes the epochs after its checkpoint
        if "tensorboard" in backends:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run purges what the killed run logged after its checkpoint (steps > start_update)
            self._writer = SummaryWriter(
                str(Path(work_dir) / PRETRAIN_TENSORBOARD), purge_step=start_update + 1 if start_update else None
            )
        if "wandb" in backends:
            import wandb

            self._wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
                name=Path(work_dir).name,
                dir=str(work_dir),
                config=dict(run_config or {}),
            )

    def _scalars(self, values: Mapping[str, float], step: int) -> None:
        if self._writer is not None:
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, step)
        if self._wandb is not None:
            self._wandb.log(dict(values), step=step)

    def batch(self, updates: int, loss: float, images: int, lr: float) -> None:
        """One micro-batch done (`updates`: optimizer updates completed so far); logs every `interval` updates."""
        if not self.enabled:
            return
        self._window_loss += loss
        self._window_batches += 1
        self._window_images += images
        if updates % self.interval or updates == self._last_logged:
            return
        now = time.perf_counter()
        self._scalars(
            {
                "train/loss": self._window_loss / self._window_batches,
                "train/lr": lr,
                "train/images_per_s": self._window_images / max(now - self._window_start, 1e-9),
            },
            updates,
        )
        self._last_logged = updates
        self._window_loss, self._window_batches, self._window_images, self._window_start = 0.0, 0, 0, now

    def epoch(self, record: Mapping[str, Any]) -> None:
        """An epoch's log.jsonl record: a summary.csv row and the epoch's scalars at its last update."""
        if not self.enabled:
            return
        from timm.utils import update_summary

        update_summary(
            record["epoch"],
            {"loss": record["train_loss"]},
            {"top1": record.get("top1"), "top5": record.get("top5")},
            str(self.summary),
            lr=record["lr"],
        )
        values = {f"epoch/{name}": record[name] for name in EPOCH_SCALARS if record.get(name) is not None}
        values.update({f"val/{name}": record[name] for name in VAL_SCALARS if record.get(name) is not None})
        self._scalars(values, record["updates"])
        if self._writer is not None:
            self._writer.flush()  # a killed run keeps every finished epoch's curves

    def close(self) -> None:
        """Flush and close the backends (the end of the run)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
