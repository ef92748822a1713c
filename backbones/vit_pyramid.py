"""ViTDet's simple feature pyramid: one stride-16 ViT map -> strides 4, 8, 16, 32.

As in ViTDet (Li et al., 2022, "Exploring Plain Vision Transformer Backbones for Object Detection"):
stride 4 = two 2x2 stride-2 transposed convs with LayerNorm + GELU between them (dim -> dim/2 -> dim/4),
stride 8 = one transposed conv (dim -> dim/2), stride 16 = identity (dim), stride 32 = 2x2 max pool (dim).
ViTDet's per-level 1x1/3x3 projection to 256 channels is left to the detector's FPN neck, which does the
same job. These layers are new (random init): a pretraining checkpoint only covers the ViT itself.
"""

from __future__ import annotations

from typing import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import nn


def _level(dim: int, stride: int) -> nn.Module:
    if stride == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            LayerNorm2d(dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        )
    if stride == 8:
        return nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)
    if stride == 16:
        return nn.Identity()
    if stride == 32:
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f"simple pyramid has strides 4, 8, 16, 32, not {stride}")


class SimpleFeaturePyramid(nn.Module):
    """Turn one stride-16 NCHW map of `dim` channels into the maps of the requested `strides`."""

    def __init__(self, dim: int, strides: Sequence[int]) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.levels = nn.ModuleList(_level(dim, s) for s in self.strides)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(level(x) for level in self.levels)
