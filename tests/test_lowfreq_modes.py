"""The `direct` loader mode: every per-image operation at the stage size, close to the papers' order.

For a fixed image, crop (the same seeded draws) and seed, with RandAugment and random erasing off, the
`direct` output has the stage's size and agrees with what the faithful modes make of the same crop:
`fft` (final-size crop, then the exact low-frequency crop of the tensor) and `resize` (final-size crop,
then LANCZOS to the stage size), at PSNR >= 30 dB. The image is smooth with soft edges: on hard edges
the FFT crop's ringing alone puts `fft` and `resize` (both faithful) near 25 dB of each other.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import UserInputError
from pretrain_fixtures import read_log, tiny_args, write_two_stage_curriculum
from pretraining.cli import main, resolve_config
from pretraining.config import PretrainConfig
from pretraining.curriculum import Stage
from pretraining.data import DirectStageTransform, DraftResizedCrop, SeededImageDataset, train_transform
from pretraining.determinism import seeded_sample
from pretraining.frequency import low_frequency_crop

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FINAL = 128


def smooth_image(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """Low-frequency waves, soft-edged discs and a little noise: a photo-like image without hard edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.full((height, width, 3), 128.0, np.float32)
    for channel in range(3):
        for _ in range(5):
            fx, fy = rng.uniform(0, 0.03, 2)
            image[..., channel] += rng.uniform(10, 30) * np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 6))
    for _ in range(6):
        cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 60)
        inside = 1 / (1 + np.exp(np.clip((np.hypot(xx - cx, yy - cy) - radius) / 6, -50, 50)))
        image += inside[..., None] * rng.uniform(-50, 50, 3)
    image += rng.normal(0, 2, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def folder(module_tmp: Path) -> Path:
    root = module_tmp
    (root / "only").mkdir()
    smooth_image().save(root / "only" / "0.jpg", quality=95)
    return root


def config() -> PretrainConfig:
    return PretrainConfig(randaug="none", reprob=0.0, crop_scale=0.25)


def sample(folder: Path, mode: str, size: int, seed: int) -> torch.Tensor:
    transform = train_transform(Stage(0, 1, size, 0), FINAL, mode, config(), MEAN, STD)
    image, _, unreadable, _ = SeededImageDataset(ImageFolder(str(folder)), seed=seed, transform=transform)[(0, 0)]
    assert not unreadable
    return image


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two normalised tensors, in dB on the [0, 1] pixel scale."""
    error = float((((a - b) * torch.tensor(STD)[:, None, None]) ** 2).mean())  # the mean cancels
    return math.inf if error == 0 else 10 * math.log10(1 / error)


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_direct_mode_has_the_stage_size_and_matches_the_faithful_modes(folder: Path, size: int, seed: int) -> None:
    direct = sample(folder, "direct", size, seed)
    fft = sample(folder, "fft", size, seed)
    resize = sample(folder, "resize", size, seed)
    assert direct.shape == (3, size, size) and resize.shape == (3, size, size)
    assert fft.shape == (3, FINAL, FINAL)  # the fft mode's workers emit the final size; the crop is on the batch
    assert psnr(direct, low_frequency_crop(fft, size)) >= 30
    assert psnr(direct, resize) >= 30


def test_jpeg_is_decoded_at_reduced_scale_when_the_crop_allows(folder: Path) -> None:
    crop = DraftResizedCrop(48, scale=(0.9, 1.0))
    with seeded_sample(0), Image.open(folder / "only" / "0.jpg") as handle:
        out = crop.decode(handle)
        decoded = handle.size
    assert out.size == (48, 48)
    assert decoded[0] < 320 and decoded[1] < 240  # libjpeg's DCT scaling (1/2 or less), not a full decode


def test_other_formats_decode_in_full_and_give_timms_transform_exactly(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    smooth_image().save(tmp_path / "only" / "0.png")
    transform = train_transform(Stage(0, 1, 64, 0), FINAL, "direct", config(), MEAN, STD)
    assert isinstance(transform, DirectStageTransform)
    image, _, _, _ = SeededImageDataset(ImageFolder(str(tmp_path)), seed=3, transform=transform)[(0, 0)]
    timm_at_stage_size = train_transform(Stage(0, 1, 64, 0), 64, "fft", config(), MEAN, STD)  # timm's own
    plain, _, _, _ = SeededImageDataset(ImageFolder(str(tmp_path)), seed=3, transform=timm_at_stage_size)[(0, 0)]
    assert torch.equal(image, plain)


@pytest.mark.slow
def test_direct_mode_trains_end_to_end_with_workers(image_folder: Path, tmp_path: Path) -> None:
    """`--lowfreq direct` through the command line: JPEGs (reduced decode in the workers), both stages."""
    data = tmp_path / "jpegs"
    for png in image_folder.glob("*/*/*.png"):
        target = data / png.relative_to(image_folder).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(png).convert("RGB").resize((160, 160), Image.BICUBIC).save(target, quality=90)
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    work = tmp_path / "run"
    assert main(tiny_args("convnext_atto", data, work, curriculum, epochs=2, lowfreq="direct", workers=2)) == 0
    log = read_log(work)
    assert [row["input_size"] for row in log] == [32, 64]
    assert all(row["lowfreq"] == "direct" and row["loader_s"] > 0 for row in log)
    assert load_checkpoint_file(work / "final.pth")["provenance"]["lowfreq"] == "direct"


@pytest.mark.parametrize("mode", ["direct", "fft", "resize"])
def test_hflip_reaches_every_mode_and_zero_turns_it_off(folder: Path, mode: str) -> None:
    def with_flip(probability: float) -> torch.Tensor:
        # RandAugment with no operations: no colour jitter either, so the flip is the only random step left
        settings = PretrainConfig(randaug="rand-m{m}-n0", reprob=0.0, crop_scale=0.25, hflip=probability)
        transform = train_transform(Stage(0, 1, 64, 0), FINAL, mode, settings, MEAN, STD)
        assert ("RandomHorizontalFlip" in repr(transform)) == (probability > 0)
        image, *_ = SeededImageDataset(ImageFolder(str(folder)), seed=0, transform=transform)[(0, 0)]
        return image

    kept, mirrored = with_flip(0.0), with_flip(1.0)
    assert psnr(torch.flip(kept, dims=[-1]), mirrored) >= 40  # the same crop, mirrored
    assert psnr(kept, mirrored) < 30


def test_hflip_outside_zero_one_is_one_clear_error() -> None:
    with pytest.raises(UserInputError, match=r"--hflip must lie in \[0, 1\], got 1.5"):
        resolve_config(["--model", "resnet18", "--data", "d", "--work-dir", "w", "--hflip", "1.5"])
