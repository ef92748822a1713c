"""The papers' training recipe per model family: the defaults a run gets before YAML and CLI overrides.

EfficientTrain trains every model with the ConvNeXt-style timm recipe (DESIGN.md): AdamW, lr 4e-3 at
batch 4096, cosine with 20 warm-up epochs of 300, wd 0.05, RandAugment (9, 0.5), mixup 0.8, cutmix
1.0, label smoothing 0.1, random erasing 0.25; per family: layer scale 1e-6 and EMA 0.9999 for
ConvNeXt (no AMP), grad clipping 5.0 for DeiT/PVT/Swin, and each model's stochastic depth.
A curriculum may scale stochastic depth (`Curriculum.drop_path_scale`; EfficientTrain++: budget / 200).
"""

from __future__ import annotations

import re
from typing import Any

from pretraining.curriculum import Curriculum, model_family

# Stochastic depth of the original recipes (ConvNeXt, Swin, DeiT, PVTv2 papers), by timm name prefix.
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
NO_AMP_FAMILIES = {"convnext"}


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
