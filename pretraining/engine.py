"""The curriculum training loop: stages switch in-process, LR runs over the whole curriculum, state resumes exactly.

`Pretrainer(config, curriculum, dist, callbacks).run()` trains, validates, and writes the work dir
(docs/FORMATS.md). The curriculum is read as a value (`stage_at(epoch)`); whenever the stage changes
the data pipeline is rebuilt (input size, RandAugment magnitude, batch, and one loader whose workers
live for the whole stage), size-bound model parameters and their optimizer moments are resampled, and
DDP is re-wrapped around the new parameters. Validation runs at the end of every stage (or every
`eval_every` epochs) and after the last epoch.

A stop request (`pretraining.preemption`: SIGUSR1/SIGTERM) is honoured at the next optimizer-update
boundary, agreed by every rank: last.pth then holds the position in the epoch (micro-batches done, the
epoch's loss sum, images and unreadable files so far, its timers, every rank's RNG), `--resume` continues
from there bit for bit, and `RunStopped` is raised. After an epoch's last.pth it is honoured at once.

Every epoch's log record says where its time went (`EpochTimer`): stage switch, waiting for data,
the low-frequency op on the batch, the step (and its optimizer part), the loader's own time per
sample, evaluation and checkpointing; `tools/benchmark.py breakdown` sums them per stage.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import torch
from timm.data import resolve_data_config
from tqdm import tqdm

from etcore.checkpoint_io import write_text_atomic
from etcore.errors import UserInputError
from pretraining import checkpoint as ckpt
from pretraining.callbacks import CallbackList, TrainingCallback
from pretraining.config import PretrainConfig
from pretraining.curriculum import Curriculum, Stage, stage_batch
from pretraining.data import (
    EVAL_INTERPOLATION,
    SeededImageDataset,
    check_magnitudes,
    corrupt_error,
    eval_loader,
    eval_transform,
    load_image_folders,
    train_loader,
    train_transform,
)
from pretraining.determinism import capture_rng_state, configure_determinism, restore_rng_state, seed_everything
from pretraining.distributed import DistContext
from pretraining.frequency import low_frequency_crop
from pretraining.model import build_model, model_at_size, resize_model_input
from pretraining.optim import (
    CurriculumLRSchedule,
    build_criterion,
    build_ema,
    build_mixup,
    build_optimizer,
    describe_plan,
    optimizer_update,
    peak_lr,
    updates_per_epoch,
)
from pretraining.preemption import RunStopped
from pretraining.recipes import paper_differences
from pretraining.tracking import Tracker


class TrainingDiverged(UserInputError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class Progress:
    """Counters a resume restores (stored under `resume` in last.pth)."""

    epoch: int = 0  # next epoch to train
    updates: int = 0  # optimizer steps done
    images_seen: int = 0
    wall_clock_s: float = 0.0
    train_time_s: float = 0.0  # stage switches + training loops (what the curriculum saves)
    eval_time_s: float = 0.0
    checkpoint_time_s: float = 0.0  # last.pth writes
    best_top1: float | None = None
    final_top1: float | None = None
    final_top5: float | None = None
    ema_top1: float | None = None
    ema_top5: float | None = None
    unreadable: list = field(default_factory=list)


@dataclass
class Pipeline:
    """What the current stage trains with."""

    stage_index: int
    stage: Stage
    batch_size: int
    accum_steps: int
    loader: Any = None  # the stage's DataLoader (persistent workers); built at the stage's first epoch


@dataclass
class EpochTimer:
    """Seconds one epoch spent in each part (log.jsonl fields of the same names, docs/FORMATS.md)."""

    stage_switch_s: float = 0.0  # enter_stage: model resize, transform, loader set-up
    first_batch_s: float = 0.0  # waiting for the first batch (worker start-up or resume, plus one batch)
    data_wait_s: float = 0.0  # waiting for batches in the training loop, the first included
    lowfreq_s: float = 0.0  # the low-frequency op on the batch on the step's path (fft); launch time on CUDA
    step_s: float = 0.0  # the rest of the loop: transfer, mixup, forward, loss, backward, optimizer
    optimizer_s: float = 0.0  # the optimizer update within step_s (unscale, clip, step, zero_grad, EMA)
    loader_s: float = 0.0  # open + decode + transform of the epoch's samples, wall time summed over samples
    loader_cpu_s: float = 0.0  # the same, CPU time of the loading threads (worker processes or this one)
    train_s: float = 0.0  # the training loop, from asking for the first batch to the last update
    eval_s: float = 0.0  # validation (0 when this epoch did not validate)


class Pretrainer:
    """One pretraining run on this process (rank `dist.rank` of `dist.world_size`)."""

    def __init__(
        self,
        config: PretrainConfig,
        curriculum: Curriculum,
        dist: DistContext,
        callbacks: Sequence[TrainingCallback] = (),
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = config
        self.curriculum = curriculum
        self.dist = dist
        self.device = dist.device
        self.callbacks = CallbackList(callbacks)
        self._print = say or (lambda msg: print(msg, flush=True))
        self.work_dir = Path(config.work_dir)
        self.config_dict = config.to_dict()
        self.final_size = curriculum.final_size
        self.effective_batch = config.batch_size * config.accum_steps * dist.world_size
        self.progress = Progress()
        self.pipeline: Pipeline | None = None
        self.current_size = self.final_size
        self.ddp_model: torch.nn.Module | None = None
        self._stage_images_per_s: float | None = None
        self._last_checkpoint_s = 0.0
        self._resume_position: dict[str, Any] | None = None  # this rank's part of a mid-epoch last.pth
        self.tracker = Tracker(self.work_dir, enabled=False)  # run() opens the real one

    # --- small helpers ---------------------------------------------------------------------------
    def say(self, message: str) -> None:
        if self.dist.is_main:
            self._print(message)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.cfg.amp:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if (self.device.type == "cpu" or self.cfg.amp_dtype == "bfloat16") else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _wrap(self) -> None:
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp_model = self.model

    def _lr(self) -> float:
        return max(group["lr"] for group in self.optimizer.param_groups)

    # --- set-up ----------------------------------------------------------------------------------
    def setup(self, resume: dict[str, Any] | None) -> None:
        cfg = self.cfg
        configure_determinism(cfg.deterministic, self.device.type)
        seed_everything(cfg.seed)
        check_magnitudes(self.curriculum.stages, cfg.randaug)
        train_folder, val_folder = load_image_folders(cfg.data)
        self.num_classes = len(train_folder.classes)
        if resume and resume["resume"].get("classes") != list(train_folder.classes):
            raise UserInputError(
                f"--data {cfg.data} holds other classes ({self.num_classes}, e.g. "
                f"{train_folder.classes[:3]}) than the checkpoint being resumed "
                f"({len(resume['resume'].get('classes') or [])}): resume with the same data"
            )
        self.model, self.model_kwargs = build_model(
            cfg.model, self.num_classes, self.final_size, cfg.model_kwargs, cfg.drop_path
        )
        data_config = resolve_data_config({}, model=self.model)
        mean, std = data_config["mean"], data_config["std"]
        self.mean_std = (mean, std)
        self.train_set = SeededImageDataset(train_folder, seed=cfg.seed)
        self.val_set = SeededImageDataset(
            val_folder, seed=cfg.seed, transform=eval_transform(self.final_size, cfg.crop_pct, mean, std)
        )
        self.model.to(self.device)

        start_epoch = resume["resume"]["epoch"] if resume else 0
        size = resume["resume"]["input_size"] if resume else self.curriculum.stage_at(0).input_size
        resize_model_input(self.model, size)
        self.current_size = size
        if resume:
            self.model.load_state_dict(resume["model"], strict=True)
        self.ema = build_ema(self.model, cfg)
        if resume and self.ema is not None:
            self.ema.module.load_state_dict(resume["model_ema"], strict=True)
        self.optimizer = build_optimizer(self.model, cfg, peak_lr(cfg, self.effective_batch))
        self.updates_per_epoch = updates_per_epoch(len(self.train_set), self.effective_batch)
        self.schedule = CurriculumLRSchedule(self.optimizer, self.curriculum, cfg, self.updates_per_epoch)
        fp16 = cfg.amp and self.device.type == "cuda" and cfg.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.mixup = build_mixup(cfg, self.num_classes)
        self.criterion = build_criterion(cfg, self.mixup)
        if resume:
            self._restore(resume)
        else:
            seed_everything(cfg.seed + self.dist.rank)  # ranks differ in mixup / drop-path draws
        self.progress.epoch = start_epoch
        self._wrap()

    def _restore(self, resume: dict[str, Any]) -> None:
        state = resume["resume"]
        saved = state["optimizer"]
        for group, built in zip(saved["param_groups"], self.optimizer.param_groups):
            if "fused" in built:  # a run saved before the fused step resumes fused (torch keeps the saved flag)
                group["fused"] = built["fused"]
        self.optimizer.load_state_dict(saved)
        self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        position = state.get("position")  # None: written at the end of an epoch
        if position is not None:
            if len(position["ranks"]) != self.dist.world_size:
                raise UserInputError(
                    f"--resume: last.pth was written in the middle of epoch {position['epoch']} by "
                    f"{len(position['ranks'])} processes, this run has {self.dist.world_size}; the position in "
                    f"the epoch is per process: resume with {len(position['ranks'])} processes"
                )
            self._resume_position = {
                **position["ranks"][self.dist.rank],
                "epoch": position["epoch"],
                "step": position["step"],
            }
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            restore_rng_state(rng[self.dist.rank])
        else:
            self.say(
                f"warning: the checkpoint was written by {len(rng)} processes, this run has "
                f"{self.dist.world_size}: random streams are re-seeded, so the run is not bit-identical"
            )
            seed_everything(self.cfg.seed + 7919 * state["epoch"] + self.dist.rank)

    # --- stages ----------------------------------------------------------------------------------
    def enter_stage(self, epoch: int) -> None:
        """Rebuild what depends on the stage when `epoch` starts a new one (or starts this process)."""
        index = self.curriculum.stage_index(epoch)
        if self.pipeline is not None and self.pipeline.stage_index == index:
            return
        stage = self.curriculum.stages[index]
        cfg = self.cfg
        if stage.input_size != self.current_size:
            replaced = resize_model_input(self.model, stage.input_size, self.optimizer)
            if self.ema is not None:
                resize_model_input(self.ema.module, stage.input_size)
            self.current_size = stage.input_size
            if replaced:
                self._wrap()
        small = stage.input_size < self.final_size
        batch, accum = stage_batch(stage, self.final_size, cfg.batch_size, cfg.accum_steps, cfg.scale_batch_with_size)
        self.pipeline = None  # the previous stage's loader (and its workers) goes before the new one starts
        self.train_set.transform = train_transform(stage, self.final_size, cfg.lowfreq, cfg, *self.mean_std)
        loader = train_loader(
            self.train_set,
            batch,
            epoch,
            self.dist.rank,
            self.dist.world_size,
            cfg.workers,
            cfg.seed,
            pin_memory=self.device.type == "cuda",
            persistent=True,
        )
        self.pipeline = Pipeline(index, stage, batch, accum, loader)
        self.schedule.step(epoch)
        previous = f", previous stage {self._stage_images_per_s:.1f} img/s" if self._stage_images_per_s else ""
        pipe, world = self.pipeline, self.dist.world_size
        self.say(
            f"stage {index + 1}/{len(self.curriculum.stages)}: epochs {stage.start_epoch}-{stage.end_epoch - 1}, "
            f"size {stage.input_size} ({cfg.lowfreq if small or cfg.lowfreq == 'direct' else 'full size'}), "
            f"randaug m={stage.randaug_magnitude:g}, batch {pipe.batch_size}/device x {world} x accum "
            f"{pipe.accum_steps} (effective {pipe.batch_size * world * pipe.accum_steps}), "
            f"lr {self._lr():.3g}{previous}"
        )
        self.callbacks.on_stage_start(index)

    # --- one epoch -------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, timer: EpochTimer) -> dict[str, float]:
        assert self.pipeline is not None
        pipe, cfg = self.pipeline, self.cfg
        loader = pipe.loader
        start, loss_sum, images, unreadable, resumed_s = self._epoch_so_far(epoch, timer)
        # the (seed, epoch) shuffle, the epoch in every sample's key, and the samples a stopped run trained
        loader.sampler.set_epoch(epoch, start * pipe.batch_size)
        self.train_set.epoch = epoch
        self.model.train()
        # the official number of updates per epoch; micro-batches left over are skipped, as the official loop does
        steps = min(len(loader), self.updates_per_epoch * pipe.accum_steps)
        bar = tqdm(
            total=steps,
            initial=start,
            desc=f"epoch {epoch + 1}/{self.curriculum.total_epochs}",
            leave=False,
            disable=not (self.dist.is_main and sys.stderr.isatty()),
            file=sys.stderr,
        )
        clock = time.perf_counter
        started = clock() - timer.train_s  # a resumed epoch's training time before the stop counts
        self.optimizer.zero_grad(set_to_none=True)
        batches = iter(loader)
        for i in range(start, steps):
            if i > start and i % pipe.accum_steps == 0 and self._stop_agreed():  # an update boundary
                bar.close()
                timer.train_s = clock() - started
                so_far = {"loss_sum": loss_sum, "images": images, "unreadable": sorted(unreadable)}
                self._stop(epoch, i, {**so_far, "timer": asdict(timer)})
            waited = clock()
            x, y, bad, spent = next(batches)
            arrived = clock()
            timer.data_wait_s += arrived - waited
            if i == 0:
                timer.first_batch_s = arrived - waited
            timer.loader_s += spent.wall_s
            timer.loader_cpu_s += spent.cpu_s
            if bad:
                if cfg.corrupt_images == "stop":
                    raise corrupt_error(bad[0])
                unreadable.update(sample.path for sample in bad)
            starts_update = i % pipe.accum_steps == 0
            ends_update = (i + 1) % pipe.accum_steps == 0 or i == steps - 1
            if starts_update:
                self.callbacks.before_update(self.progress.updates + 1)
                self.schedule.step(epoch, i // pipe.accum_steps)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if cfg.lowfreq == "fft" and pipe.stage.input_size < x.shape[-1]:
                cropping = clock()
                x = low_frequency_crop(x, pipe.stage.input_size)
                timer.lowfreq_s += clock() - cropping
            if self.mixup is not None:
                x, y = self.mixup(x, y)
            with self._autocast():
                loss = self.criterion(self.ddp_model(x), y)
            loss = self.callbacks.on_loss(self.progress.updates + 1, loss)
            loss_value = self.dist.all_reduce_sum([loss.item()])[0] / self.dist.world_size
            if not math.isfinite(loss_value):
                self._diverged(loss_value, epoch, i)
            sync = contextlib.nullcontext()
            if self.dist.enabled and not ends_update:
                sync = self.ddp_model.no_sync()
            with sync:
                self.scaler.scale(loss / pipe.accum_steps).backward()
            if ends_update:
                updating = clock()
                self._optimizer_step()
                timer.optimizer_s += clock() - updating
            loss_sum += loss_value
            images += x.shape[0]
            self.tracker.batch(self.progress.updates, loss_value, x.shape[0] * self.dist.world_size, self._lr())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{self._lr():.2e}")
        del batches  # a persistent loader's workers wait for the next epoch
        bar.close()
        elapsed = clock() - started
        timer.train_s = elapsed
        timer.step_s = elapsed - timer.data_wait_s - timer.lowfreq_s
        images = int(self.dist.all_reduce_sum([float(images)])[0])
        self.progress.images_seen += images
        self.progress.unreadable = sorted(unreadable)
        return {
            "train_loss": loss_sum / max(steps, 1),
            "images_per_s": images / max(elapsed, 1e-9),
            "images": images,
            "resumed_s": resumed_s,
        }

    def _epoch_so_far(self, epoch: int, timer: EpochTimer) -> tuple[int, float, int, set[str], float]:
        """(micro-batch, loss sum, images, unreadable files, seconds) that `epoch` starts from.

        Zeros (and the run's unreadable files) for an epoch that starts afresh; for an epoch resumed from a
        mid-epoch last.pth, the stopped run's values, its timer added into `timer`, and the seconds it had spent.
        """
        part, self._resume_position = self._resume_position, None
        if part is None or part["epoch"] != epoch:
            return 0, 0.0, 0, set(self.progress.unreadable), 0.0
        saved = part["timer"]
        for name, value in saved.items():
            setattr(timer, name, getattr(timer, name) + value)
        seconds = saved["stage_switch_s"] + saved["train_s"]
        return part["step"], part["loss_sum"], part["images"], set(part["unreadable"]), seconds

    def _stop_agreed(self) -> bool:
        """Whether any rank's callbacks ask to stop; every rank gets the same answer."""
        return self.dist.any_rank(self.callbacks.stop_requested())

    def _stop(self, epoch: int, step: int = 0, so_far: dict[str, Any] | None = None) -> NoReturn:
        """Stop the run where `epoch` has `step` micro-batches done: write last.pth there (unless the epoch's own
        last.pth, step 0, is that point already) and raise `RunStopped` on every rank."""
        if step:
            self.save_last(position={"epoch": epoch, "step": step}, so_far=so_far)
        self.dist.barrier()  # no rank leaves before rank 0's last.pth is in place (srun kills the rest on an exit)
        self.pipeline = None  # the stage's loader workers end
        self.tracker.close()  # the curves up to here; the resumed run appends after them
        raise RunStopped(self.work_dir / ckpt.LAST, epoch, step, self.progress.updates)

    def _optimizer_step(self) -> None:
        self.progress.updates += 1
        optimizer_update(self.model, self.optimizer, self.scaler, self.cfg.clip_grad, self.ema, self.progress.updates)

    def _diverged(self, value: float, epoch: int, step: int) -> None:
        last = self.work_dir / ckpt.LAST
        kept = (
            f"the last good checkpoint {last} (before epoch {epoch}) is kept"
            if last.is_file()
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"training diverged: the loss became {value} at epoch {epoch} step {step} (stage "
            f"{self.pipeline.stage_index}, size {self.pipeline.stage.input_size}, lr {self._lr():.3g}); {kept}: "
            "lower --lr/--blr, set --clip-grad, or turn off --amp, then rerun with --resume"
        )

    @torch.no_grad()
    def evaluate(self, module: torch.nn.Module) -> tuple[float, float]:
        """Top-1 / top-5 (percent) over the whole validation set at the final size."""
        loader = eval_loader(
            self.val_set,
            self.cfg.batch_size,
            self.dist.rank,
            self.dist.world_size,
            self.cfg.workers,
            pin_memory=self.device.type == "cuda",
        )
        module.eval()
        correct1 = correct5 = total = 0.0
        k = min(5, self.num_classes)
        for x, y, bad, _ in loader:
            if bad and self.cfg.corrupt_images == "stop":
                raise corrupt_error(bad[0])
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = module(x)
            top = logits.float().topk(k, dim=1).indices
            hits = top.eq(y[:, None])
            correct1 += hits[:, 0].sum().item()
            correct5 += hits.any(dim=1).sum().item()
            total += y.numel()
        correct1, correct5, total = self.dist.all_reduce_sum([correct1, correct5, total])
        return 100.0 * correct1 / total, 100.0 * correct5 / total

    def evaluates_after(self, epoch: int) -> bool:
        """Validate after `epoch`: every `eval_every` epochs when set, else at the end of every stage; always last."""
        if epoch + 1 == self.curriculum.total_epochs:
            return True
        if self.cfg.eval_every is not None:
            return (epoch + 1) % self.cfg.eval_every == 0
        return self.curriculum.stage_index(epoch + 1) != self.curriculum.stage_index(epoch)

    # --- bookkeeping -----------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """docs/FORMATS.md provenance (plus `recipe`, the resolved settings, and a few extras)."""
        p = self.progress
        return {
            "model_name": self.cfg.model,
            "model_kwargs": dict(self.model_kwargs),
            "imports": list(self.cfg.imports),  # modules that registered the model (--import)
            "data_config": self._data_config(),
            "curriculum": self.curriculum.to_dict(),
            "lowfreq": self.cfg.lowfreq,
            "epochs": self.curriculum.total_epochs,
            "budget_epochs": self.curriculum.budget_epochs,
            "equivalent_epochs": round(self.curriculum.equivalent_epochs(), 4),
            "wall_clock_s": round(p.wall_clock_s, 3),
            "device_hours": p.wall_clock_s * self.dist.world_size / 3600,
            "train_time_s": round(p.train_time_s, 3),
            "eval_time_s": round(p.eval_time_s, 3),
            "checkpoint_time_s": round(p.checkpoint_time_s, 3),
            "train_device_hours": p.train_time_s * self.dist.world_size / 3600,
            "devices": self.dist.world_size,
            "device_type": self.device.type,
            "images_seen": p.images_seen,
            "seed": self.cfg.seed,
            "best_top1": p.best_top1,
            "final_top1": p.final_top1,
            "final_top5": p.final_top5,
            "ema_top1": p.ema_top1,
            "ema_top5": p.ema_top5,
            "num_classes": self.num_classes,
            "val_images": len(self.val_set),  # the sample size of every top-1 above
            "final_size": self.final_size,
            "effective_batch": self.effective_batch,
            "unreadable_images": len(p.unreadable),
            "recipe": dict(self.config_dict),
            "versions": ckpt.package_versions(),
            "git_commit": self._git_commit,
        }

    def _data_config(self) -> dict[str, Any]:
        """`eval_transform`'s preprocessing in timm's data-config keys (what a hub export's pretrained_cfg says)."""
        return {
            "input_size": [3, self.final_size, self.final_size],
            "mean": [float(v) for v in self.mean_std[0]],
            "std": [float(v) for v in self.mean_std[1]],
            "crop_pct": self.cfg.crop_pct,
            "interpolation": EVAL_INTERPOLATION,
        }

    def _weights(self) -> dict[str, Any]:
        weights = {"format": ckpt.FORMAT, "model": ckpt.cpu_state_dict(self.model)}
        if self.ema is not None:
            weights["model_ema"] = ckpt.cpu_state_dict(self.ema.module)
        return weights

    def save_last(self, position: dict[str, int] | None = None, so_far: dict[str, Any] | None = None) -> None:
        """Write last.pth: at an epoch's end, or at `position` (epoch, micro-batch) with each rank's `so_far`."""
        gathered = self.dist.all_gather_object((capture_rng_state(), so_far))
        if not self.dist.is_main:
            return
        rng = [state for state, _ in gathered]
        payload = self._weights()
        payload["provenance"] = self.provenance()
        payload["resume"] = {
            "epoch": self.progress.epoch,
            "input_size": self.current_size,
            "progress": asdict(self.progress),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "position": None if position is None else {**position, "ranks": [part for _, part in gathered]},
            "config": dict(self.config_dict),
            "world_size": self.dist.world_size,
            "effective_batch": self.effective_batch,
            "classes": list(self.train_set.classes),
        }
        ckpt.save_checkpoint(payload, self.work_dir / ckpt.LAST, on_write=self.callbacks.on_checkpoint_written)

    def save_final(self) -> dict[str, Any]:
        for module in filter(None, (self.model, self.ema.module if self.ema else None)):
            resize_model_input(module, self.final_size)
        self.current_size = self.final_size
        provenance = self.provenance()
        if self.dist.is_main:
            payload = self._weights()
            payload["provenance"] = provenance
            ckpt.save_checkpoint(payload, self.work_dir / ckpt.FINAL, on_write=self.callbacks.on_checkpoint_written)
        self.dist.barrier()
        return provenance

    # --- the run ---------------------------------------------------------------------------------
    def run(self, resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train from `resume` (a loaded last.pth) or from scratch to the end; returns the final provenance."""
        self._git_commit = ckpt.git_commit()
        self.setup(resume)
        cfg, total = self.cfg, self.curriculum.total_epochs
        if self.dist.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(json.dumps(self.curriculum.to_dict(), indent=2) + "\n", self.work_dir / ckpt.CURRICULUM)
            ckpt.trim_log(self.work_dir / ckpt.LOG, self.progress.epoch)
        self.tracker = Tracker(
            self.work_dir,
            cfg.vis,
            cfg.log_interval,
            self.progress.epoch,
            self.progress.updates,
            self.config_dict,
            enabled=self.dist.is_main,
        )
        self.say(
            f"model {cfg.model} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M params, "
            f"{self.num_classes} classes), {len(self.train_set)} train / {len(self.val_set)} val images, "
            f"{self.dist.world_size} x {self.device.type}; LR {self.schedule.describe()}, peak "
            f"{peak_lr(cfg, self.effective_batch):.3g} at effective batch {self.effective_batch}"
            + (f"; resuming at epoch {self.progress.epoch}" if resume else "")
        )
        self.say(
            describe_plan(
                cfg,
                self.curriculum,
                self.dist.world_size,
                len(self.train_set),
                f" (counted in {Path(cfg.data) / 'train'})",
                paper_differences(cfg, self.curriculum, self.dist.world_size),
            )
        )
        clock = time.perf_counter()
        for epoch in range(self.progress.epoch, total):
            epoch_start = time.perf_counter()
            timer = EpochTimer()
            self.enter_stage(epoch)
            timer.stage_switch_s = time.perf_counter() - epoch_start
            metrics = self.train_epoch(epoch, timer)
            epoch_start -= metrics["resumed_s"]  # a resumed epoch's time before the stop counts
            clock -= metrics["resumed_s"]
            self._stage_images_per_s = metrics["images_per_s"]
            top1 = top5 = ema1 = ema5 = None
            if self.evaluates_after(epoch):
                evaluating = time.perf_counter()
                top1, top5 = self.evaluate(model_at_size(self.model, self.current_size, self.final_size))
                p = self.progress
                p.final_top1, p.final_top5 = top1, top5
                p.best_top1 = top1 if p.best_top1 is None else max(p.best_top1, top1)
                if self.ema is not None:
                    ema1, ema5 = self.evaluate(model_at_size(self.ema.module, self.current_size, self.final_size))
                    p.ema_top1, p.ema_top5 = ema1, ema5
                timer.eval_s = time.perf_counter() - evaluating
            now = time.perf_counter()
            self.progress.wall_clock_s += now - clock
            self.progress.train_time_s += timer.stage_switch_s + timer.train_s
            self.progress.eval_time_s += timer.eval_s
            clock = now
            self.progress.epoch = epoch + 1
            stage = self.pipeline.stage
            record = {
                "epoch": epoch,
                "stage": self.pipeline.stage_index,
                "input_size": stage.input_size,
                "randaug_magnitude": stage.randaug_magnitude,
                "lr": self._lr(),
                "train_loss": metrics["train_loss"],
                "images_per_s": metrics["images_per_s"],
                "epoch_time_s": now - epoch_start,
                "wall_clock_s": self.progress.wall_clock_s,
                "top1": top1,
                "top5": top5,
                "ema_top1": ema1,
                "ema_top5": ema5,
                "batch_size": self.pipeline.batch_size,
                "accum_steps": self.pipeline.accum_steps,
                "updates": self.progress.updates,
                "images_seen": self.progress.images_seen,
                "unreadable_images": len(self.progress.unreadable),
                "lowfreq": cfg.lowfreq,
                "workers": cfg.workers,
                "threads": torch.get_num_threads(),
                **{name: round(value, 6) for name, value in asdict(timer).items()},
                "checkpoint_s": round(self._last_checkpoint_s, 6),  # the previous epoch's last.pth write
            }
            if self.dist.is_main:
                ckpt.append_log(self.work_dir / ckpt.LOG, record)
            self.tracker.epoch(record)
            evaluated = "" if top1 is None else f", top1 {top1:.2f} top5 {top5:.2f}"
            evaluated += "" if ema1 is None else f", ema top1 {ema1:.2f}"
            self.say(
                f"epoch {epoch + 1}/{total} size {stage.input_size}: loss {metrics['train_loss']:.4f}, "
                f"lr {self._lr():.3g}, {metrics['images_per_s']:.1f} img/s, {now - epoch_start:.1f}s{evaluated}"
            )
            saving = time.perf_counter()
            self.save_last()
            self._last_checkpoint_s = time.perf_counter() - saving
            self.progress.checkpoint_time_s += self._last_checkpoint_s
            if epoch + 1 < total and self._stop_agreed():
                self._stop(epoch + 1)  # the last.pth just written is where the run resumes
        self.pipeline = None  # the last stage's workers end here
        self.tracker.close()
        if self.progress.unreadable:
            self.say(f"skipped {len(self.progress.unreadable)} unreadable image(s), e.g. {self.progress.unreadable[0]}")
        provenance = self.save_final()
        self.say(
            f"done: {self.work_dir / ckpt.FINAL} (final top1 {provenance['final_top1']}, best "
            f"{provenance['best_top1']}, ema {provenance['ema_top1']}, "
            f"{provenance['device_hours']:.4f} device-hours)"
        )
        return provenance
