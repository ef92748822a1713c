"""The papers' training recipe per model family: the defaults a run gets before YAML and CLI overrides.

EfficientTrain trains every model with the ConvNeXt-style timm recipe (DESIGN.md): AdamW, lr 4e-3 at
batch 4096, cosine with 20 warm-up epochs, wd 0.05, RandAugment (m, 0.5), mixup 0.8, cutmix 1.0, label
smoothing 0.1, random erasing 0.25; per family, as the official scripts (ET_training.py of the ICCV
version, `_ET_pp_main_<model>.py` of EfficientTrain++) pass it: layer scale 1e-6 and EMA 0.9999 for
ConvNeXt (no AMP), EMA for CSWin, grad clipping 5.0 and AMP for DeiT/Swin, no AMP for ResNet-50, and each
model's stochastic depth. A curriculum may scale stochastic depth (`Curriculum.drop_path_scale`;
EfficientTrain++: budget / 200). `paper_differences` lists what a resolved run does otherwise.
Every value and its source file: docs/PRETRAINING_RECIPES.md.
"""

from __future__ import annotations

import re
from typing import Any

from etcore.families import family_of
from pretraining.config import PretrainConfig
from pretraining.curriculum import CURRICULUM_NAMES, Curriculum, canonical_curriculum_name, stage_batch

# The models the official scripts train (timm names); others get their family's rules.
OFFICIAL_MODELS = (
    r"^(convnext_(tiny|small|base)|swin_(tiny|small|base)_patch4_window7_224|deit_(tiny|small)_patch16_224|resnet50)"
    r"(\.|$)"
)
OFFICIAL_EFFECTIVE_BATCH = 4096
OFFICIAL_FINAL_SIZE = 224
# Settings that change what is trained (not where, how fast or how it is logged).
TRAINING_FIELDS = (
    "final_size",
    "model_kwargs",
    "drop_path",
    "scale_batch_with_size",
    "lowfreq",
    "interpolation",
    "randaug",
    "reprob",
    "crop_scale",
    "hflip",
    "crop_pct",
    "mixup",
    "cutmix",
    "mixup_prob",
    "mixup_switch_prob",
    "mixup_mode",
    "smoothing",
    "opt",
    "lr",
    "blr",
    "lr_ref_batch",
    "min_lr",
    "warmup_epochs",
    "warmup_lr",
    "lr_progress",
    "weight_decay",
    "betas",
    "opt_eps",
    "clip_grad",
    "ema",
    "ema_decay",
    "amp",
)


def recipe_family(model_name: str) -> str:
    """The family whose recipe `model_name` trains with (`etcore.families`), or 'other' (timm's defaults)."""
    family = family_of(model_name)
    return family.name if family is not None else "other"


def family_defaults(model_name: str, curriculum: Curriculum, on_gpu: bool) -> dict[str, tuple[Any, str]]:
    """Recipe values for this model and curriculum, each with the reason it applies (printed in the recipe).

    Returns {config field: (value, reason)}; `model_kwargs` entries are keyed `model_kwargs.<name>`.
    The switches are the family's (`etcore.families`): clipping, EMA, layer scale, AMP, drop path.
    """
    family = family_of(model_name)
    if family is None:  # a model of no known family: timm's defaults, mixed precision on GPUs
        return {"amp": (True, "other: mixed precision on GPU")} if on_gpu else {}
    chosen: dict[str, tuple[Any, str]] = {}
    if family.grad_clip:
        chosen["clip_grad"] = (family.grad_clip, f"{family.name}: gradient clipping {family.grad_clip:g}")
    if family.ema:
        chosen["ema"] = (True, f"{family.name}: EMA 0.9999")
    if family.layer_scale is not None:
        chosen["model_kwargs.ls_init_value"] = (
            family.layer_scale,
            f"{family.name}: layer scale {family.layer_scale:g}",
        )
    if not family.amp:
        chosen["amp"] = (False, f"{family.name}: trained without AMP")
    elif on_gpu:
        chosen["amp"] = (True, f"{family.name}: mixed precision on GPU")
    drop_path = family.drop_path_of(model_name)
    if drop_path is not None:
        base = model_name.split(".", 1)[0].lower()
        reason = f"{base}: stochastic depth {drop_path} of its paper"
        if curriculum.drop_path_scale != 1.0:
            drop_path = round(drop_path * curriculum.drop_path_scale, 4)
            reason += f", x {curriculum.drop_path_scale:g} (curriculum {curriculum.name}'s drop_path_scale)"
        chosen["drop_path"] = (drop_path, reason)
    return chosen


def paper_reference(config: PretrainConfig, curriculum: Curriculum) -> PretrainConfig:
    """The settings the official scripts would train `config.model` with under `curriculum` (on GPUs)."""
    reference = PretrainConfig(model=config.model, curriculum=config.curriculum, epochs=config.epochs)
    kwargs: dict[str, Any] = {}
    for key, (value, _) in family_defaults(config.model, curriculum, on_gpu=True).items():
        if key.startswith("model_kwargs."):
            kwargs[key.split(".", 1)[1]] = value
        else:
            setattr(reference, key, value)
    reference.model_kwargs = kwargs
    reference.lowfreq = curriculum.lowfreq
    return reference


def paper_differences(config: PretrainConfig, curriculum: Curriculum, world_size: int) -> list[str]:
    """What this resolved run does otherwise than the official scripts, one line each (empty: nothing)."""
    notes: list[str] = []
    if canonical_curriculum_name(config.curriculum) is None:
        notes.append(
            f"curriculum {config.curriculum} is a custom file, not one of {', '.join(CURRICULUM_NAMES)}: "
            "its stages are not the papers'"
        )
    if not re.match(OFFICIAL_MODELS, config.model.lower()):
        notes.append(
            f"model {config.model} is not one the official scripts train: its family's "
            f"({recipe_family(config.model)}) rules are used"
        )
    reference = paper_reference(config, curriculum)
    for name in TRAINING_FIELDS:
        ours, theirs = getattr(config, name), getattr(reference, name)
        if name == "final_size" and ours != OFFICIAL_FINAL_SIZE:
            notes.append(f"final_size = {ours} (official: {OFFICIAL_FINAL_SIZE}): stage sizes scaled with it")
        elif name != "final_size" and ours != theirs:
            notes.append(f"{name} = {ours!r} (official: {theirs!r})")
    effective = config.batch_size * config.accum_steps * world_size
    if effective != OFFICIAL_EFFECTIVE_BATCH:
        notes.append(
            f"effective batch {effective} (official: {OFFICIAL_EFFECTIVE_BATCH}; the peak LR follows it "
            f"linearly unless --lr is given)"
        )
    if config.scale_batch_with_size:
        short = [
            index
            for index, stage in enumerate(curriculum.stages)
            if stage_batch(stage, curriculum.final_size, 1, config.accum_steps, True)[0]
            < stage.batch_factor(curriculum.final_size)
        ]
        if short:
            notes.append(
                f"stages {_ranges(short)}: per-device batch not scaled by the stage's full batch_scale, since "
                f"--accum-steps {config.accum_steps} leaves too little accumulation to trade (same effective batch; "
                "BatchNorm statistics and mixup draws are per micro-batch)"
            )
    return notes


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)
