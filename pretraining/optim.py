"""The recipe's training objects from timm: optimizer, LR schedule over the whole curriculum, mixup, loss, EMA.

The LR follows one cosine with warm-up over the whole run (timm's CosineLRScheduler); its time axis is
either epochs or, for EfficientTrain++, compute done (`Curriculum.compute_progress`) measured in
equivalent full-size epochs, so the LR never jumps at a stage boundary.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3, dispatch_clip_grad

from pretraining.curriculum import Curriculum

REFERENCE_WARMUP_FRACTION = 20 / 300  # the recipe's 20 warm-up epochs of 300


def peak_lr(config: Any, effective_batch: int) -> float:
    """--lr when given, else the linear scaling rule blr * effective_batch / lr_ref_batch."""
    if config.lr is not None:
        return float(config.lr)
    return config.blr * effective_batch / config.lr_ref_batch


def build_optimizer(model: torch.nn.Module, config: Any, lr: float) -> torch.optim.Optimizer:
    """timm optimizer (AdamW by default); no weight decay on norms, biases and position tables."""
    return create_optimizer_v2(
        model, opt=config.opt, lr=lr, weight_decay=config.weight_decay, betas=tuple(config.betas), eps=config.opt_eps
    )


class CurriculumLRSchedule:
    """Cosine with linear warm-up over the whole curriculum, queried at fractional epochs."""

    def __init__(self, optimizer: torch.optim.Optimizer, curriculum: Curriculum, config: Any) -> None:
        progress = curriculum.lr_axis if config.lr_progress == "auto" else config.lr_progress
        self.by_compute = progress == "compute"
        self.curriculum = curriculum
        self.length = curriculum.equivalent_epochs() if self.by_compute else float(curriculum.total_epochs)
        warmup = config.warmup_epochs
        self.warmup = self.length * REFERENCE_WARMUP_FRACTION if warmup is None else min(float(warmup), self.length)
        self.scheduler = CosineLRScheduler(
            optimizer,
            t_initial=max(self.length - self.warmup, 1e-9),
            lr_min=config.min_lr,
            warmup_t=self.warmup,
            warmup_lr_init=config.warmup_lr,
            warmup_prefix=True,
            cycle_limit=1,
            t_in_epochs=False,
        )

    def schedule_time(self, epoch: float) -> float:
        """Position on the schedule axis (epochs, or equivalent epochs of compute done)."""
        if self.by_compute:
            return self.curriculum.compute_progress(epoch) * self.length
        return float(epoch)

    def step(self, epoch: float) -> None:
        """Set the optimizer's LR for training at fractional epoch `epoch`."""
        self.scheduler.step_update(self.schedule_time(epoch))

    def describe(self) -> str:
        axis = "compute (equivalent epochs)" if self.by_compute else "epochs"
        return f"cosine over {self.length:.2f} {axis}, warm-up {self.warmup:.2f}"


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
