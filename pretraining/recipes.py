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

from pretraining.config import PretrainConfig
from pretraining.curriculum import CURRICULUM_NAMES, Curriculum, canonical_curriculum_name, model_family, stage_batch

# Stochastic depth of the original recipes (ConvNeXt, Swin, DeiT, PVTv2 papers; ET_training.py's default_dp_dict),
# by timm name prefix.
DROP_PATH_BY_MODEL = (
    (r"^convnext_tiny", 0.1),
    (r"^convnext_small", 0.4),
    (r"^convnext_base", 0.5),
    (r"^convnext_large", 0.5),
    (r"^swin_tiny", 0.2),
    (r"^swin_small", 0.3),
    (r"^swin_base", 0.5),
    (r"^deit_(tiny|small|base)", 0.1),
    (r"^pvt_v2_b[012]", 0.1),
    (r"^pvt_v2_b[345]", 0.3),
)
GRAD_CLIP_FAMILIES = {"deit", "vit", "swin", "pvt"}
EMA_FAMILIES = {"convnext", "cswin"}
# ConvNeXt: the paper's table and the scripts; ResNet-50: the scripts pass no --use_amp (the table says AMP).
NO_AMP_FAMILIES = {"convnext", "resnet"}
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
    """The curriculum's model family, plus `pvt` (PVTv2) which only matters for the recipe."""
    family = model_family(model_name)
    if family == "other" and model_name.lower().startswith("pvt"):
        return "pvt"
    return family


def family_defaults(model_name: str, curriculum: Curriculum, on_gpu: bool) -> dict[str, tuple[Any, str]]:
    """Recipe values for this model and curriculum, each with the reason it applies (printed in the recipe).

    Returns {config field: (value, reason)}; `model_kwargs` entries are keyed `model_kwargs.<name>`.
    """
    family = recipe_family(model_name)
    chosen: dict[str, tuple[Any, str]] = {}
    if family in GRAD_CLIP_FAMILIES:
        chosen["clip_grad"] = (5.0, f"{family}: gradient clipping 5.0")
    if family in EMA_FAMILIES:
        chosen["ema"] = (True, f"{family}: EMA 0.9999")
    if family == "convnext":
        chosen["model_kwargs.ls_init_value"] = (1e-6, "convnext: layer scale 1e-6")
    if family in NO_AMP_FAMILIES:
        chosen["amp"] = (False, f"{family}: trained without AMP")
    elif on_gpu:
        chosen["amp"] = (True, f"{family}: mixed precision on GPU")
    base = model_name.split(".", 1)[0].lower()
    drop_path = next((rate for pattern, rate in DROP_PATH_BY_MODEL if re.match(pattern, base)), None)
    if drop_path is not None:
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
