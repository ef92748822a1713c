"""ImageNet-style folders, per-stage timm transforms and seeded loaders for curriculum pretraining.

`PATH/train/<class>/*` and `PATH/val/<class>/*` are read with torchvision's ImageFolder after a check
that names any missing or empty folder. Each sample's augmentation is seeded by (run seed, epoch,
index), so the images a run sees do not depend on the number of workers or processes, and a resumed
run sees exactly what the uninterrupted one would. The train loader lives for a whole stage (its
workers persist across the stage's epochs): its sampler yields (epoch, index) keys, so the epoch of
each sample's seed reaches the workers with the key. Unreadable images stop the run (naming the file)
or, with `corrupt_images='skip'`, are replaced by the next readable image and counted.

Three low-frequency modes shape the train transform of a stage below the final size (`train_transform`):
`fft` and `resize` are the papers' (every per-image operation at the final size, then the exact crop of
the batch on the device, or a LANCZOS resize in the workers); `direct` runs every per-image operation at
the stage size (`DirectStageTransform`).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from timm.data import create_transform
from timm.data.transforms import RandomResizedCropAndInterpolation
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from etcore.errors import UserInputError
from pretraining.curriculum import Stage
from pretraining.determinism import sample_seed, seeded_sample
from pretraining.frequency import LowFrequencyResize


@dataclass(frozen=True)
class CorruptSample:
    """An image that could not be decoded, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class LoadTime:
    """Seconds a loader spent on samples (open, decode, transform), wall-clock and CPU time of its thread."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __add__(self, other: "LoadTime") -> "LoadTime":
        return LoadTime(self.wall_s + other.wall_s, self.cpu_s + other.cpu_s)


def check_image_folder(root: Path, split: str) -> list[str]:
    """Class names of `root/split`, refusing a missing split, no class folders, or an empty class folder."""
    folder = root / split
    if not root.is_dir():
        raise UserInputError(
            f"--data {root} does not exist or is not a folder: point it at a folder with "
            "train/<class>/*.jpg and val/<class>/*.jpg"
        )
    if not folder.is_dir():
        raise UserInputError(
            f"--data {root} has no '{split}' folder: expected {folder}/<class>/*.jpg (ImageNet layout)"
        )
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise UserInputError(f"{folder} has no class folders: put each class's images in {folder}/<class>/")
    for name in classes:
        if not _has_image(folder / name):
            raise UserInputError(
                f"class folder {folder / name} holds no images ({', '.join(IMG_EXTENSIONS)}): "
                "add images or remove the folder"
            )
    return classes


def _has_image(folder: Path) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def load_image_folders(root: str) -> tuple[ImageFolder, ImageFolder]:
    """The train and val ImageFolders of `root`; val must use the same classes as train."""
    path = Path(root)
    train_classes = check_image_folder(path, "train")
    val_classes = check_image_folder(path, "val")
    if val_classes != train_classes:
        only_train = sorted(set(train_classes) - set(val_classes))[:5]
        only_val = sorted(set(val_classes) - set(train_classes))[:5]
        raise UserInputError(
            f"--data {root}: train/ and val/ hold different classes (only in train: {only_train}, "
            f"only in val: {only_val}): use the same class folders in both"
        )
    identity = lambda p: p  # noqa: E731  (decoding happens in SeededImageDataset, where errors are handled)
    return ImageFolder(str(path / "train"), loader=identity), ImageFolder(str(path / "val"), loader=identity)


class SeededImageDataset(Dataset):
    """(image, class, unreadable, load time) of an ImageFolder, with a swappable transform and seeded augmentation.

    A sample is fetched by index (seeded with `self.epoch`) or by an (epoch, index) key, which is what
    `EpochKeySampler` yields so that persistent workers learn each epoch from the keys themselves. An
    unreadable image is replaced by the next readable one (so batches keep their size, which mixup and
    DDP need) and reported in the third element; the engine then stops or counts it. The fourth element
    is the time this sample took (`LoadTime`), for the engine's per-stage breakdown.

    A transform with a `decode(handle)` method (`DirectStageTransform`) receives the still-undecoded
    file and decodes it itself (at reduced scale where it can); its `finish(image)` does the rest.
    """

    def __init__(self, folder: ImageFolder, seed: int, transform: Callable | None = None) -> None:
        self.samples: list[tuple[str, int]] = list(folder.samples)
        self.classes = list(folder.classes)
        self.seed = seed
        self.epoch = 0
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int, tuple[CorruptSample, ...], LoadTime]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        wall, cpu = time.perf_counter(), time.thread_time()
        transform = self.transform
        decode = getattr(transform, "decode", None)
        unreadable: list[CorruptSample] = []
        for offset in range(len(self.samples)):
            path, target = self.samples[(index + offset) % len(self.samples)]
            with seeded_sample(sample_seed(self.seed, epoch, index)):
                try:
                    with Image.open(path) as handle:
                        image = decode(handle) if decode is not None else handle.convert("RGB")
                except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                    unreadable.append(CorruptSample(path, " ".join(str(err).split()) or type(err).__name__))
                    continue
                if decode is not None:
                    image = transform.finish(image)
                elif transform is not None:
                    image = transform(image)
            spent = LoadTime(time.perf_counter() - wall, time.thread_time() - cpu)
            return image, target, tuple(unreadable), spent
        raise UserInputError(f"no image under {Path(self.samples[0][0]).parents[1]} can be read: check the data")


def collate_with_unreadable(
    batch: Sequence[Any],
) -> tuple[torch.Tensor, torch.Tensor, list[CorruptSample], LoadTime]:
    """Default collation of images and targets; the unreadable images met on the way are listed separately,
    and the samples' load times summed."""
    images, targets = default_collate([(image, target) for image, target, _, _ in batch])
    spent = LoadTime()
    for _, _, _, sample_time in batch:
        spent = spent + sample_time
    return images, targets, [bad for _, _, unreadable, _ in batch for bad in unreadable], spent


def randaug_string(template: str, magnitude: float) -> str | None:
    """timm's auto_augment string for one stage's magnitude, or None when RandAugment is off."""
    if template == "none":
        return None
    return template.format(m=int(round(magnitude)))


def check_magnitudes(stages: Sequence[Stage], template: str) -> None:
    """timm's RandAugment string takes whole magnitudes; refuse a curriculum with fractional ones."""
    if template == "none":
        return
    for index, stage in enumerate(stages):
        if float(stage.randaug_magnitude) != int(stage.randaug_magnitude):
            raise UserInputError(
                f"curriculum stage {index} has randaug_magnitude {stage.randaug_magnitude}: timm's "
                "RandAugment takes whole magnitudes, round it in the curriculum file"
            )


def train_transform(
    stage: Stage, final_size: int, lowfreq: str, config: Any, mean: Sequence[float], std: Sequence[float]
) -> Callable:
    """timm's ImageNet train transform for one stage.

    `fft` and `resize` (the papers' order): RandomResizedCrop targets `final_size`, RandAugment runs at
    `final_size`, and the low-frequency view of size `stage.input_size` is made either here (`resize`:
    LANCZOS after RandAugment, before ToTensor/Normalize/RandomErasing, as EfficientTrain++) or later on
    the device (`fft`: exact crop of the batch). `direct`: the same timm transform built at the stage
    size, with the crop taken from a reduced-scale decode where the file allows it
    (`DirectStageTransform`): every per-image operation runs at the stage size.
    """
    from torchvision import transforms

    size = stage.input_size if lowfreq == "direct" else final_size
    common = dict(
        input_size=size,
        is_training=True,
        auto_augment=randaug_string(config.randaug, stage.randaug_magnitude),
        interpolation=config.interpolation,
        re_prob=config.reprob,
        scale=(config.crop_scale, 1.0),
        hflip=config.hflip,
        re_mode="pixel",
        re_count=1,
        mean=tuple(mean),
        std=tuple(std),
    )
    if lowfreq == "direct":
        return DirectStageTransform(*create_transform(separate=True, **common))
    if lowfreq == "resize" and stage.input_size < final_size:
        primary, secondary, final = create_transform(separate=True, **common)
        return transforms.Compose([primary, secondary, LowFrequencyResize(stage.input_size), final])
    return create_transform(**common)


class DraftResizedCrop(RandomResizedCropAndInterpolation):
    """timm's RandomResizedCrop (same random draws) that can start from an undecoded JPEG at reduced scale.

    `decode(handle)` draws the crop on the file's full size (read from its header), asks the JPEG decoder
    for the largest DCT scaling (1/2, 1/4, 1/8: `Image.draft`) that still leaves the crop at least the
    output size on both axes, and resizes the crop of the reduced image to the output size with the
    same antialiased PIL filter. libjpeg's scaled IDCT keeps each 8x8 block's lowest frequencies, so the
    reduced decode is itself a low-frequency view. Other formats (PNG, ...) decode at full size, and
    the result is then exactly timm's RandomResizedCrop.
    """

    def decode(self, handle: Image.Image) -> Image.Image:
        full_w, full_h = handle.size
        i, j, h, w = self.get_params(handle, self.scale, self.ratio)
        interpolation = (
            random.choice(self.interpolation) if isinstance(self.interpolation, (tuple, list)) else self.interpolation
        )
        out_h, out_w = self.size
        handle.draft("RGB", (math.ceil(full_w * out_w / w), math.ceil(full_h * out_h / h)))
        image = handle.convert("RGB")
        return self._resized_crop(image, (full_w, full_h), (i, j, h, w), interpolation)

    def __call__(self, img: Image.Image) -> Image.Image:
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        interpolation = (
            random.choice(self.interpolation) if isinstance(self.interpolation, (tuple, list)) else self.interpolation
        )
        return self._resized_crop(img, img.size, (i, j, h, w), interpolation)

    def _resized_crop(
        self, image: Image.Image, full: tuple[int, int], box: tuple[int, int, int, int], interpolation: Any
    ) -> Image.Image:
        from torchvision.transforms import functional as TF

        i, j, h, w = box
        if image.size == full:
            return TF.resized_crop(image, i, j, h, w, list(self.size), interpolation)
        sx, sy = image.size[0] / full[0], image.size[1] / full[1]
        out_h, out_w = self.size
        return image.resize(
            (out_w, out_h), TF.pil_modes_mapping[interpolation], box=(j * sx, i * sy, (j + w) * sx, (i + h) * sy)
        )


class DirectStageTransform:
    """The `direct` low-frequency mode: timm's train transform at the stage size, decoding at reduced scale.

    Built from timm's three parts at the stage size: the RandomResizedCrop (replaced by `DraftResizedCrop`,
    same draws) straight to the stage size, flip, RandAugment at the stage size, then ToTensor/Normalize/
    RandomErasing. `SeededImageDataset` calls `decode(handle)` (reduced-scale decode and crop) and then
    `finish(image)`; calling the object on a decoded PIL image runs the whole chain.
    """

    def __init__(self, primary: Callable, secondary: Callable, final: Callable) -> None:
        from torchvision import transforms

        steps = list(primary.transforms)
        if not steps or not isinstance(steps[0], RandomResizedCropAndInterpolation):
            raise TypeError(f"expected timm's RandomResizedCrop first, got {steps[:1]}")
        crop = steps[0]
        self.crop = DraftResizedCrop(crop.size, scale=crop.scale, ratio=crop.ratio)
        self.crop.interpolation = crop.interpolation
        self.rest = transforms.Compose([*steps[1:], *secondary.transforms, *final.transforms])

    def decode(self, handle: Image.Image) -> Image.Image:
        return self.crop.decode(handle)

    def finish(self, image: Image.Image) -> Any:
        return self.rest(image)

    def __call__(self, image: Image.Image) -> Any:
        return self.rest(self.crop(image))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop={self.crop!r}, rest={self.rest!r})"


EVAL_INTERPOLATION = "bicubic"  # also the `interpolation` of the provenance's data_config (a hub export's)


def eval_transform(final_size: int, crop_pct: float, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Resize to final_size / crop_pct (bicubic), centre-crop final_size, normalise."""
    return create_transform(
        input_size=final_size,
        is_training=False,
        crop_pct=crop_pct,
        interpolation=EVAL_INTERPOLATION,
        mean=tuple(mean),
        std=tuple(std),
    )


class EpochKeySampler(DistributedSampler):
    """DistributedSampler whose items are (epoch, index) keys: the epoch travels to persistent workers.

    `set_epoch(epoch, start)` can also skip this process's first `start` samples of the epoch (a resume
    in the middle of an epoch): they are never loaded, and since every sample's augmentation is seeded by
    (seed, epoch, index) the rest are exactly the images an uninterrupted run gets. `len()` stays the
    whole epoch's, so the number of steps per epoch does not depend on where a run resumed.
    """

    start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = itertools.islice(super().__iter__(), self.start, None)
        return ((self.epoch, index) for index in indices)


def train_loader(
    dataset: SeededImageDataset,
    batch_size: int,
    epoch: int,
    rank: int,
    world_size: int,
    workers: int,
    seed: int,
    pin_memory: bool,
    persistent: bool = False,
) -> DataLoader:
    """A stage's loader, full batches only: shuffled by (seed, epoch) (`loader.sampler.set_epoch(e)` moves it
    to epoch e), with (epoch, index) keys, so that with `persistent=True` its workers live for the stage."""
    dataset.epoch = epoch
    sampler = EpochKeySampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    if len(sampler) < batch_size:
        raise UserInputError(
            f"train set: {len(sampler)} images per process but a batch of {batch_size}: "
            "lower --batch-size (or use more images)"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_with_unreadable,
        drop_last=True,
        pin_memory=pin_memory,
        persistent_workers=persistent and workers > 0,
        generator=torch.Generator().manual_seed(seed * 1000003 + epoch),
    )


def eval_loader(
    dataset: SeededImageDataset, batch_size: int, rank: int, world_size: int, workers: int, pin_memory: bool
) -> DataLoader:
    """Every validation image exactly once over all processes (rank r takes r, r+world, ...)."""
    indices = list(range(rank, len(dataset), world_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        collate_fn=collate_with_unreadable,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
    )


def corrupt_error(sample: CorruptSample) -> UserInputError:
    return UserInputError(
        f"image {sample.path} cannot be read ({sample.reason}): replace or delete it, or pass "
        "--corrupt-images skip to skip unreadable images and count them"
    )
