"""Building curricula: the papers' named ones (`build_curriculum`) and the three stage layouts behind them.

- `curriculum_from_sizes`: N equal-epoch stages under one cosine (EfficientTrain, ICCV);
- `curriculum_from_stage_schedules`: EfficientTrain++ as its official scripts run it, each stage on its own cosine;
- `curriculum_from_budget`: equal-compute stages within an equivalent-epoch budget, one cosine over compute
  (the layout `pretraining.search` explores).
`build_curriculum` also reads a custom file (`pretraining.curriculum.files`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from etcore.errors import UserInputError
from pretraining.curriculum.files import CURRICULUM_SUFFIXES, load_curriculum_file
from pretraining.curriculum.papers import (
    BASELINE_MAGNITUDE,
    CURRICULUM_NAMES,
    DEFAULT_SIZE_MULTIPLE,
    EFFICIENTTRAIN_BATCH_SCALES,
    EFFICIENTTRAIN_MAGNITUDES,
    EFFICIENTTRAIN_SIZES_224,
    ETPP_DROP_PATH_REFERENCE_EPOCHS,
    RECIPE_WARMUP_EPOCHS,
    canonical_curriculum_name,
    etpp_family,
    required_size_multiple,
)
from pretraining.curriculum.value import Curriculum, Stage, check_final_size, check_positive_int


def build_curriculum(name: str, epochs: int | None, final_size: int = 224, **options: Any) -> Curriculum:
    """Make a curriculum by name (`baseline`, `efficienttrain`, `efficienttrain++`) or from a YAML/JSON file.

    `epochs` is the number of real epochs, except for `efficienttrain++` where it is the budget in
    equivalent full-size epochs. For a file it may be None (take the file's length); otherwise it must
    match. Options: `size_multiple` (default 32, or `required_size_multiple(model_name)` when
    `model_name` is given); `model_name` / `family` select the EfficientTrain++ resolutions.
    Raises `UserInputError` for unknown names, malformed files and unusable options.
    """
    known = {"size_multiple", "model_name", "family"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserInputError(f"unknown curriculum option(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
    model_name = options.get("model_name")
    size_multiple = options.get("size_multiple")
    if size_multiple is None:
        size_multiple = required_size_multiple(model_name) if model_name else DEFAULT_SIZE_MULTIPLE
    check_positive_int(size_multiple, "size_multiple")
    check_positive_int(final_size, "final_size (the final input size)")
    key = canonical_curriculum_name(name)

    if key is not None:
        check_final_size(final_size, size_multiple, f"curriculum {key!r}")
        if epochs is None:
            raise UserInputError(f"curriculum {key!r} needs a number of epochs: pass --epochs")
        check_positive_int(epochs, "epochs")
        if key == "baseline":
            sizes, magnitudes = (final_size,), (BASELINE_MAGNITUDE,)
            curriculum = curriculum_from_sizes(
                sizes, magnitudes, epochs, final_size, name=key, warmup_epochs=RECIPE_WARMUP_EPOCHS
            )
        elif key == "efficienttrain":
            sizes = tuple(scale_size(s, final_size, size_multiple) for s in EFFICIENTTRAIN_SIZES_224)
            curriculum = curriculum_from_sizes(
                sizes,
                EFFICIENTTRAIN_MAGNITUDES,
                epochs,
                final_size,
                name=key,
                batch_scales=EFFICIENTTRAIN_BATCH_SCALES,
                warmup_epochs=RECIPE_WARMUP_EPOCHS,
                lowfreq="fft",
            )
        else:
            family = etpp_family(options.get("family"), model_name)
            sizes = tuple(scale_size(s, final_size, size_multiple) for s in family.etpp_sizes_224)
            magnitudes = tuple(float(k) for k in range(len(sizes)))
            curriculum = curriculum_from_stage_schedules(
                sizes,
                magnitudes,
                epochs,
                final_size,
                name=key,
                warmup_epochs=RECIPE_WARMUP_EPOCHS,
                warmup_fraction=family.etpp_warmup_fraction,
                batch_scales=family.batch_scales_of(model_name),
                drop_path_scale=epochs / ETPP_DROP_PATH_REFERENCE_EPOCHS,
                lowfreq="resize",
            )
        return curriculum

    path = Path(str(name))
    if path.suffix.lower() in CURRICULUM_SUFFIXES or path.exists():
        if options.get("family") is not None:
            raise UserInputError(f"curriculum file {path}: option 'family' only applies to efficienttrain++; drop it")
        return load_curriculum_file(path, epochs=epochs, final_size=final_size, size_multiple=size_multiple)
    raise UserInputError(
        f"unknown curriculum {name!r}: use one of {', '.join(CURRICULUM_NAMES)} "
        "or the path of a .yaml/.json curriculum file"
    )


def scale_size(size_at_224: int, final_size: int, size_multiple: int) -> int:
    """`size_at_224 * final_size / 224` rounded to the nearest multiple of `size_multiple` (at most final_size)."""
    scaled = size_at_224 * final_size / 224
    rounded = max(size_multiple, int(math.floor(scaled / size_multiple + 0.5)) * size_multiple)
    return min(rounded, final_size)


def curriculum_from_sizes(
    sizes: Sequence[int],
    magnitudes: Sequence[float],
    epochs: int,
    final_size: int,
    name: str = "custom",
    batch_scales: Sequence[int] | None = None,
    warmup_epochs: float | None = None,
    lowfreq: str = "fft",
) -> Curriculum:
    """Split `epochs` real epochs into len(sizes) equal stages (EfficientTrain's layout), one cosine over all.

    Stage k ends at floor((k+1) * epochs / N), the official `--end_epoch int(E / 5 * (k + 1))` of
    ET_training.py (equal for every E, checked in the tests), so uneven splits give later (larger) stages
    the extra epoch; stages left with no epoch (epochs < N) are dropped.
    """
    if len(sizes) != len(magnitudes):
        raise ValueError(f"{len(sizes)} sizes but {len(magnitudes)} magnitudes")
    count = len(sizes)
    scales = tuple(batch_scales) if batch_scales is not None else (None,) * count
    if len(scales) != count:
        raise ValueError(f"{count} sizes but {len(scales)} batch scales")
    bounds = [(k * epochs) // count for k in range(count + 1)]
    stages = [
        Stage(bounds[k], bounds[k + 1], int(sizes[k]), float(magnitudes[k]), batch_scale=scales[k])
        for k in range(count)
        if bounds[k + 1] > bounds[k]
    ]
    return Curriculum(
        name=name,
        stages=tuple(stages),
        total_epochs=epochs,
        final_size=final_size,
        warmup_epochs=None if warmup_epochs is None else float(warmup_epochs),
        lowfreq=lowfreq,
    )


def curriculum_from_stage_schedules(
    sizes: Sequence[int],
    magnitudes: Sequence[float],
    budget_epochs: int,
    final_size: int,
    name: str = "custom",
    warmup_epochs: float = RECIPE_WARMUP_EPOCHS,
    warmup_fraction: float | None = None,
    batch_scales: Sequence[int] | None = None,
    drop_path_scale: float = 1.0,
    lowfreq: str = "resize",
) -> Curriculum:
    """EfficientTrain++'s layout exactly as its official scripts run it (`lr_axis='stages'`).

    Stage k of N (size B_k, r_k = final_size^2 / B_k^2) is a run of main_buffer.py with its own cosine of
    `T_k = int(E * r_k)` epochs (`--epochs`) and warm-up `int(warmup_fraction * E * r_k)` if a fraction is
    given (DeiT) else `warmup_epochs` (20); it trains epochs [s_k, e_k) of that cosine, where
    `e_k = int(T_k / N * (k + 1))` (`--end_epoch`) and s_k is where the previous stage's checkpoint resumes
    after `utils_buffer.auto_load_model` rescales it: `round(e_j * B_j^2 / B_k^2)` for the last stage j that
    trained (s_0 = 0). A stage with s_k >= e_k trains nothing and is dropped, as the official loop is empty.
    The real epochs of the stages follow each other from 0; the stages cost about E/N equivalent epochs each.
    """
    if len(sizes) != len(magnitudes):
        raise ValueError(f"{len(sizes)} sizes but {len(magnitudes)} magnitudes")
    check_positive_int(budget_epochs, "epochs (the equivalent-epoch budget)")
    count = len(sizes)
    scales = tuple(batch_scales) if batch_scales is not None else (None,) * count
    if len(scales) != count:
        raise ValueError(f"{count} sizes but {len(scales)} batch scales")
    stages: list[Stage] = []
    start, previous = 0, None  # previous: (end on its own cosine, size) of the last stage that trained
    for k, (size, magnitude) in enumerate(zip(sizes, magnitudes)):
        ratio = (final_size * final_size) / (size * size)
        schedule = int(budget_epochs * ratio)
        end = int(schedule / count * (k + 1))
        begin = 0 if previous is None else round(previous[0] * previous[1] ** 2 / size**2)
        if end <= begin:
            continue
        warmup = float(int(warmup_fraction * budget_epochs * ratio)) if warmup_fraction else float(warmup_epochs)
        length = end - begin
        stages.append(
            Stage(
                start,
                start + length,
                int(size),
                float(magnitude),
                batch_scale=scales[k],
                lr_epochs=schedule,
                lr_start_epoch=begin,
                lr_warmup_epochs=warmup,
            )
        )
        start += length
        previous = (end, size)
    return _budget_curriculum(name, stages, final_size, "stages", budget_epochs, drop_path_scale, lowfreq=lowfreq)


def curriculum_from_budget(
    sizes: Sequence[int],
    magnitudes: Sequence[float],
    budget_epochs: float,
    final_size: int,
    name: str = "custom",
    drop_path_scale: float = 1.0,
) -> Curriculum:
    """Equal-compute stages within `budget_epochs` equivalent epochs, one cosine over compute: the curriculum
    search's layout (`pretraining.search`). EfficientTrain++'s own scripts lay their stages out otherwise
    (`curriculum_from_stage_schedules`: a cosine per stage, whole epochs per stage's schedule).

    Stage k should run (budget/N) * (final_size/B_k)^2 real epochs. Epochs are whole, so stage k ends at
    the whole epoch where the cumulative compute is nearest to its ideal value (k+1) * budget/N (error
    diffusion: each stage absorbs the rounding error of the ones before it). Every stage boundary is
    then within half an epoch of its ideal compute, and the total compute within half an epoch at the
    last stage's size (<= 0.5 equivalent epochs) of the budget. Stages left with no epoch are dropped.
    """
    if len(sizes) != len(magnitudes):
        raise ValueError(f"{len(sizes)} sizes but {len(magnitudes)} magnitudes")
    if not (isinstance(budget_epochs, (int, float)) and math.isfinite(budget_epochs) and budget_epochs > 0):
        raise UserInputError(f"epochs (the equivalent-epoch budget) must be a positive number, got {budget_epochs!r}")
    count = len(sizes)
    stages: list[Stage] = []
    start, done = 0, 0.0
    for k, (size, magnitude) in enumerate(zip(sizes, magnitudes)):
        cost = (size / final_size) ** 2
        target = (k + 1) * budget_epochs / count
        length = max(0, int(math.floor((target - done) / cost + 0.5)))
        if length:
            stages.append(Stage(start, start + length, int(size), float(magnitude)))
            start += length
            done += length * cost
    return _budget_curriculum(name, stages, final_size, "compute", budget_epochs, drop_path_scale)


def _budget_curriculum(
    name: str,
    stages: list[Stage],
    final_size: int,
    lr_axis: str,
    budget_epochs: float,
    drop_path_scale: float,
    lowfreq: str = "fft",
) -> Curriculum:
    """The curriculum of a budget's stages (laid end to end from epoch 0), or one line if none got an epoch."""
    if not stages:
        raise UserInputError(
            f"an equivalent-epoch budget of {budget_epochs} is too small for any whole epoch: raise --epochs"
        )
    return Curriculum(
        name=name,
        stages=tuple(stages),
        total_epochs=stages[-1].end_epoch,
        final_size=final_size,
        lr_axis=lr_axis,
        budget_epochs=float(budget_epochs),
        drop_path_scale=float(drop_path_scale),
        lowfreq=lowfreq,
    )
