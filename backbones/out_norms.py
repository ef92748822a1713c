"""Per-output LayerNorms (`norm{i}`) of the Swin and ConvNeXt detection backbones.

The detection backbones of the recipes this suite follows normalise every output level, while timm's
features_only maps are the raw stage outputs:

* Swin: mmdet 3.3 `SwinTransformer` adds `norm{i}` (`nn.LayerNorm`, eps 1e-5) for each out index and
  applies it to the channels-last map before permuting to NCHW; so does the official Swin detector.
* ConvNeXt: the official ConvNeXt detector and mmpretrain's `ConvNeXt(gap_before_final_norm=False)`
  (mmdet's ConvNeXt configs) add `norm{i}`, a channels-first LayerNorm (eps 1e-6), per output.
* PVTv2 already ends every stage with a pretrained LayerNorm, in timm (`PyramidVisionTransformerStage.norm`)
  as in mmdet (`norm_after_stage=True`); ResNet (BatchNorm inside its blocks) and mmdet's ResNet have no
  output norms; plain ViTs go through the simple pyramid. So `'auto'` is on for Swin and ConvNeXt only: the
families whose `out_norms` entry in `etcore.families` names a layout.

Init: weight 1, bias 0 for every level, as in mmdet's Swin and the official Swin and ConvNeXt detectors,
whose ImageNet checkpoints name the classifier's final norm `norm.*`, a key no `norm{i}` matches. (mmdet's
ConvNeXt configs differ: mmpretrain's converter renames that final norm to `norm3`, so there the last
level starts from it. We follow the official code.) The norms are new layers: the checkpoint bridge
never asks a checkpoint for them.
"""

from __future__ import annotations

from timm.layers import LayerNorm2d
from torch import nn

from etcore.errors import UserInputError
from etcore.families import family_of

CHANNELS_LAST_EPS = 1e-5  # nn.LayerNorm default: mmdet's and the official Swin's `norm{i}`
CHANNELS_FIRST_EPS = 1e-6  # ConvNeXt's LayerNorm (official detector, mmpretrain LN2d)


def norm_family(model_name: str) -> str | None:
    """The family ('swin', 'convnext') when `model_name`'s detection recipe normalises every output, else None."""
    family = family_of(model_name)
    return family.name if family is not None and family.out_norms is not None else None


def resolve_out_norms(value: bool | str, model_name: str, plain_vit: bool) -> bool:
    """The `out_norms` argument of TimmBackbone ('auto' | True | False) as a bool (rules in the docstring)."""
    if value == "auto":
        return norm_family(model_name) is not None
    if not isinstance(value, bool):
        raise UserInputError(f"TimmBackbone: out_norms={value!r}: use 'auto', True or False")
    if value and plain_vit:
        raise UserInputError(
            f"TimmBackbone({model_name!r}, out_norms=True): a plain ViT's levels come from the "
            "simple pyramid, which has no per-level norms: set out_norms='auto' or False"
        )
    return value


def make_out_norm(channels: int, channels_last: bool) -> nn.Module:
    """A fresh LayerNorm over the channels (weight 1, bias 0): `nn.LayerNorm` for NHWC maps (Swin),
    `LayerNorm2d` for NCHW maps (ConvNeXt). Both are `nn.LayerNorm`s, so mmengine's norm_decay_mult sees them.
    """
    if channels_last:
        return nn.LayerNorm(channels, eps=CHANNELS_LAST_EPS)
    return LayerNorm2d(channels, eps=CHANNELS_FIRST_EPS)
