"""ImageNet-style folders, per-stage timm transforms and seeded loaders for curriculum pretraining.

`PATH/train/<class>/*` and `PATH/val/<class>/*` are read with torchvision's ImageFolder after a check
that names any missing or empty folder. Each sample's augmentation is seeded by (run seed, epoch,
index), so the images a run sees do not depend on the number of workers or processes, and a resumed
run sees exactly what the uninterrupted one would. The train loader lives for a whole stage (its
workers persist across the stage's epochs): its sampler yields (epoch, index) keys, so the epoch of
each sample's seed reaches the workers with the key. Unreadable images stop the run (naming the file)
or, with `corrupt_images='skip'`, are replaced by the next readable image and counted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from timm.data import create_transform
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
        unreadable: list[CorruptSample] = []
        for offset in range(len(self.samples)):
            path, target = self.samples[(index + offset) % len(self.samples)]
            with seeded_sample(sample_seed(self.seed, epoch, index)):
                try:
                    with Image.open(path) as handle:
                        image = handle.convert("RGB")
                except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                    unreadable.append(CorruptSample(path, " ".join(str(err).split()) or type(err).__name__))
                    continue
                if self.transform is not None:
                    image = self.transform(image)
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

    RandomResizedCrop always targets `final_size`; the low-frequency view of size `stage.input_size` is
    made either here (`lowfreq='resize'`: LANCZOS after RandAugment, before ToTensor/Normalize/
    RandomErasing, as EfficientTrain++) or later on the device (`'fft'`: exact crop of the batch).
    """
    from torchvision import transforms

    common = dict(
        input_size=final_size,
        is_training=True,
        auto_augment=randaug_string(config.randaug, stage.randaug_magnitude),
        interpolation=config.interpolation,
        re_prob=config.reprob,
        scale=(config.crop_scale, 1.0),
        re_mode="pixel",
        re_count=1,
        mean=tuple(mean),
        std=tuple(std),
    )
    if lowfreq == "resize" and stage.input_size < final_size:
        primary, secondary, final = create_transform(separate=True, **common)
        return transforms.Compose([primary, secondary, LowFrequencyResize(stage.input_size), final])
    return create_transform(**common)


def eval_transform(final_size: int, crop_pct: float, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Resize to final_size / crop_pct (bicubic), centre-crop final_size, normalise."""
    return create_transform(
        input_size=final_size,
        is_training=False,
        crop_pct=crop_pct,
        interpolation="bicubic",
        mean=tuple(mean),
        std=tuple(std),
    )


class EpochKeySampler(DistributedSampler):
    """DistributedSampler whose items are (epoch, index) keys: the epoch travels to persistent workers."""

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        return ((self.epoch, index) for index in super().__iter__())


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
