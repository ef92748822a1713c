"""Low-frequency views of images: the exact Fourier crop (EfficientTrain) and the fast resize (EfficientTrain++).

`low_frequency_crop` keeps exactly the lowest h x w frequencies of an image and returns them as an
h x w image (on the device, on whole batches). `low_frequency_downsample` and `LowFrequencyResize`
approximate it with an antialiased resize, cheap enough for data-loader workers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

SizeArg = int | tuple[int, int] | list[int]


def _pair(size: SizeArg) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise TypeError(f"size must be an int or an (h, w) pair of ints, got {size!r}")


def _check_target(x: torch.Tensor, h: int, w: int) -> tuple[int, int]:
    if x.dim() < 2:
        raise ValueError(f"expected a tensor [..., H, W], got shape {tuple(x.shape)}")
    height, width = x.shape[-2], x.shape[-1]
    if not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(f"low-frequency size ({h}, {w}) must lie between 1 and the input size ({height}, {width})")
    return height, width


def _low_band(n: int, keep: int) -> torch.Tensor | None:
    """Indices (in unshifted FFT order) of the `keep` lowest frequencies -(keep//2) .. (keep-1)//2 of length n."""
    if keep == n:
        return None
    positive = torch.arange(0, (keep - 1) // 2 + 1)
    negative = torch.arange(n - keep // 2, n)
    return torch.cat([positive, negative])


def _resize_plan(x: torch.Tensor, size: SizeArg, op: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((h, w), (H, W)) for a float `x` of [..., H, W] shrunk to `size`; None when it is already that size."""
    if not torch.is_floating_point(x):
        raise TypeError(f"{op} expects a floating-point tensor, got {x.dtype}")
    h, w = _pair(size)
    height, width = _check_target(x, h, w)
    return None if (h, w) == (height, width) else ((h, w), (height, width))


def low_frequency_crop(x: torch.Tensor, size: SizeArg) -> torch.Tensor:
    """Keep the lowest h x w frequencies of `x` ([..., H, W], float) and return them as an [..., h, w] image.

    The spectrum F = fft2(x) is not shifted: the kept frequencies -(h//2) .. (h-1)//2 (and likewise for w)
    are the four corner blocks of F. For even h that is -h/2 .. h/2-1 (the paper's band); for odd h the
    band is symmetric, -(h-1)/2 .. (h-1)/2. The result is the real part of ifft2 of those blocks, scaled
    by (h*w)/(H*W) so that the mean intensity is kept. size == (H, W) returns `x` unchanged. Computed in
    float32 (float64 stays float64) and returned in the input dtype, on the input's device.
    """
    # Hand-written: torch has no spectral-crop op; fft2/ifft2 plus index_select is the whole algorithm.
    sizes = _resize_plan(x, size, "low_frequency_crop")
    if sizes is None:
        return x
    (h, w), (height, width) = sizes
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    # norm="forward" divides by H*W in fft2 and not at all in ifft2: the (h*w)/(H*W) mean-keeping scale.
    spectrum = torch.fft.fft2(x.to(compute_dtype), norm="forward")
    rows, cols = _low_band(height, h), _low_band(width, w)
    if rows is not None:
        spectrum = spectrum.index_select(-2, rows.to(spectrum.device))
    if cols is not None:
        spectrum = spectrum.index_select(-1, cols.to(spectrum.device))
    return torch.fft.ifft2(spectrum, norm="forward").real.to(x.dtype)


def low_frequency_downsample(x: torch.Tensor, size: SizeArg) -> torch.Tensor:
    """Fast approximation of `low_frequency_crop`: antialiased bicubic resize of `x` ([..., H, W]) to size.

    The antialias filter removes most frequencies the smaller grid cannot hold, as EfficientTrain++'s
    LANCZOS resize does. Computed in float32, returned in the input dtype; size == (H, W) is the identity.
    """
    sizes = _resize_plan(x, size, "low_frequency_downsample")
    if sizes is None:
        return x
    (h, w), (height, width) = sizes
    flat = x.reshape(1, -1, height, width).to(torch.float32 if x.dtype != torch.float64 else torch.float64)
    resized = F.interpolate(flat, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    return resized.reshape(*x.shape[:-2], h, w).to(x.dtype)


class LowFrequencyResize:
    """Transform: resize a PIL image (LANCZOS) or a float tensor [..., H, W] (antialiased) to `size`.

    Insert it into timm's train transform right after RandAugment (before ToTensor/Normalize/
    RandomErasing), as EfficientTrain++ does, so each sample keeps only its low frequencies.
    """

    def __init__(self, size: SizeArg) -> None:
        self.size = _pair(size)
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {size!r}")

    def __call__(self, img: Any) -> Any:
        if isinstance(img, torch.Tensor):
            return low_frequency_downsample(img, self.size)
        from PIL import Image

        if isinstance(img, Image.Image):
            h, w = self.size
            if img.size == (w, h):
                return img
            return img.resize((w, h), Image.Resampling.LANCZOS)
        raise TypeError(f"LowFrequencyResize expects a PIL image or a tensor, got {type(img).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"
