"""What low-frequency cropping costs: the batch FFT crop and the per-image resize, against one training step.

Two questions, both answered side by side in one process:

* op cost: for each (batch, size), the FFT crop of a final-size batch to `size` (EfficientTrain, on the
  device), the antialiased tensor resize of the batch, and the LANCZOS resize of `batch` PIL images as a
  worker does it (EfficientTrain++), each as a fraction of the training step at that size. Goal: the
  device-side op <= 3% of a step. The PIL figure is CPU time in the workers, not on the step's path.
* loader throughput: images/s of the engine's own train loader (timm transform per stage) in `fft` mode
  (workers emit final-size images), `resize` mode (workers also resize) and `direct` mode (every
  per-image operation at the stage size, JPEGs decoded at reduced scale), next to the step's images/s
  at that size: where the loader is slower than the step, data loading is the bottleneck.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from bench.curriculum import TrainStep
from bench.timing import Spread, interleaved_rounds, per_round_ratios
from pretraining.curriculum import Stage
from pretraining.frequency import LowFrequencyResize, low_frequency_crop, low_frequency_downsample

LOADER_MODES = ("fft", "resize", "direct")


def _pil_image(size: int, seed: int = 0) -> Image.Image:
    """A smooth image with some texture, `size` x `size` (the content barely matters for a resize)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    base = (ramp[None, :, None] + ramp[:, None, None]) / 2 + rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def op_costs(
    config: Any,
    sizes: Sequence[int],
    batch_sizes: Sequence[int],
    num_classes: int,
    device: torch.device,
    rounds: int,
    warmup: int,
) -> list[dict[str, Any]]:
    """Per (batch, size): step time and the three low-frequency ops, with per-round fractions of the step."""
    final = config.final_size
    plain = dataclasses.replace(config, lowfreq="resize")  # step input already at `size`: the pure step
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, final, final, device=device)
        image = _pil_image(final)
        cases: dict[str, Any] = {}
        for size in sizes:
            resize = LowFrequencyResize(size)
            cases[f"step{size}"] = TrainStep(plain, size, batch, num_classes, device)
            cases[f"fft{size}"] = lambda s=size: low_frequency_crop(x, s)
            cases[f"down{size}"] = lambda s=size: low_frequency_downsample(x, s)
            cases[f"pil{size}"] = lambda r=resize: [r(image) for _ in range(batch)]
        times = interleaved_rounds(cases, rounds=rounds, warmup=warmup)
        for size in sizes:
            step = times[f"step{size}"]
            row: dict[str, Any] = {
                "batch": batch,
                "input_size": size,
                "final_size": final,
                "step_s": Spread.of(step).to_dict(),
            }
            for op in ("fft", "down", "pil"):
                row[f"{op}_s"] = Spread.of(times[f"{op}{size}"]).to_dict()
                row[f"{op}_fraction"] = Spread.of(per_round_ratios(times[f"{op}{size}"], step)).to_dict()
            rows.append(row)
    return rows


def op_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'batch':>5} {'size':>5} {'step ms':>9} {'fft ms':>8} {'fft/step':>22} {'resize(batch) ms':>16} "
        f"{'/step':>7} {'PIL LANCZOS x batch ms':>22} {'/step':>7}"
    ]
    for r in rows:
        f = r["fft_fraction"]
        lines.append(
            f"{r['batch']:>5} {r['input_size']:>5} {r['step_s']['median'] * 1e3:>9.1f} "
            f"{r['fft_s']['median'] * 1e3:>8.2f} {Spread.from_dict(f).fmt(4):>22} "
            f"{r['down_s']['median'] * 1e3:>16.2f} {r['down_fraction']['median']:>7.4f} "
            f"{r['pil_s']['median'] * 1e3:>22.2f} {r['pil_fraction']['median']:>7.4f}"
        )
    worst = max(r["fft_fraction"]["median"] for r in rows)
    lines.append(f"largest FFT-crop fraction of a step (median): {worst:.4f}  (goal <= 0.03)")
    return "\n".join(lines)


# --- loader throughput ---------------------------------------------------------------------------
def _write_jpeg(job: tuple[Path, int, int, int]) -> None:
    path, seed, width, height = job
    _pil_image(max(width, height), seed=seed).crop((0, 0, width, height)).save(path, quality=90)


def make_image_folder(root: Path, images: int, width: int = 500, height: int = 375, workers: int = 0) -> Path:
    """An ImageNet-style folder (train/ and val/, two classes) of JPEGs at ImageNet's typical size, written by
    `workers` processes (0: this one)."""
    jobs = []
    for split in ("train", "val"):
        for cls in ("c0", "c1"):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            count = images // 2 if split == "train" else 1
            jobs += [(folder / f"{i:05d}.jpg", i, width, height) for i in range(count)]
    jobs = [job for job in jobs if not job[0].exists()]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            list(pool.map(_write_jpeg, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        for job in jobs:
            _write_jpeg(job)
    return root


def _loader_images_per_s(dataset: Any, batch: int, workers: int, epoch: int, batches: int, skip: int = 1) -> float:
    from pretraining.data import train_loader

    loader = train_loader(dataset, batch, epoch, 0, 1, workers, seed=0, pin_memory=False)
    iterator = iter(loader)
    for _ in range(skip):  # worker start-up and the first batches are excluded
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    del iterator
    return batches * batch / elapsed


def loader_throughput(
    config: Any,
    data: str,
    sizes: Sequence[int],
    batch: int,
    workers: int,
    rounds: int,
    batches: int,
    magnitude: float,
    skip: int = 1,
) -> list[dict[str, Any]]:
    """Loader images/s in `fft` mode (final-size output), `resize` and `direct` modes (output at size), alternating
    per round; each over `batches` batches after the first `skip` (many workers start with a burst: skip about
    two batches per worker, what they prefetch)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from pretraining.data import SeededImageDataset, load_image_folders, train_transform

    train_folder, _ = load_image_folders(data)
    needed = batch * (batches + skip)
    if len(train_folder.samples) < needed:
        from etcore.errors import UserInputError

        raise UserInputError(
            f"--data {data}: {len(train_folder.samples)} train images, the loader benchmark needs "
            f"{needed} (batch x (batches + {skip})): lower --loader-batch/--loader-batches or add images"
        )
    datasets = {}
    for size in sizes:
        stage = Stage(0, 1, size, magnitude)
        for mode in LOADER_MODES:
            transform = train_transform(
                stage, config.final_size, mode, config, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
            )
            datasets[(size, mode)] = SeededImageDataset(train_folder, seed=0, transform=transform)
    results: dict[tuple[int, str], list[float]] = {key: [] for key in datasets}
    keys = list(datasets)
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            results[key].append(_loader_images_per_s(datasets[key], batch, workers, r, batches, skip))
    rows = []
    for size in sizes:
        fft = results[(size, "fft")]
        row: dict[str, Any] = {"input_size": size, "batch": batch, "workers": workers}
        for mode in LOADER_MODES:
            row[f"{mode}_mode_images_per_s"] = Spread.of(results[(size, mode)]).to_dict()
            if mode != "fft":
                row[f"{mode}_over_fft"] = Spread.of(per_round_ratios(results[(size, mode)], fft)).to_dict()
        rows.append(row)
    return rows


def loader_table(rows: Sequence[dict[str, Any]], step_images_per_s: dict[int, float]) -> str:
    """Per size: each mode's loader images/s (all workers), the step's images/s, and the slowest side."""
    lines = [
        f"{'size':>5} {'loader fft-mode img/s':>22} {'loader resize-mode img/s':>25} {'loader direct-mode img/s':>25} "
        f"{'direct/fft':>10} {'step img/s':>10} {'bottleneck (fft, resize, direct)':>33}"
    ]
    for r in rows:
        step = step_images_per_s.get(r["input_size"])
        rates = [r[f"{mode}_mode_images_per_s"]["median"] for mode in LOADER_MODES]
        verdict = "-" if step is None else ", ".join("loader" if rate < step else "step" for rate in rates)
        lines.append(
            f"{r['input_size']:>5} "
            + " ".join(
                f"{Spread.from_dict(r[f'{mode}_mode_images_per_s']).fmt(1):>{width}}"
                for mode, width in zip(LOADER_MODES, (22, 25, 25))
            )
            + f" {r['direct_over_fft']['median']:>10.2f} {(step or float('nan')):>10.1f} {verdict:>33}"
        )
    return "\n".join(lines)
