"""Low-frequency crop is exact (against an independent numpy implementation); the fast resize behaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pretraining.frequency import LowFrequencyResize, low_frequency_crop, low_frequency_downsample


def numpy_reference_crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent reference: centre the spectrum with fftshift, crop its centre, undo the shift, invert."""
    height, width = image.shape[-2:]
    centred = np.fft.fftshift(np.fft.fft2(image.astype(np.float64)), axes=(-2, -1))
    top, left = height // 2 - h // 2, width // 2 - w // 2
    block = centred[..., top : top + h, left : left + w]
    return np.real(np.fft.ifft2(np.fft.ifftshift(block, axes=(-2, -1)))) * (h * w) / (height * width)


def numpy_zero_pad_upsample(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Band-limited upsampling: place the centred spectrum in a larger zero spectrum."""
    h, w = image.shape[-2:]
    centred = np.fft.fftshift(np.fft.fft2(image), axes=(-2, -1))
    padded = np.zeros(image.shape[:-2] + (height, width), dtype=complex)
    top, left = height // 2 - h // 2, width // 2 - w // 2
    padded[..., top : top + h, left : left + w] = centred
    return np.real(np.fft.ifft2(np.fft.ifftshift(padded, axes=(-2, -1)))) * (height * width) / (h * w)


@pytest.mark.parametrize(
    "shape, size",
    [
        ((3, 32, 32), 16),
        ((2, 3, 48, 40), (24, 20)),
        ((32, 32), (15, 9)),
        ((1, 33, 31), (17, 12)),
        ((4, 64, 64), 1),
    ],
)
def test_matches_independent_numpy_implementation(shape, size):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=generator, dtype=torch.float64)
    h, w = (size, size) if isinstance(size, int) else size
    ours = low_frequency_crop(x, size)
    assert ours.shape == shape[:-2] + (h, w) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), numpy_reference_crop(x.numpy(), h, w), atol=1e-12)


def test_full_size_is_identity():
    x = torch.rand(2, 3, 20, 24)
    assert low_frequency_crop(x, (20, 24)) is x
    assert low_frequency_downsample(x, (20, 24)) is x


def test_pure_low_frequency_image_survives_crop_and_zero_pad_upsampling():
    n = 64
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    image = (
        0.5
        + 0.3 * np.cos(2 * np.pi * (3 * yy) / n)
        + 0.2 * np.cos(2 * np.pi * (2 * yy + 5 * xx) / n + 0.7)
        - 0.1 * np.sin(2 * np.pi * (7 * xx) / n)
    )
    cropped = low_frequency_crop(torch.from_numpy(image), 16).numpy()  # keeps frequencies -8..7
    np.testing.assert_allclose(numpy_zero_pad_upsample(cropped, n, n), image, atol=1e-10)
    # a frequency above the band is removed entirely
    high = image + 0.4 * np.cos(2 * np.pi * (12 * xx) / n)
    np.testing.assert_allclose(low_frequency_crop(torch.from_numpy(high), 16).numpy(), cropped, atol=1e-10)


def test_mean_intensity_is_kept():
    x = torch.rand(2, 3, 40, 56) * 3 + 1
    y = low_frequency_crop(x, (12, 18))
    torch.testing.assert_close(y.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-5, rtol=0)
    assert low_frequency_crop(x, 1).flatten(-3).squeeze(-1).allclose(x.mean(dim=(-2, -1)), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    x = torch.rand(2, 3, 32, 32)
    y = low_frequency_crop(x.to(dtype), 16)
    assert y.dtype == dtype and y.shape == (2, 3, 16, 16)
    tolerance = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(y.float(), low_frequency_crop(x.to(dtype).float(), 16), atol=tolerance, rtol=0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="floating-point"):
        low_frequency_crop(torch.zeros(3, 8, 8, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="between 1 and the input size"):
        low_frequency_crop(torch.zeros(3, 8, 8), 9)
    with pytest.raises(TypeError, match="size must be"):
        low_frequency_crop(torch.zeros(3, 8, 8), (4, 4, 4))


def test_downsample_is_antialiased_and_keeps_shapes_and_dtype():
    n = 64
    xx = torch.arange(n, dtype=torch.float32)
    stripes = (torch.cos(torch.pi * xx)[None, :] * torch.ones(n, 1)).expand(2, 3, n, n)  # Nyquist pattern
    smooth = 0.5 + 0.2 * torch.cos(2 * torch.pi * 2 * xx / n)[None, :] * torch.ones(n, 1)
    small = low_frequency_downsample(stripes + smooth, 16)
    assert small.shape == (2, 3, 16, 16)
    # the unrepresentable stripes are filtered out instead of aliasing into the small image
    # (away from the border, where the resize filter is truncated)
    assert (small - low_frequency_downsample(smooth, 16))[..., 2:-2].abs().max() < 0.01
    aliased = torch.nn.functional.interpolate((stripes + smooth)[:1], size=(16, 16), mode="nearest")
    assert (aliased[0] - low_frequency_downsample(smooth, 16)).abs().max() > 0.5  # what no antialias gives
    assert low_frequency_downsample(smooth.to(torch.bfloat16), (8, 12)).dtype == torch.bfloat16


def test_transform_handles_pil_and_tensors():
    transform = LowFrequencyResize(16)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    out = transform(image)
    assert isinstance(out, Image.Image) and out.size == (16, 16)
    assert LowFrequencyResize((16, 24))(image).size == (24, 16)
    assert transform(torch.rand(3, 32, 32)).shape == (3, 16, 16)
    assert "LowFrequencyResize(size=(16, 16))" == repr(transform)
    with pytest.raises(TypeError):
        transform(np.zeros((8, 8)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    x = torch.rand(2, 3, 48, 48)
    on_gpu = low_frequency_crop(x.to("cuda", dtype), (24, 20))
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == dtype
    tolerance = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(
        on_gpu.cpu().float(), low_frequency_crop(x.to(dtype).float(), (24, 20)), atol=tolerance, rtol=0
    )
