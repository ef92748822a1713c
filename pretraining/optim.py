"""The recipe's training objects from timm: optimizer, LR schedule over the whole curriculum, mixup, loss, EMA.

The LR is the official code's per-update cosine with linear warm-up (`utils_buffer.cosine_scheduler`),
on the curriculum's time axis (`Curriculum.lr_axis`): real epochs (EfficientTrain, baseline), compute
done in equivalent full-size epochs, or one cosine per stage (EfficientTrain++'s official scripts, where
each stage trains a part of its own scaled schedule, so the LR steps slightly at stage boundaries).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3, dispatch_clip_grad

from pretraining.curriculum import RECIPE_EPOCHS, RECIPE_WARMUP_EPOCHS, Curriculum, stage_batch

REFERENCE_WARMUP_FRACTION = RECIPE_WARMUP_EPOCHS / RECIPE_EPOCHS  # the recipe's 20 warm-up epochs of 300
IMAGENET_TRAIN_IMAGES = 1281167  # ILSVRC-2012 train set: 1281167 // 4096 = 312 updates per epoch


def peak_lr(config: Any, effective_batch: int) -> float:
    """--lr when given, else the linear scaling rule blr * effective_batch / lr_ref_batch."""
    if config.lr is not None:
        return float(config.lr)
    return config.blr * effective_batch / config.lr_ref_batch


def updates_per_epoch(train_images: int, effective_batch: int) -> int:
    """Optimizer updates per epoch as the official code counts them: len(dataset) // effective batch (>= 1).

    The micro-batches left over after that many updates are skipped (`engine_buffer.train_one_epoch`).
    """
    return max(1, int(train_images) // int(effective_batch))


# torch's fused kernel does the same update in one pass; measured on 2 CPU cores for ResNet-18 a step took 8 ms
# instead of 39 ms, a fixed cost per update that is ~10% of a 64 px demo step and would hide the curriculum's saving.
FUSED_OPTIMIZERS = frozenset({"adam", "adamw"})


def build_optimizer(model: torch.nn.Module, config: Any, lr: float) -> torch.optim.Optimizer:
    """timm optimizer (AdamW by default); no weight decay on norms, biases and position tables.

    Adam and AdamW use torch's fused implementation (`FUSED_OPTIMIZERS`): the same update, a faster step.
    """
    extra = {"fused": True} if config.opt.lower() in FUSED_OPTIMIZERS else {}
    return create_optimizer_v2(
        model,
        opt=config.opt,
        lr=lr,
        weight_decay=config.weight_decay,
        betas=tuple(config.betas),
        eps=config.opt_eps,
        **extra,
    )


# Hand-written rather than timm's CosineLRScheduler, whose warm-up ramps as t / W: the official
# `cosine_scheduler` ramps by np.linspace(start, base, W * N) (endpoint included) and needs matching to 1e-6.
def official_cosine_lr(
    iteration: float, base: float, final: float, total_iters: float, warmup_iters: float, start: float = 0.0
) -> float:
    """LR at update `iteration` of `utils_buffer.cosine_scheduler(base, final, epochs, N, warmup_epochs)`.

    `total_iters` = epochs * N, `warmup_iters` = warmup_epochs * N: the warm-up is linspace(start, base,
    warmup_iters), then final + (base - final)/2 * (1 + cos(pi * i / (total_iters - warmup_iters))).
    Fractional iterations (the compute axis) interpolate the same formula.
    """
    if iteration < warmup_iters:
        if warmup_iters <= 1:
            return start
        return start + (base - start) * iteration / (warmup_iters - 1)
    span = total_iters - warmup_iters
    if span <= 0:
        return final
    progress = min((iteration - warmup_iters) / span, 1.0)
    return final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * progress))


class CurriculumLRSchedule:
    """The official per-update cosine with warm-up over the whole curriculum.

    `updates_per_epoch` is N of the official schedule (`updates_per_epoch()`); `lr_at(epoch, update)` is
    the LR of update `update` (0-based) of epoch `epoch` (0-based, may be fractional), `step` sets it.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, curriculum: Curriculum, config: Any, updates_per_epoch: int = 1
    ) -> None:
        self.optimizer = optimizer
        self.curriculum = curriculum
        self.updates = int(updates_per_epoch)
        self.final = float(config.min_lr)
        self.start = float(config.warmup_lr)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base = max(group["initial_lr"] for group in optimizer.param_groups)
        axis = curriculum.lr_axis if config.lr_progress == "auto" else config.lr_progress
        self.axis = axis
        self.by_compute = axis == "compute"
        self.notes: list[str] = []
        override = config.warmup_epochs
        if axis == "stages":
            # one (length, warm-up) per stage: the stage's own cosine
            self.segments = [
                (float(stage.lr_epochs), self._fit_warmup(self._warmup(override, stage), stage.lr_epochs, index))
                for index, stage in enumerate(curriculum.stages)
            ]
        else:
            length = curriculum.equivalent_epochs() if self.by_compute else float(curriculum.total_epochs)
            self.segments = [(length, self._fit_warmup(self._warmup(override, None), length, None))]
        self.length, self.warmup = self.segments[0]

    def _warmup(self, override: float | None, stage: Any) -> float:
        """--warmup-epochs, else the stage's, else the curriculum's, else 20 per 300 of the schedule."""
        if override is not None:
            return float(override)
        if stage is not None and stage.lr_warmup_epochs is not None:
            return float(stage.lr_warmup_epochs)
        if self.curriculum.warmup_epochs is not None:
            return float(self.curriculum.warmup_epochs)
        length = stage.lr_epochs if stage is not None else None
        if length is None:
            length = self.curriculum.equivalent_epochs() if self.by_compute else self.curriculum.total_epochs
        return float(length) * REFERENCE_WARMUP_FRACTION

    def _fit_warmup(self, warmup: float, length: float, index: int | None) -> float:
        """A warm-up as long as its cosine leaves no cosine (the official code fails): use 20/300 of it instead."""
        if warmup < length or warmup == 0:
            return warmup
        fitted = length * REFERENCE_WARMUP_FRACTION
        where = "the schedule" if index is None else f"stage {index}'s cosine"
        self.notes.append(
            f"warm-up {warmup:g} does not fit {where} of {length:g} epochs (the official code would stop): "
            f"{fitted:.4g} (20 per 300) used"
        )
        return fitted

    # --- positions -------------------------------------------------------------------------------
    def position(self, epoch: float) -> tuple[float, float, float]:
        """(position, length, warm-up) on the cosine that trains fractional epoch `epoch`, in its epochs."""
        epoch = float(epoch)
        if self.axis == "stages":
            last = self.curriculum.total_epochs - 1
            index = self.curriculum.stage_index(min(max(int(math.floor(epoch)), 0), last))
            stage = self.curriculum.stages[index]
            length, warmup = self.segments[index]
            return stage.lr_start_epoch + (epoch - stage.start_epoch), length, warmup
        if self.by_compute:
            return self.curriculum.compute_progress(epoch) * self.length, self.length, self.warmup
        return epoch, self.length, self.warmup

    def schedule_time(self, epoch: float) -> float:
        """Position on the schedule axis (epochs, equivalent epochs of compute done, or the stage's cosine)."""
        return self.position(epoch)[0]

    def lr_at(self, epoch: float, update: int = 0) -> float:
        """The peak-group LR of update `update` of epoch `epoch`."""
        position, length, warmup = self.position(epoch)
        n = self.updates
        return official_cosine_lr(position * n + update, self.base, self.final, length * n, warmup * n, self.start)

    def step(self, epoch: float, update: int = 0) -> None:
        """Set the optimizer's LR for update `update` of (fractional) epoch `epoch`."""
        lr = self.lr_at(epoch, update)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["initial_lr"] / self.base if self.base else lr

    def warmup_end(self) -> float:
        """The real (fractional) epoch where the last warm-up ends (0.0 without warm-up)."""
        end = 0.0
        for epoch in range(self.curriculum.total_epochs):
            position, _, warmup = self.position(epoch)
            if position < warmup:
                rate = self.curriculum.epoch_cost(epoch) * self.length / self.curriculum.equivalent_epochs()
                rate = rate if self.by_compute else 1.0
                end = min(epoch + 1.0, epoch + (warmup - position) / rate)
        return end

    # --- resume and logs -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Stateless (the LR is a function of the position); recorded for the resume check."""
        return {"schedule": "official-cosine", "updates_per_epoch": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the LR is recomputed from the epoch and update (older timm states are ignored)."""

    def describe(self, warmup_end: bool = True) -> str:
        if self.axis == "stages":
            text = "one cosine per stage, each stage training its part of its own schedule (EfficientTrain++'s scripts)"
        else:
            axis = "compute (equivalent epochs)" if self.by_compute else "epochs"
            text = f"cosine over {self.length:g} {axis} with {self.warmup:g} warm-up"
        text += f", per update ({self.updates}/epoch)"
        return f"{text}, warm-up ends at epoch {self.warmup_end():g}" if warmup_end else text


LOWFREQ_DESCRIPTIONS = {
    "fft": "exact low-frequency crop of the batch on the device, before mixup (EfficientTrain, ICCV engine.py)",
    "resize": "LANCZOS resize to the stage size in the data workers, after RandomResizedCrop/flip/RandAugment and "
    "before ToTensor/Normalize/RandomErasing (EfficientTrain++, datasets_buffer.py)",
    "direct": "every per-image operation at the stage size in the data workers: JPEGs decoded at reduced scale "
    "(Image.draft) where the crop allows, RandomResizedCrop straight to the stage size (antialiased), RandAugment "
    "and RandomErasing at the stage size (this suite's loader, not the papers' order; docs/PRETRAINING_RECIPES.md)",
}


def resolved_lowfreq(config: Any, curriculum: Curriculum) -> str:
    """The low-frequency operation the run uses: --lowfreq, else the curriculum's own."""
    return config.lowfreq or curriculum.lowfreq


def run_summary(config: Any, curriculum: Curriculum, schedule: CurriculumLRSchedule) -> str:
    """The curriculum line of a run, from the values the run resolved (not the curriculum's defaults):
    its LR axis and warm-up, its stochastic depth and its low-frequency operation."""
    budget = f", budget {curriculum.budget_epochs:g}" if curriculum.budget_epochs is not None else ""
    warmup = "warm-up per stage" if schedule.axis == "stages" else f"warm-up {schedule.warmup:g}"
    drop_path = "timm's default" if config.drop_path is None else f"{config.drop_path:g}"
    return (
        f"curriculum {curriculum.name}: {curriculum.total_epochs} epochs at final size {curriculum.final_size}, "
        f"{curriculum.equivalent_epochs():.1f} equivalent epochs (ratio {curriculum.compute_ratio():.3f}{budget}); "
        f"LR over {schedule.axis}, {warmup}, drop path {drop_path}, "
        f"low frequencies by {resolved_lowfreq(config, curriculum)}"
    )


def describe_plan(
    config: Any,
    curriculum: Curriculum,
    world_size: int,
    train_images: int,
    images_note: str = "",
    differences: list[str] | None = None,
) -> str:
    """Every stage's epochs, size, RandAugment, batch per device x accumulation and LR at its first and last
    epoch, the epoch where warm-up ends, the low-frequency operation and the values that are not the paper's."""
    from pretraining.data import randaug_string

    effective = config.batch_size * config.accum_steps * world_size
    peak = peak_lr(config, effective)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    per_epoch = updates_per_epoch(train_images, effective)
    schedule = CurriculumLRSchedule(optimizer, curriculum, config, per_epoch)
    lines = [
        run_summary(config, curriculum, schedule),
        f"LR: {schedule.describe(warmup_end=False)}; peak {peak:.4g} at effective batch {effective}; "
        f"{per_epoch} updates per epoch = {train_images} train images // {effective}{images_note}",
    ]
    for index, stage in enumerate(curriculum.stages):
        batch, accum = stage_batch(
            stage, curriculum.final_size, config.batch_size, config.accum_steps, config.scale_batch_with_size
        )
        first, last = schedule.lr_at(stage.start_epoch), schedule.lr_at(stage.end_epoch - 1)
        position, length, warmup = schedule.position(stage.start_epoch)
        cosine = (
            f"  [its cosine: epochs {position:g}-{position + stage.epochs - 1:g} of {length:g}, warm-up {warmup:g}]"
            if schedule.axis == "stages"
            else ""
        )
        augment = randaug_string(config.randaug, stage.randaug_magnitude) or "none"
        lines.append(
            f"  stage {index}: epochs {stage.start_epoch:>4}-{stage.end_epoch - 1:<4} ({stage.epochs:>3})"
            f"  size {stage.input_size:>4}  randaug m={stage.randaug_magnitude:g} ({augment})"
            f"  batch {batch}/device x accum {accum}  lr {first:.4g} -> {last:.4g}{cosine}"
        )
    end = schedule.warmup_end()
    equivalent = curriculum.compute_progress(end) * curriculum.equivalent_epochs()
    lines.append(
        f"warm-up ends at epoch {end:g} of {curriculum.total_epochs} ({equivalent:.2f} equivalent full-size epochs, "
        f"{100 * curriculum.compute_progress(end):.1f}% of the compute)"
    )
    lines.extend(f"note: {note}" for note in schedule.notes)
    lowfreq = resolved_lowfreq(config, curriculum)
    lines.append(f"low-frequency operation: {lowfreq}: {LOWFREQ_DESCRIPTIONS[lowfreq]}")
    if differences is not None:
        if differences:
            lines.append("not the paper's (official scripts) in this run:")
            lines.extend(f"  - {item}" for item in differences)
        else:
            lines.append("not the paper's: nothing; every value above is the official scripts'")
    return "\n".join(lines)


def build_mixup(config: Any, num_classes: int) -> Mixup | None:
    """timm Mixup/CutMix with label smoothing folded into the soft targets, or None when both are off."""
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    return Mixup(
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        prob=config.mixup_prob,
        switch_prob=config.mixup_switch_prob,
        mode=config.mixup_mode,
        label_smoothing=config.smoothing,
        num_classes=num_classes,
    )


def build_criterion(config: Any, mixup: Mixup | None) -> torch.nn.Module:
    """Soft-target CE after mixup; label-smoothing CE without it; plain CE when smoothing is 0."""
    if mixup is not None:
        return SoftTargetCrossEntropy()
    if config.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=config.smoothing)
    return torch.nn.CrossEntropyLoss()


def build_ema(model: torch.nn.Module, config: Any) -> ModelEmaV3 | None:
    """timm ModelEmaV3 of the (unwrapped) model, or None when EMA is off."""
    if not config.ema:
        return None
    return ModelEmaV3(model, decay=config.ema_decay)


def optimizer_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    clip_grad: float | None,
    ema: ModelEmaV3 | None,
    updates: int,
) -> None:
    """One optimiser update after the backward pass(es): unscale + clip, step, reset grads, then EMA.

    Shared by the engine and the curriculum benchmark, so the benchmark times exactly the engine's step.
    `updates` is the count including this one (timm's EMA warm-up reads it).
    """
    if clip_grad:
        scaler.unscale_(optimizer)
        dispatch_clip_grad(model.parameters(), clip_grad, mode="norm")
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(model, step=updates)
