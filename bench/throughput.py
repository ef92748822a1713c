"""Per-stage throughput: the training step against the data loader at every stage size of both curricula.

Does the loader bound the low-resolution stages? For each model, the engine's step (`TrainStep`, at the
batch the stage trains with) at every input size of its EfficientTrain (ICCV) and EfficientTrain++
curricula, in both step forms: `fft` (a final-size batch arrives and is cropped on the device) and
`resize`/`direct` (the batch arrives at the stage size). Next to it, the engine's own train loader
(`bench.lowfreq.loader_throughput`: the stage's timm transform in `--workers` processes) in each mode at
the same sizes. A stage is loader-bound in a mode where the loader's images/s is below that mode's step.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import torch

from bench.curriculum import measure_steps, resolve_recipe
from bench.lowfreq import LOADER_MODES, loader_throughput
from bench.timing import Spread
from pretraining.curriculum import build_curriculum

CURRICULA = ("efficienttrain", "efficienttrain++")
STEP_FORMS = {"fft": "fft", "resize": "resize", "direct": "resize"}  # loader mode -> the step it feeds
TRANSFORM_FIELDS = ("randaug", "interpolation", "reprob", "crop_scale", "hflip")  # what a worker's transform reads


def curriculum_sizes(model: str, final_size: int) -> dict[str, list[int]]:
    """The distinct input sizes of each curriculum for `model`, ascending (the last is the final size)."""
    return {
        name: sorted(
            {s.input_size for s in build_curriculum(name, 300, final_size=final_size, model_name=model).stages}
        )
        for name in CURRICULA
    }


def model_throughput(
    model: str,
    final_size: int,
    batch_size: int,
    num_classes: int,
    device: torch.device,
    rounds: int,
    warmup: int,
    model_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Step images/s of `model` at every stage size of both curricula, in both step forms."""
    sizes = curriculum_sizes(model, final_size)
    every = sorted({s for found in sizes.values() for s in found})
    iccv = build_curriculum("efficienttrain", 300, final_size=final_size, model_name=model)
    steps: dict[str, dict[int, dict[str, Any]]] = {}
    config = None
    extra = ["--model-kwargs", json.dumps(model_kwargs)] if model_kwargs else []
    for form in ("fft", "resize"):
        config, _ = resolve_recipe(model, "efficienttrain", 300, final_size, batch_size, device.type, form, extra)
        batches, times = measure_steps(config, every, num_classes, device, rounds, warmup, iccv)
        steps[form] = {
            size: {
                "batch": batches[size],
                "step_s": Spread.of(times[size]).to_dict(),
                "images_per_s": Spread.of([batches[size] / t for t in times[size]]).to_dict(),
            }
            for size in every
        }
    return {"model": model, "sizes": sizes, "all_sizes": every, "steps": steps, "config": config}


def throughput(
    models: Sequence[str],
    final_size: int,
    batch_size: int,
    num_classes: int,
    device: torch.device,
    rounds: int,
    warmup: int,
    data: str,
    workers: int,
    loader_batch: int,
    loader_batches: int,
    loader_rounds: int,
    magnitude: float,
    model_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Steps per model and loader per distinct worker transform, with the bottleneck of every (model, size, mode).

    The loader is timed in steady state: after the first two batches per worker (what they prefetch at start)."""
    skip = max(1, 2 * workers)
    per_model = [
        model_throughput(m, final_size, batch_size, num_classes, device, rounds, warmup, model_kwargs) for m in models
    ]
    # the loader does not depend on the model, only on the recipe's transform: one measurement per transform
    transforms: dict[tuple, tuple[Any, set[int]]] = {}
    for entry in per_model:
        config = entry.pop("config")
        key = entry["transform"] = tuple(getattr(config, f) for f in TRANSFORM_FIELDS)
        transforms.setdefault(key, (config, set()))[1].update(entry["all_sizes"])
    loaders = {
        key: {
            row["input_size"]: row
            for row in loader_throughput(
                config, data, sorted(sizes), loader_batch, workers, loader_rounds, loader_batches, magnitude, skip
            )
        }
        for key, (config, sizes) in transforms.items()
    }
    for entry in per_model:
        rows = loaders[entry.pop("transform")]
        entry["loader"] = {}
        for size in entry["all_sizes"]:
            entry["loader"][size] = {}
            for mode in LOADER_MODES:
                loader_rate = rows[size][f"{mode}_mode_images_per_s"]
                step_rate = entry["steps"][STEP_FORMS[mode]][size]["images_per_s"]["median"]
                entry["loader"][size][mode] = {
                    "images_per_s": loader_rate,
                    "step_images_per_s": step_rate,
                    "loader_over_step": loader_rate["median"] / step_rate,
                    "bound_by": "loader" if loader_rate["median"] < step_rate else "step",
                }
    return {
        "final_size": final_size,
        "batch_size": batch_size,
        "workers": workers,
        "loader_batch": loader_batch,
        "loader_batches": {"skipped": skip, "timed": loader_batches},
        "magnitude": magnitude,
        "models": per_model,
    }


def throughput_table(result: dict[str, Any]) -> str:
    """One line per (model, size): the curricula that train there, step and loader images/s per mode, the bound."""
    lines = [
        f"{'model':<30} {'size':>4} {'in':>7} {'step fft':>9} {'step at B':>9} "
        + " ".join(f"{'loader ' + m:>14}" for m in LOADER_MODES)
        + "  bound by (fft, resize, direct)"
    ]
    for entry in result["models"]:
        for size in entry["all_sizes"]:
            where = "+".join("ET" if c == "efficienttrain" else "ET++" for c in CURRICULA if size in entry["sizes"][c])
            loader = entry["loader"][size]
            lines.append(
                f"{entry['model']:<30} {size:>4} {where:>7} "
                f"{entry['steps']['fft'][size]['images_per_s']['median']:>9.0f} "
                f"{entry['steps']['resize'][size]['images_per_s']['median']:>9.0f} "
                + " ".join(f"{loader[m]['images_per_s']['median']:>14.0f}" for m in LOADER_MODES)
                + "  "
                + ", ".join(loader[m]["bound_by"] for m in LOADER_MODES)
            )
    lines.append(
        "images/s: step fft = a final-size batch cropped on the device; step at B = the batch arrives at the size "
        f"(resize, direct); loader = {result['workers']} workers, batch {result['loader_batch']}, "
        f"{result['loader_batches']['timed']} batches timed after {result['loader_batches']['skipped']}, RandAugment "
        f"m={result['magnitude']:g}"
    )
    return "\n".join(lines)
