"""Pad-then-shift window attention for timm Swin blocks at detection sizes.

timm 1.0.31's `SwinTransformerBlock._attn` rolls the feature map *before* padding it to a multiple of
the window, while its shifted-window mask is laid out on the padded map. When a stage's height or width
is not a multiple of the window (any detection size that is not a multiple of 32 * window), the rolled-in
border tokens then share a mask region with the opposite border, so the bottom rows of an image leak into
its top rows (verified: perturbing the last row of an 8x8 map with window 7 changes row 0's output).
The official Swin detector and mmdet's `SwinTransformer` pad first and roll the padded map, so the mask
separates the wrapped tokens. `PadFirstSwinBlock` restores that order; at sizes that are multiples of the
window it is exactly timm's block (the padding is empty). Hand-written: timm has no option for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn


class PadFirstSwinBlock(SwinTransformerBlock):
    """timm Swin block whose attention pads to whole windows before the cyclic shift."""

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = x.shape
        pad_h = (-height) % self.window_size[0]
        pad_w = (-width) % self.window_size[1]
        if not (pad_h or pad_w):
            return super()._attn(x)
        padded = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # zeros after norm1, as in the official detector
        return super()._attn(padded)[:, :height, :width, :].contiguous()


def use_pad_first_attention(module: nn.Module) -> int:
    """Switch every timm `SwinTransformerBlock` inside `module` to `PadFirstSwinBlock`; returns the count.

    Only the class changes (same parameters, buffers and state-dict keys).
    """
    count = 0
    for block in module.modules():
        if type(block) is SwinTransformerBlock:
            block.__class__ = PadFirstSwinBlock
            count += 1
    return count
