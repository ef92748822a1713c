"""Shared helpers of the pretraining tests: a tiny generated ImageFolder, tiny model configs, run arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from etcore.checkpoint_io import load_checkpoint_file

# Tiny timm configs (kwargs) that train in well under a second per epoch at 32-64 px.
TINY_MODELS: dict[str, dict[str, Any]] = {
    "convnext_atto": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]},
    "resnet18": {},
    "swin_tiny_patch4_window7_224": {"embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4},
    "deit_tiny_patch16_224": {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8},
    "et_test_tinynet": {},  # tests/tiny_registered_model.py, registered by --import tiny_registered_model
}


def make_image_folder(root: Path, classes: int = 3, per_class: int = 8, size: int = 40, seed: int = 0) -> Path:
    """`root/train/<class>/*.png` and `root/val/<class>/*.png`; each class has its own colour and stripe."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                image = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
                image[:, :, c % 3] += 120
                image[(c * 7) % size : (c * 7) % size + 6, :, :] = 255
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


def write_two_stage_curriculum(
    path: Path, small: int = 32, final: int = 64, small_epochs: int = 1, final_epochs: int = 1
) -> Path:
    """A custom curriculum file: `small_epochs` at `small` px then `final_epochs` at `final` px."""
    path.write_text(
        json.dumps(
            {
                "name": "two-stage",
                "final_size": final,
                "stages": [
                    {"epochs": small_epochs, "input_size": small, "randaug_magnitude": 2},
                    {"epochs": final_epochs, "input_size": final, "randaug_magnitude": 6},
                ],
            }
        )
    )
    return path


def tiny_args(
    model: str, data: Path, work_dir: Path, curriculum: Path | str, epochs: int, final_size: int = 64, **overrides: Any
) -> list[str]:
    """Command-line arguments of a tiny, deterministic CPU run (batch 4, no workers)."""
    options: dict[str, Any] = {
        "batch-size": 4,
        "workers": 0,
        "device": "cpu",
        "seed": 0,
        "warmup-epochs": 0.5,
        "lr": 1e-3,
        "model-kwargs": json.dumps(TINY_MODELS[model]),
    }
    options.update({k.replace("_", "-"): v for k, v in overrides.items()})
    argv = [
        "--model",
        model,
        "--data",
        str(data),
        "--work-dir",
        str(work_dir),
        "--curriculum",
        str(curriculum),
        "--epochs",
        str(epochs),
        "--final-size",
        str(final_size),
    ]
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is False:
            argv.append(f"--no-{key}")
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def read_log(work_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]


def load_weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)[key]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Bit-for-bit equality of two state dicts (same keys, same shapes, same values)."""
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def assert_same_run(reference: Path, work: Path, epochs: int, images_per_epoch: int) -> None:
    """`work` ended exactly as the uninterrupted `reference`: final.pth weights and EMA bit for bit, and every
    epoch's log.jsonl loss, LR, top-1 (EMA too), update count and images seen."""
    for key in ("model", "model_ema"):
        assert_same_weights(load_weights(reference / "final.pth", key), load_weights(work / "final.pth", key))
    mine, theirs = read_log(work), read_log(reference)
    assert [row["epoch"] for row in mine] == list(range(epochs)), mine
    keys = ("train_loss", "lr", "top1", "ema_top1", "updates", "images_seen")
    for row, expected in zip(mine, theirs):
        assert [row[k] for k in keys] == [expected[k] for k in keys], f"epoch {row['epoch']}: {keys} differ"
    seen = load_checkpoint_file(work / "final.pth")["provenance"]["images_seen"]
    assert seen == epochs * images_per_epoch, seen
