"""The model families the suite knows: one entry per family holds every fact the rooms look up by model name.

timm keeps each model's facts beside it (`default_cfgs`); this registry does the same for what the papers,
the official scripts and the detection/segmentation recipes say per *family*: the timm name pattern, the
EfficientTrain++ stage sizes and per-stage batch factors, the pretraining recipe switches, the layer-decay
scheme, the per-level output norms of the detection backbone, the paper's label, and the config-name stem
of each model that has configs. Adding a family is one `Family` entry (plus its configs and documents).

Sources of the values: EfficientTrain++'s official `_ET_pp_main_<model>.py` scripts (sizes, batch factors,
DeiT's warm-up fraction), ET_training.py's `default_dp_dict` and the ConvNeXt/Swin/DeiT/PVTv2 papers (drop
path), the paper's training-hyper-parameter table (clip, EMA, AMP, layer scale); docs/PRETRAINING_RECIPES.md
lists each with its file. The module is plain data with no heavy imports, so every room may read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from etcore.errors import UserInputError

# Layer-decay schemes (`backbones.layer_decay` implements them on timm's parameter names):
HIERARCHICAL = "hierarchical"  # stem, stages of blocks (ConvNeXt detection rule: stage 2 in groups of 3 blocks)
VIT_BLOCKS = "vit_blocks"  # embeddings, then one id per transformer block (BEiT-style)
MBCONV_STAGES = "mbconv_stages"  # conv_stem/bn1, then one id per `blocks.<stage>` of an EfficientNet-style net
LAYER_DECAY_SCHEMES = (HIERARCHICAL, VIT_BLOCKS, MBCONV_STAGES)

# Per-level output norms a family's detection backbone adds (`backbones.out_norms`):
CHANNELS_LAST = "channels_last"  # nn.LayerNorm on NHWC maps (mmdet's and the official Swin detector)
CHANNELS_FIRST = "channels_first"  # LayerNorm2d on NCHW maps (the official ConvNeXt detector)

_SIZE_WORDS = {"tiny": "T", "small": "S", "base": "B", "large": "L", "t": "T", "s": "S", "b": "B", "l": "L"}
_SWIN_SIZES_224 = (96,) * 2 + (160,) * 4 + (224,) * 4
_TWO_THEN_ONE = (2,) * 6 + (1,) * 4  # 512 x1 below 224, 256 x2 at 224 (or the family's analogue)
_FOUR_TWO_ONE = (4,) * 2 + (2,) * 4 + (1,) * 4  # Swin-S/B, CSWin-S/B: 512 x1, 256 x2, 128 x4


@dataclass(frozen=True)
class Family:
    """Everything the suite knows about one model family (see the module docstring for the sources)."""

    name: str
    pattern: str  # regex on the timm model name (a pretrained tag such as '.fb_in1k' dropped)
    paper_label: str  # 'Swin'
    size_label: str | None = None  # regex whose group 1 is the size word ('tiny' -> Swin-T); None: no size labels
    # EfficientTrain++ (10 equal-compute stages): sizes at final size 224, per-device batch factors per stage,
    # and per-model factors that differ from the family's ((regex, factors), first match wins)
    etpp_sizes_224: tuple[int, ...] | None = None  # None: the papers give this family no ET++ schedule
    etpp_batch_scales: tuple[int, ...] | None = None
    etpp_batch_scales_by_model: tuple[tuple[str, tuple[int, ...]], ...] = ()
    etpp_warmup_fraction: float | None = None  # each stage's warm-up as a fraction of its cosine (DeiT: 0.2)
    patch_size_multiple: bool = False  # input sizes are multiples of the patch size (ViT), else of 32
    grad_clip: float | None = None  # the recipe's gradient clipping (max norm)
    ema: bool = False  # the recipe keeps an EMA of the weights (0.9999)
    amp: bool = True  # the recipe trains with mixed precision on GPUs
    layer_scale: float | None = None  # the recipe's layer-scale init (model_kwargs.ls_init_value)
    drop_path: tuple[tuple[str, float], ...] = ()  # (regex on the timm name, stochastic depth of its paper)
    layer_decay: str = HIERARCHICAL
    out_norms: str | None = None  # CHANNELS_LAST / CHANNELS_FIRST, or None: no per-level norms
    models: Mapping[str, str] = field(default_factory=dict)  # config-name stem -> timm name, for those with configs

    def matches(self, model_name: str) -> bool:
        return re.match(self.pattern, _base_name(model_name)) is not None

    def drop_path_of(self, model_name: str) -> float | None:
        base = _base_name(model_name)
        return next((rate for pattern, rate in self.drop_path if re.match(pattern, base)), None)

    def batch_scales_of(self, model_name: str | None) -> tuple[int, ...] | None:
        base = _base_name(model_name or "")
        for pattern, scales in self.etpp_batch_scales_by_model:
            if re.match(pattern, base):
                return scales
        return self.etpp_batch_scales

    def label_of(self, name: str) -> str | None:
        """'swin_tiny_patch4_window7_224' or 'swin-t' -> 'Swin-T'; None when the name carries no size word."""
        match = re.match(self.size_label, name.lower()) if self.size_label else None
        return f"{self.paper_label}-{_SIZE_WORDS.get(match.group(1), match.group(1).upper())}" if match else None


FAMILIES: tuple[Family, ...] = (
    Family(
        name="cswin",
        pattern=r"^cswin",
        paper_label="CSWin",
        size_label=r"^cswin[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])",
        etpp_sizes_224=_SWIN_SIZES_224,
        etpp_batch_scales=_TWO_THEN_ONE,  # _ET_pp_main_cswinT.py
        etpp_batch_scales_by_model=((r"^cswin_(small|base)", _FOUR_TWO_ONE),),  # _ET_pp_main_cswin{S,B}.py
        ema=True,
    ),
    Family(
        name="swin",
        pattern=r"^swin",
        paper_label="Swin",
        size_label=r"^swin[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])",
        etpp_sizes_224=_SWIN_SIZES_224,
        etpp_batch_scales=_TWO_THEN_ONE,  # _ET_pp_main_swinT.py: 512 x1, then 256 x2
        etpp_batch_scales_by_model=((r"^swin_(small|base)", _FOUR_TWO_ONE),),  # _ET_pp_main_swin{S,B}.py
        grad_clip=5.0,
        drop_path=((r"^swin_tiny", 0.2), (r"^swin_small", 0.3), (r"^swin_base", 0.5)),
        out_norms=CHANNELS_LAST,
        models={
            "swin-t": "swin_tiny_patch4_window7_224",
            "swin-s": "swin_small_patch4_window7_224",
            "swin-b": "swin_base_patch4_window7_224",
        },
    ),
    Family(
        name="convnext",
        pattern=r"^convnext",
        paper_label="ConvNeXt",
        size_label=r"^convnext[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])",
        etpp_sizes_224=(160,) * 6 + (224,) * 4,
        etpp_batch_scales=_TWO_THEN_ONE,  # _ET_pp_main_convnext{T,S,B}.py: 256 x2, then 128 x4 (T)
        ema=True,
        amp=False,
        layer_scale=1e-6,
        drop_path=((r"^convnext_tiny", 0.1), (r"^convnext_small", 0.4), (r"^convnext_(base|large)", 0.5)),
        out_norms=CHANNELS_FIRST,
        models={
            "convnext-t": "convnext_tiny",
            "convnext-s": "convnext_small",
            "convnext-b": "convnext_base",
            "convnext-atto": "convnext_atto",
        },
    ),
    Family(
        name="deit",
        pattern=r"^deit",
        paper_label="DeiT",
        size_label=r"^deit[_-]?(tiny|small|base|t|s|b)(?![a-z])",
        etpp_sizes_224=(96,) * 2 + (160,) * 4 + (192,) * 2 + (224,) * 2,
        etpp_batch_scales=_TWO_THEN_ONE,  # _ET_pp_main_deitS.py: 512 x1 at 96/160, 256 x2 at 192 and 224
        etpp_warmup_fraction=0.2,  # int(0.2 * E * (224/B)^2) warm-up epochs per stage
        patch_size_multiple=True,
        grad_clip=5.0,
        drop_path=((r"^deit_(tiny|small|base)", 0.1),),
        layer_decay=VIT_BLOCKS,
        models={"deit-s": "deit_small_patch16_224"},
    ),
    Family(
        name="vit",
        pattern=r"^(vit|vision_transformer)",
        paper_label="ViT",
        size_label=r"^vit[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])",
        etpp_sizes_224=(96,) * 2 + (160,) * 4 + (192,) * 2 + (224,) * 2,  # DeiT's schedule (same architecture)
        etpp_batch_scales=_TWO_THEN_ONE,
        etpp_warmup_fraction=0.2,
        patch_size_multiple=True,
        grad_clip=5.0,
        layer_decay=VIT_BLOCKS,
    ),
    Family(
        name="resnet",
        pattern=r"^(resnet|resnext|wide_resnet|seresnet|seresnext|resnetrs|resnetv2)",
        paper_label="ResNet",
        etpp_sizes_224=_SWIN_SIZES_224,
        etpp_batch_scales=(1,) * 10,  # _ET_pp_main_res50.py: 512 x1 throughout
        amp=False,  # the official scripts pass no --use_amp for ResNet-50 (the paper's table says AMP)
        models={"r50": "resnet50", "resnet18": "resnet18"},
    ),
    Family(
        name="pvt",
        pattern=r"^pvt",
        paper_label="PVTv2",
        size_label=r"^pvt_?v2[_-]?(b\d)(?![a-z0-9])",
        grad_clip=5.0,
        drop_path=((r"^pvt_v2_b[012]", 0.1), (r"^pvt_v2_b[345]", 0.3)),
        models={"pvtv2-b2": "pvt_v2_b2"},
    ),
    # Not trained by the papers and without configs here: the registry entry alone makes them known to the
    # curriculum (no ET++ schedule: one line says so), the recipe (timm's defaults) and layer decay.
    Family(
        name="efficientnet",
        pattern=r"^(tf_)?efficientnet",
        paper_label="EfficientNet",
        layer_decay=MBCONV_STAGES,
    ),
    Family(
        name="mobilenetv3",
        pattern=r"^(tf_)?mobilenetv3",
        paper_label="MobileNetV3",
        layer_decay=MBCONV_STAGES,
    ),
)
FAMILY_NAMES = tuple(family.name for family in FAMILIES)
_BY_NAME = {family.name: family for family in FAMILIES}


def _base_name(model_name: str) -> str:
    return model_name.split(".", 1)[0].lower()  # drop a timm pretrained tag such as '.fb_in1k'


def family_of(model_name: str) -> Family | None:
    """The family of a timm model name, or None for a model of no known family (it trains on timm's defaults)."""
    return next((family for family in FAMILIES if family.matches(model_name)), None)


def require_family(model_name: str, needed_for: str) -> Family:
    """The family of `model_name`; one clear line naming the known families when it has none."""
    family = family_of(model_name)
    if family is None:
        raise UserInputError(
            f"model {model_name} belongs to no known family ({', '.join(FAMILY_NAMES)}), which {needed_for} "
            "needs: use a model of one of them, or add its family to etcore/families.py"
        )
    return family


def family_named(name: str) -> Family:
    """The family called `name`; one clear line naming the known ones otherwise."""
    family = _BY_NAME.get(str(name).lower())
    if family is None:
        raise UserInputError(f"unknown model family {name!r}: use one of {', '.join(FAMILY_NAMES)}")
    return family


def config_stem(model_name: str) -> str:
    """The config-name stem of a timm model ('swin_tiny_patch4_window7_224' -> 'swin-t')."""
    family = require_family(model_name, "a config name")
    for stem, timm_name in family.models.items():
        if timm_name == _base_name(model_name):
            return stem
    raise UserInputError(
        f"model {model_name} has no configs (known in family {family.name}: "
        f"{', '.join(family.models.values()) or 'none'}): pick one of those, or add configs and a `models` entry"
    )


def timm_name(stem: str) -> str:
    """The timm model of a config-name stem ('swin-t' -> 'swin_tiny_patch4_window7_224')."""
    for family in FAMILIES:
        if stem in family.models:
            return family.models[stem]
    known = sorted(stem for family in FAMILIES for stem in family.models)
    raise UserInputError(f"config-name stem {stem!r} names no model: use one of {', '.join(known)}")


def paper_label(name: str) -> str | None:
    """'swin_tiny_patch4_window7_224' or 'swin-t' -> 'Swin-T' (family + size); None when neither is known."""
    family = family_of(name)
    return family.label_of(name) if family is not None else None
