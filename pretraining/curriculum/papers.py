"""The papers' curricula as data: EfficientTrain (ICCV, arXiv 2211.09703) and EfficientTrain++ (arXiv 2405.08768).

The ICCV schedule is the same for every model; EfficientTrain++'s sizes and per-stage batch factors differ by
model family and live with the other family facts in `etcore.families`. Sources: ET_training.py (ICCV) and
`_ET_pp_main_<model>.py` (EfficientTrain++), value by value in docs/PRETRAINING_RECIPES.md.
"""

from __future__ import annotations

import re

from etcore.errors import UserInputError
from etcore.families import FAMILIES, Family, family_named, family_of

CURRICULUM_NAMES = ("baseline", "efficienttrain", "efficienttrain++")
_ALIASES = {
    "efficienttrain_pp": "efficienttrain++",
    "efficienttrainpp": "efficienttrain++",
    "et": "efficienttrain",
    "et++": "efficienttrain++",
}

BASELINE_MAGNITUDE = 9.0
# EfficientTrain (ICCV): five equal stages; sizes at final size 224 and RandAugment magnitudes.
EFFICIENTTRAIN_SIZES_224 = (160, 160, 160, 192, 224)
EFFICIENTTRAIN_MAGNITUDES = (1.0, 3.0, 5.0, 7.0, 9.0)
# EfficientTrain (ICCV) official ET_training.py: per-GPU batch x2 (accumulation / 2) in the four stages below 224.
EFFICIENTTRAIN_BATCH_SCALES = (2, 2, 2, 2, 1)
DEFAULT_SIZE_MULTIPLE = 32
ETPP_DROP_PATH_REFERENCE_EPOCHS = 200.0  # EfficientTrain++ scales stochastic depth by budget / 200
# Warm-up of the recipe (paper Table 'training hyper-parameters'): 20 epochs; a curriculum without its own warm-up
# gets the same share (20 per 300) of its schedule.
RECIPE_WARMUP_EPOCHS = 20
RECIPE_EPOCHS = 300


def canonical_curriculum_name(name: str) -> str | None:
    """`name` as one of CURRICULUM_NAMES (aliases resolved), or None for a file path."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    return key if key in CURRICULUM_NAMES else None


def model_family(model_name: str) -> str:
    """The family name of a timm model (`etcore.families`), or 'other' for a model of no known family."""
    family = family_of(model_name)
    return family.name if family is not None else "other"


def required_size_multiple(model_name: str) -> int:
    """The multiple every training input size must be for `model_name`.

    ViT/DeiT: the patch size (from ``patchNN`` in the name, 16 if absent), so the token grid is whole
    (`pos_embed` is resized to the grid). Everything else: 32, the total stride of ConvNets and Swin;
    for Swin it also makes input/32 the whole number that the curriculum uses as the window size
    (5, 6, 7 at 160, 192, 224), so every stage's feature map is tiled by whole windows.
    """
    family = family_of(model_name)
    if family is not None and family.patch_size_multiple:
        match = re.search(r"patch(\d+)", model_name)
        return int(match.group(1)) if match else 16
    return DEFAULT_SIZE_MULTIPLE


def etpp_family(family: str | None, model_name: str | None) -> Family:
    """The family whose EfficientTrain++ schedule a run uses: `family` when given, else `model_name`'s."""
    scheduled = ", ".join(f.name for f in FAMILIES if f.etpp_sizes_224)
    if family is None and model_name is None:
        raise UserInputError(
            "curriculum 'efficienttrain++' needs the model family: pass model_name= (--model) "
            f"or family= (one of {scheduled})"
        )
    chosen = family_named(family) if family is not None else family_of(model_name or "")
    if chosen is None or chosen.etpp_sizes_224 is None:
        what = (
            f"family {family!r}"
            if family is not None
            else f"model {model_name!r} (family {chosen.name if chosen else 'unknown'})"
        )
        raise UserInputError(
            f"efficienttrain++ has no resolution schedule for {what}: pass family= one of {scheduled}, "
            "or write a custom curriculum file"
        )
    return chosen
