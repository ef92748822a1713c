"""Copy `TimmBackbone` weights into mmdet's native `ResNet` / `SwinTransformer`, so both compute the same function.

Used by the backbone benchmark, which checks the two give equal outputs before timing them.

ResNet-50: timm and mmdet (style='pytorch') both use torchvision's names (conv1, bn1, layerN.M.convK,
downsample.0/1); the mapping is the identity on every backbone key.

Swin-T: names differ, and so does the patch-merging layout. timm 1.0 puts a stage's downsample at its
start (`layers_{i}.downsample`, i >= 1) and concatenates the 2x2 neighbours as (h, w) = (0,0), (1,0),
(0,1), (1,1), each C channels; mmdet puts it at the end of the previous stage (`stages.{i-1}.downsample`)
and gathers them with `nn.Unfold`, channel-major: index c * 4 + (2h + w). The reduction's input columns
and the norm's entries are permuted accordingly. mmdet's per-level output norms `norm0..3` are
TimmBackbone's own `norm0..3` (`backbones.out_norms`, same names and shapes), copied as they are.

The mappers take a TimmBackbone state dict with the `body.` prefix removed (timm feature-net keys plus
`norm{i}.*`).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

_SWIN_BLOCK_RENAMES = (
    ("attn.qkv.", "attn.w_msa.qkv."),
    ("attn.proj.", "attn.w_msa.proj."),
    ("attn.relative_position_bias_table", "attn.w_msa.relative_position_bias_table"),
    ("mlp.fc1.", "ffn.layers.0.0."),
    ("mlp.fc2.", "ffn.layers.1."),
)


def resnet_timm_to_mmdet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ResNet feature-net keys -> mmdet ResNet keys (identical; the classifier `fc` is dropped)."""
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def unfold_order(channels: int) -> torch.Tensor:
    """Index into timm's merged-channel axis for each of mmdet's: mmdet[:, m] = timm[:, order[m]]."""
    m = torch.arange(4 * channels)
    c, k = m // 4, m % 4
    h, w = k // 2, k % 2
    return (2 * w + h) * channels + c


def swin_timm_to_mmdet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Swin keys (`layers_{i}.…` or `layers.{i}.…`, output norms `norm{i}.…`) -> mmdet Swin keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("head.") or key.startswith("norm."):
            continue  # classifier and final norm: not part of the detection backbone
        if re.match(r"norm\d+\.", key):  # TimmBackbone's output norms are mmdet's
            out[key] = value
            continue
        if key.startswith("patch_embed.proj."):
            out[key.replace("patch_embed.proj.", "patch_embed.projection.")] = value
            continue
        if key.startswith("patch_embed."):
            out[key] = value
            continue
        match = re.match(r"layers[._](\d+)\.(.*)", key)
        if match is None:
            raise KeyError(f"unexpected timm Swin key {key!r}")
        stage, rest = int(match.group(1)), match.group(2)
        if rest.startswith("downsample."):
            if stage == 0:
                raise KeyError(f"timm Swin stage 0 has no downsample in mmdet's layout: {key!r}")
            order = unfold_order(value.shape[-1] // 4)
            if rest.endswith("reduction.weight"):
                value = value[:, order]
            elif rest.startswith("downsample.norm."):
                value = value[order]
            out[f"stages.{stage - 1}.{rest}"] = value
            continue
        for old, new in _SWIN_BLOCK_RENAMES:
            rest = rest.replace(old, new)
        out[f"stages.{stage}.{rest}"] = value
    return out


def copy_into(
    target: torch.nn.Module, mapped: Mapping[str, torch.Tensor], allowed_missing: str = r"relative_position_index$"
) -> list[str]:
    """Load `mapped` into `target` strictly except keys matching `allowed_missing`; returns those kept at init."""
    result = target.load_state_dict(dict(mapped), strict=False)
    if result.unexpected_keys:
        raise KeyError(f"mapped keys not in the mmdet model: {result.unexpected_keys[:5]}")
    bad = [k for k in result.missing_keys if not re.search(allowed_missing, k)]
    if bad:
        raise KeyError(f"mmdet keys the mapping did not fill: {bad[:5]}")
    return list(result.missing_keys)
