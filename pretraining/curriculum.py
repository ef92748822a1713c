"""Training curricula as values: which input size and RandAugment magnitude each epoch uses.

A `Curriculum` is an ordered tuple of `Stage`s covering epochs 0..total_epochs-1 without gaps. The
engine asks it `stage_at(epoch)` and `compute_progress(epoch)`; nothing in a training loop compares
epochs with constants. `build_curriculum` makes the named curricula of the papers (EfficientTrain,
arXiv 2211.09703; EfficientTrain++, arXiv 2405.08768) or reads a custom YAML/JSON file.

Custom curriculum file (YAML or JSON), e.g. ``my_curriculum.yaml``::

    name: short-low-res            # optional; default: the file name without extension
    final_size: 224                # optional; must equal the run's final (evaluation) size
    total_epochs: 100              # optional; checked against the stages
    lr_axis: epochs                # optional; epochs (default), compute or stages: the LR schedule's time axis
    warmup_epochs: 20              # optional; warm-up on that axis (default: 20 per 300 of the schedule)
    lowfreq: fft                   # optional; fft (default), resize or direct: the low-frequency operation
    budget_epochs: 65.6            # optional; the equivalent-epoch budget the stages were laid out for
    drop_path_scale: 1.0           # optional; the recipe's stochastic depth is multiplied by this
    stages:                        # in order, covering epoch 0 to the end without gaps
      - {epochs: 40, input_size: 160, randaug_magnitude: 2, batch_scale: 2}
      - {epochs: 60, input_size: 224, randaug_magnitude: 9}

A stage gives either `epochs` (its length; stages follow each other) or `start_epoch` and `end_epoch`
(0-based, end exclusive), so the `curriculum.json` a pretraining run writes (`Curriculum.to_dict()`)
is itself a valid curriculum file. Sizes in files must already be multiples of the model's size
multiple; sizes of the named curricula are rounded to it. `batch_scale` (optional) multiplies the
per-device batch of the stage and divides the gradient accumulation by the same factor, so the
effective batch never changes (default: 2 below the final size, 1 at it).

The curriculum owns its schedule: `lr_axis` says whether the cosine LR runs over epochs, over compute
done, or (`stages`) whether every stage trains a part of its own cosine, as EfficientTrain++'s official
scripts do: then each stage also gives `lr_epochs` (the length of its cosine), `lr_start_epoch` (where
on it the stage starts) and optionally `lr_warmup_epochs`. A budgeted curriculum carries its
`budget_epochs` and `drop_path_scale` (EfficientTrain++: budget / 200), and `lowfreq` names the
low-frequency operation it was defined with (EfficientTrain++: resize). No code branches on a
curriculum's name; a curriculum written to a file and read back trains exactly as the original.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from etcore.errors import UserInputError

CURRICULUM_NAMES = ("baseline", "efficienttrain", "efficienttrain++")
LR_AXES = ("epochs", "compute", "stages")
LOWFREQ_OPS = ("fft", "resize", "direct")
_ALIASES = {
    "efficienttrain_pp": "efficienttrain++",
    "efficienttrainpp": "efficienttrain++",
    "et": "efficienttrain",
    "et++": "efficienttrain++",
}
_CURRICULUM_SUFFIXES = (".yaml", ".yml", ".json")

BASELINE_MAGNITUDE = 9.0
# EfficientTrain (ICCV): five equal stages; sizes at final size 224 and RandAugment magnitudes.
EFFICIENTTRAIN_SIZES_224 = (160, 160, 160, 192, 224)
EFFICIENTTRAIN_MAGNITUDES = (1.0, 3.0, 5.0, 7.0, 9.0)
# EfficientTrain++: ten equal-compute stages, sizes at final size 224 by model family; m = stage index.
EFFICIENTTRAIN_PP_SIZES_224 = {
    "swin": (96,) * 2 + (160,) * 4 + (224,) * 4,
    "cswin": (96,) * 2 + (160,) * 4 + (224,) * 4,
    "resnet": (96,) * 2 + (160,) * 4 + (224,) * 4,
    "deit": (96,) * 2 + (160,) * 4 + (192,) * 2 + (224,) * 2,
    "vit": (96,) * 2 + (160,) * 4 + (192,) * 2 + (224,) * 2,
    "convnext": (160,) * 6 + (224,) * 4,
}
DEFAULT_SIZE_MULTIPLE = 32
ETPP_DROP_PATH_REFERENCE_EPOCHS = 200.0  # EfficientTrain++ scales stochastic depth by budget / 200
# Warm-up of the recipe (paper Table 'training hyper-parameters'): 20 epochs; a curriculum without its own warm-up
# gets the same share (20 per 300) of its schedule.
RECIPE_WARMUP_EPOCHS = 20
RECIPE_EPOCHS = 300
# EfficientTrain (ICCV) official ET_training.py: per-GPU batch x2 (accumulation / 2) in the four stages below 224.
EFFICIENTTRAIN_BATCH_SCALES = (2, 2, 2, 2, 1)
# EfficientTrain++ official _ET_pp_main_<model>.py: each stage is a run of main_buffer.py on its own cosine of
# int(E * (224/B)^2) epochs with 20 warm-up epochs, except DeiT: int(0.2 * E * (224/B)^2).
ETPP_WARMUP_FRACTION = {"deit": 0.2, "vit": 0.2}
# ... and its per-GPU batch over that of the 224 stages (bs_list / update_freq lists, 8 GPUs, effective 4096).
ETPP_BATCH_SCALES_BY_FAMILY = {
    "swin": (2,) * 6 + (1,) * 4,  # _ET_pp_main_swinT.py: 512 x1, then 256 x2
    "cswin": (2,) * 6 + (1,) * 4,  # _ET_pp_main_cswinT.py
    "deit": (2,) * 6 + (1,) * 4,  # _ET_pp_main_deitS.py: 512 x1 at 96/160, 256 x2 at 192 and 224
    "vit": (2,) * 6 + (1,) * 4,
    "convnext": (2,) * 6 + (1,) * 4,  # _ET_pp_main_convnext{T,S,B}.py: 256 x2 then 128 x4 (T)
    "resnet": (1,) * 10,  # _ET_pp_main_res50.py: 512 x1 throughout
}
ETPP_BATCH_SCALES_BY_MODEL = (  # (regex on the timm name, scales); first match wins, else the family's
    (r"^swin_(small|base)", (4,) * 2 + (2,) * 4 + (1,) * 4),  # _ET_pp_main_swin{S,B}.py: 512 x1, 256 x2, 128 x4
    (r"^cswin_(small|base)", (4,) * 2 + (2,) * 4 + (1,) * 4),  # _ET_pp_main_cswin{S,B}.py
)


@dataclass(frozen=True)
class Stage:
    """Epochs `start_epoch` .. `end_epoch - 1` (0-based) train at `input_size` with RandAugment `randaug_magnitude`.

    Optional: `batch_scale`, the factor on the per-device batch (and divisor of the gradient accumulation)
    in this stage (None: 2 below the final size, 1 at it); and, for a curriculum with `lr_axis='stages'`,
    the stage's own cosine: `lr_epochs` long, entered at `lr_start_epoch`, with `lr_warmup_epochs` of warm-up
    (None: the curriculum's or the recipe's warm-up).
    """

    start_epoch: int
    end_epoch: int
    input_size: int
    randaug_magnitude: float
    batch_scale: int | None = None
    lr_epochs: int | None = None
    lr_start_epoch: int | None = None
    lr_warmup_epochs: float | None = None

    @property
    def epochs(self) -> int:
        return self.end_epoch - self.start_epoch

    def batch_factor(self, final_size: int) -> int:
        """The stage's `batch_scale`, or the default: 2 below `final_size`, 1 at it."""
        if self.batch_scale is not None:
            return self.batch_scale
        return 2 if self.input_size < final_size else 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "input_size": self.input_size,
            "randaug_magnitude": float(self.randaug_magnitude),
        }
        for name in _OPTIONAL_STAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = float(value) if name == "lr_warmup_epochs" else value
        return data


_OPTIONAL_STAGE_FIELDS = ("batch_scale", "lr_epochs", "lr_start_epoch", "lr_warmup_epochs")
_STAGE_SCHEDULE_FIELDS = ("lr_epochs", "lr_start_epoch", "lr_warmup_epochs")


@dataclass(frozen=True)
class Curriculum:
    """An ordered, gap-free tuple of stages over `total_epochs` epochs, evaluated at `final_size`.

    Construction validates the stages and raises `UserInputError` naming the problem, so a curriculum
    read from a file, a checkpoint or the command line is either sound or refused.
    """

    name: str
    stages: tuple[Stage, ...]
    total_epochs: int
    final_size: int
    lr_axis: str = "epochs"  # the LR schedule's time axis: "epochs", "compute" or "stages" (one cosine per stage)
    budget_epochs: float | None = None  # equivalent-epoch budget of a budgeted (EfficientTrain++) layout
    drop_path_scale: float = 1.0  # factor on the recipe's stochastic depth
    warmup_epochs: float | None = None  # warm-up on the LR axis (None: the recipe's 20 per 300 of the schedule)
    lowfreq: str = "fft"  # the low-frequency operation the curriculum was defined with: "fft", "resize" or "direct"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        source = f"curriculum {self.name!r}"
        _validate(self.name, self.stages, self.total_epochs, self.final_size, source=source, size_multiple=1)
        _validate_schedule(self.lr_axis, self.budget_epochs, self.drop_path_scale, source)
        _validate_extras(self.stages, self.lr_axis, self.warmup_epochs, self.lowfreq, source)

    # --- queries the engine uses -------------------------------------------------------------
    def stage_index(self, epoch: int) -> int:
        """Index of the stage that trains epoch `epoch` (0-based)."""
        if not 0 <= epoch < self.total_epochs:
            raise ValueError(f"epoch {epoch} is outside curriculum {self.name!r} (0..{self.total_epochs - 1})")
        for index, stage in enumerate(self.stages):
            if epoch < stage.end_epoch:
                return index
        raise AssertionError("unreachable: stages cover every epoch")

    def stage_at(self, epoch: int) -> Stage:
        """The stage that trains epoch `epoch` (0-based)."""
        return self.stages[self.stage_index(epoch)]

    def epoch_cost(self, epoch: int) -> float:
        """Compute of one epoch relative to an epoch at `final_size`: (input_size / final_size)^2."""
        return (self.stage_at(epoch).input_size / self.final_size) ** 2

    def equivalent_epochs(self) -> float:
        """Total compute in full-size epochs: sum over epochs of (input_size / final_size)^2."""
        return sum(stage.epochs * (stage.input_size / self.final_size) ** 2 for stage in self.stages)

    def compute_ratio(self) -> float:
        """Compute relative to training every epoch at `final_size` (EfficientTrain: 0.653)."""
        return self.equivalent_epochs() / self.total_epochs

    def compute_progress(self, epoch: float) -> float:
        """Fraction (0..1) of the total compute done after `epoch` (fractional) epochs.

        Within an epoch compute grows linearly; `compute_progress(total_epochs)` is 1. EfficientTrain++
        runs its cosine LR schedule over this quantity instead of over passes.
        """
        epoch = min(max(float(epoch), 0.0), float(self.total_epochs))
        done = 0.0
        for stage in self.stages:
            covered = min(epoch, stage.end_epoch) - stage.start_epoch
            if covered <= 0:
                break
            done += covered * (stage.input_size / self.final_size) ** 2
        return min(done / self.equivalent_epochs(), 1.0)

    # --- plain-data round trip (checkpoint provenance, curriculum.json) ------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, as stored in `provenance.curriculum` (docs/FORMATS.md)."""
        return {
            "name": self.name,
            "total_epochs": self.total_epochs,
            "final_size": self.final_size,
            "lr_axis": self.lr_axis,
            "warmup_epochs": self.warmup_epochs,
            "lowfreq": self.lowfreq,
            "budget_epochs": self.budget_epochs,
            "drop_path_scale": self.drop_path_scale,
            "stages": [stage.to_dict() for stage in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "curriculum dict") -> "Curriculum":
        """Inverse of `to_dict`; also reads the custom-file form (stages with `epochs`)."""
        return _curriculum_from_mapping(
            data, source=source, default_name="custom", final_size=None, epochs=None, size_multiple=1
        )

    def describe(self) -> str:
        """A short human-readable table, for logs and `--dry-run`s."""
        lines = [self.summary()]
        for stage in self.stages:
            extra = f"  batch x{stage.batch_scale}" if stage.batch_scale is not None else ""
            if stage.lr_epochs is not None:
                warmup = "" if stage.lr_warmup_epochs is None else f", warm-up {stage.lr_warmup_epochs:g}"
                extra += (
                    f"  lr epochs {stage.lr_start_epoch}-{stage.lr_start_epoch + stage.epochs} "
                    f"of {stage.lr_epochs}{warmup}"
                )
            lines.append(
                f"  epochs {stage.start_epoch:>4}-{stage.end_epoch:<4} size {stage.input_size:>4}"
                f"  randaug m={stage.randaug_magnitude:g}{extra}"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """The first line of `describe`: length, compute, and the schedule fields."""
        budget = f", budget {self.budget_epochs:g}" if self.budget_epochs is not None else ""
        warmup = f", warm-up {self.warmup_epochs:g}" if self.warmup_epochs is not None else ""
        return (
            f"curriculum {self.name}: {self.total_epochs} epochs at final size {self.final_size}, "
            f"{self.equivalent_epochs():.1f} equivalent epochs (ratio {self.compute_ratio():.3f}{budget}); "
            f"LR over {self.lr_axis}{warmup}, drop path x{self.drop_path_scale:g}, low frequencies by {self.lowfreq}"
        )


# --- model helpers ---------------------------------------------------------------------------
_FAMILY_PATTERNS = (  # (regex on the timm model name, family); first match wins
    (r"^cswin", "cswin"),
    (r"^swin", "swin"),
    (r"^convnext", "convnext"),
    (r"^deit", "deit"),
    (r"^(vit|vision_transformer)", "vit"),
    (r"^(resnet|resnext|wide_resnet|seresnet|seresnext|resnetrs|resnetv2)", "resnet"),
)


def model_family(model_name: str) -> str:
    """The EfficientTrain++ family of a timm model name: swin, cswin, resnet, deit, vit, convnext or other."""
    base = model_name.split(".", 1)[0].lower()  # drop a timm pretrained tag such as '.fb_in1k'
    for pattern, family in _FAMILY_PATTERNS:
        if re.match(pattern, base):
            return family
    return "other"


def required_size_multiple(model_name: str) -> int:
    """The multiple every training input size must be for `model_name`.

    ViT/DeiT: the patch size (from ``patchNN`` in the name, 16 if absent), so the token grid is whole
    (`pos_embed` is resized to the grid). Everything else: 32, the total stride of ConvNets and Swin;
    for Swin it also makes input/32 the whole number that the curriculum uses as the window size
    (5, 6, 7 at 160, 192, 224), so every stage's feature map is tiled by whole windows.
    """
    family = model_family(model_name)
    if family in ("vit", "deit"):
        match = re.search(r"patch(\d+)", model_name)
        return int(match.group(1)) if match else 16
    return DEFAULT_SIZE_MULTIPLE


# --- building curricula ----------------------------------------------------------------------
def canonical_curriculum_name(name: str) -> str | None:
    """`name` as one of CURRICULUM_NAMES (aliases resolved), or None for a file path."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    return key if key in CURRICULUM_NAMES else None


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
    _check_positive_int(size_multiple, "size_multiple")
    _check_positive_int(final_size, "final_size (the final input size)")
    key = canonical_curriculum_name(name)

    if key is not None:
        _check_final_size(final_size, size_multiple, f"curriculum {key!r}")
        if epochs is None:
            raise UserInputError(f"curriculum {key!r} needs a number of epochs: pass --epochs")
        _check_positive_int(epochs, "epochs")
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
            family = _pp_family(options.get("family"), model_name)
            sizes = tuple(scale_size(s, final_size, size_multiple) for s in EFFICIENTTRAIN_PP_SIZES_224[family])
            magnitudes = tuple(float(k) for k in range(len(sizes)))
            curriculum = curriculum_from_stage_schedules(
                sizes,
                magnitudes,
                epochs,
                final_size,
                name=key,
                warmup_epochs=RECIPE_WARMUP_EPOCHS,
                warmup_fraction=ETPP_WARMUP_FRACTION.get(family),
                batch_scales=etpp_batch_scales(family, model_name),
                drop_path_scale=epochs / ETPP_DROP_PATH_REFERENCE_EPOCHS,
                lowfreq="resize",
            )
        return curriculum

    path = Path(str(name))
    if path.suffix.lower() in _CURRICULUM_SUFFIXES or path.exists():
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
    _check_positive_int(budget_epochs, "epochs (the equivalent-epoch budget)")
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
    if not stages:
        raise UserInputError(
            f"an equivalent-epoch budget of {budget_epochs} is too small for any whole epoch: raise --epochs"
        )
    return Curriculum(
        name=name,
        stages=tuple(stages),
        total_epochs=start,
        final_size=final_size,
        lr_axis="stages",
        budget_epochs=float(budget_epochs),
        drop_path_scale=float(drop_path_scale),
        lowfreq=lowfreq,
    )


def etpp_batch_scales(family: str, model_name: str | None) -> tuple[int, ...]:
    """EfficientTrain++'s per-stage batch factors for `model_name` (its official script), else its family's."""
    base = (model_name or "").split(".", 1)[0].lower()
    for pattern, scales in ETPP_BATCH_SCALES_BY_MODEL:
        if re.match(pattern, base):
            return scales
    return ETPP_BATCH_SCALES_BY_FAMILY[family]


def stage_batch(stage: Stage, final_size: int, batch_size: int, accum_steps: int, scale: bool) -> tuple[int, int]:
    """(per-device batch, accumulation steps) of `stage` for a run of `batch_size` x `accum_steps` at full size.

    With `scale` the stage trades accumulation for a larger per-device batch by its `batch_factor`, as the
    official scripts do; the effective batch never changes, so the factor applied is the largest one that
    divides both the stage's factor and `accum_steps` (gcd): with --accum-steps 1 the batch stays as it is.
    """
    factor = math.gcd(stage.batch_factor(final_size), accum_steps) if scale else 1
    return batch_size * factor, accum_steps // factor


def curriculum_from_budget(
    sizes: Sequence[int],
    magnitudes: Sequence[float],
    budget_epochs: float,
    final_size: int,
    name: str = "custom",
    drop_path_scale: float = 1.0,
) -> Curriculum:
    """Equal-compute stages within `budget_epochs` equivalent epochs (EfficientTrain++'s layout).

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
    if not stages:
        raise UserInputError(
            f"an equivalent-epoch budget of {budget_epochs} is too small for any whole epoch: raise --epochs"
        )
    return Curriculum(
        name=name,
        stages=tuple(stages),
        total_epochs=start,
        final_size=final_size,
        lr_axis="compute",
        budget_epochs=float(budget_epochs),
        drop_path_scale=float(drop_path_scale),
    )


def load_curriculum_file(
    path: str | Path,
    epochs: int | None = None,
    final_size: int | None = None,
    size_multiple: int = DEFAULT_SIZE_MULTIPLE,
) -> Curriculum:
    """Read a custom curriculum from a YAML or JSON file (format in this module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"curriculum file {path} does not exist: check the path, or use one of {', '.join(CURRICULUM_NAMES)}"
        )
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError / yaml.YAMLError: report the parser's position
        detail = " ".join(str(err).split())
        raise UserInputError(
            f"curriculum file {path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}"
            f" ({detail}): fix the syntax"
        ) from None
    return _curriculum_from_mapping(
        data,
        source=f"curriculum file {path}",
        default_name=path.stem,
        final_size=final_size,
        epochs=epochs,
        size_multiple=size_multiple,
    )


def save_curriculum_file(curriculum: Curriculum, path: str | Path) -> Path:
    """Write `curriculum` as a JSON or YAML curriculum file (by suffix) that `build_curriculum` reads back."""
    from etcore.checkpoint_io import write_text_atomic

    path = Path(path)
    data = curriculum.to_dict()
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    return write_text_atomic(text, path)


# --- internals -------------------------------------------------------------------------------
def _pp_family(family: str | None, model_name: str | None) -> str:
    if family is None and model_name is None:
        raise UserInputError(
            "curriculum 'efficienttrain++' needs the model family: pass model_name= (--model) "
            f"or family= (one of {', '.join(EFFICIENTTRAIN_PP_SIZES_224)})"
        )
    chosen = str(family).lower() if family is not None else model_family(model_name)
    if chosen not in EFFICIENTTRAIN_PP_SIZES_224:
        what = f"family {family!r}" if family is not None else f"model {model_name!r} (family {chosen!r})"
        raise UserInputError(
            f"efficienttrain++ has no resolution schedule for {what}: pass family= one of "
            f"{', '.join(EFFICIENTTRAIN_PP_SIZES_224)}, or write a custom curriculum file"
        )
    return chosen


def _check_positive_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserInputError(f"{what} must be a positive whole number, got {value!r}")


def _check_final_size(final_size: int, size_multiple: int, source: str) -> None:
    if final_size % size_multiple:
        raise UserInputError(
            f"{source}: final size {final_size} is not a multiple of {size_multiple} "
            f"(the model's size multiple): use e.g. {_nearest_multiple(final_size, size_multiple)}"
        )


def _nearest_multiple(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _curriculum_from_mapping(
    data: Any, source: str, default_name: str, final_size: int | None, epochs: int | None, size_multiple: int
) -> Curriculum:
    """Parse and validate the file/dict form; every problem names `source`, the field and the fix."""
    if not isinstance(data, Mapping):
        raise UserInputError(f"{source} must be a mapping with a 'stages' list, got {type(data).__name__}")
    allowed = {
        "name",
        "final_size",
        "total_epochs",
        "stages",
        "lr_axis",
        "warmup_epochs",
        "lowfreq",
        "budget_epochs",
        "drop_path_scale",
    }
    extra = sorted(set(map(str, data)) - allowed)
    if extra:
        raise UserInputError(f"{source}: unknown field(s) {', '.join(extra)}: allowed are {', '.join(sorted(allowed))}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise UserInputError(f"{source}: 'name' must be a non-empty string")
    file_final = data.get("final_size")
    if file_final is not None:
        _check_positive_int(file_final, f"{source}: 'final_size'")
        if final_size is not None and file_final != final_size:
            raise UserInputError(
                f"{source}: final_size {file_final} differs from the run's final input size "
                f"{final_size}: make them agree (edit the file or the input size)"
            )
    final = file_final if file_final is not None else final_size
    if final is None:
        raise UserInputError(f"{source}: 'final_size' is missing: add the final (evaluation) input size")
    _check_final_size(final, size_multiple, source)

    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise UserInputError(
            f"{source}: 'stages' must be a non-empty list of {{epochs, input_size, randaug_magnitude}} entries"
        )
    stages = _parse_stages(raw_stages, source)
    total = stages[-1].end_epoch
    _validate(name, stages, total, final, source=source, size_multiple=size_multiple)
    declared = data.get("total_epochs")
    if declared is not None:
        _check_positive_int(declared, f"{source}: 'total_epochs'")
    for expected, what in ((declared, "its 'total_epochs'"), (epochs, "the run's --epochs")):
        if expected is not None and expected != total:
            raise UserInputError(
                f"{source}: stages cover {total} epochs but {what} is {expected}: "
                "make the stage lengths add up to the run's epochs"
            )
    lr_axis = data.get("lr_axis", "epochs")
    budget = data.get("budget_epochs")
    drop_path_scale = data.get("drop_path_scale", 1.0)
    warmup = data.get("warmup_epochs")
    lowfreq = data.get("lowfreq", "fft")
    _validate_schedule(lr_axis, budget, drop_path_scale, source)
    _validate_extras(stages, lr_axis, warmup, lowfreq, source)
    return Curriculum(
        name=name,
        stages=stages,
        total_epochs=total,
        final_size=final,
        lr_axis=lr_axis,
        budget_epochs=None if budget is None else float(budget),
        drop_path_scale=float(drop_path_scale),
        warmup_epochs=None if warmup is None else float(warmup),
        lowfreq=lowfreq,
    )


def _validate_schedule(lr_axis: Any, budget_epochs: Any, drop_path_scale: Any, source: str) -> None:
    """The schedule fields: a known LR axis, a positive budget (or none), a positive drop-path factor."""
    if lr_axis not in LR_AXES:
        raise UserInputError(f"{source}: lr_axis {lr_axis!r} is unknown: use one of {', '.join(LR_AXES)}")
    for value, what, optional in ((budget_epochs, "budget_epochs", True), (drop_path_scale, "drop_path_scale", False)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UserInputError(f"{source}: {what} must be a positive number, got {value!r}")


def _validate_extras(stages: Sequence[Stage], lr_axis: str, warmup_epochs: Any, lowfreq: Any, source: str) -> None:
    """Warm-up, low-frequency operation, batch factors, and the per-stage cosines of `lr_axis: stages`."""
    if lowfreq not in LOWFREQ_OPS:
        raise UserInputError(f"{source}: lowfreq {lowfreq!r} is unknown: use one of {', '.join(LOWFREQ_OPS)}")
    if warmup_epochs is not None and not _is_number(warmup_epochs, minimum=0.0):
        raise UserInputError(f"{source}: warmup_epochs must be a number >= 0, got {warmup_epochs!r}")
    for index, stage in enumerate(stages):
        where = f"{source}: stage {index} (epochs {stage.start_epoch}-{stage.end_epoch})"
        if stage.batch_scale is not None and not _is_whole(stage.batch_scale, minimum=1):
            raise UserInputError(f"{where}: batch_scale must be a whole number >= 1, got {stage.batch_scale!r}")
        given = [name for name in _STAGE_SCHEDULE_FIELDS if getattr(stage, name) is not None]
        if lr_axis != "stages":
            if given:
                raise UserInputError(
                    f"{where}: {', '.join(given)} only apply with lr_axis: stages: set it, or drop them"
                )
            continue
        for name in ("lr_epochs", "lr_start_epoch"):
            if getattr(stage, name) is None:
                raise UserInputError(f"{where}: lr_axis is stages but '{name}' is missing: add it")
        if not _is_whole(stage.lr_epochs, minimum=1) or not _is_whole(stage.lr_start_epoch, minimum=0):
            raise UserInputError(
                f"{where}: lr_epochs must be a whole number >= 1 and lr_start_epoch one >= 0, "
                f"got {stage.lr_epochs!r} and {stage.lr_start_epoch!r}"
            )
        if stage.lr_start_epoch + stage.epochs > stage.lr_epochs:
            raise UserInputError(
                f"{where}: its {stage.epochs} epochs from lr_start_epoch {stage.lr_start_epoch} run past the end "
                f"of its cosine (lr_epochs {stage.lr_epochs}): raise lr_epochs or shorten the stage"
            )
        warm = stage.lr_warmup_epochs
        if warm is not None and not _is_number(warm, minimum=0.0):
            raise UserInputError(f"{where}: lr_warmup_epochs must be a number >= 0, got {warm!r}")


def _is_number(value: Any, minimum: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= minimum


def _is_whole(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


def _parse_stages(raw_stages: Iterable[Any], source: str) -> tuple[Stage, ...]:
    stages = []
    next_start = 0
    for index, raw in enumerate(raw_stages):
        where = f"{source}: stages[{index}]"
        if not isinstance(raw, Mapping):
            raise UserInputError(
                f"{where} must be a mapping like {{epochs: 60, input_size: 160, randaug_magnitude: 1}}"
            )
        allowed = {"epochs", "start_epoch", "end_epoch", "input_size", "randaug_magnitude", *_OPTIONAL_STAGE_FIELDS}
        extra = sorted(set(map(str, raw)) - allowed)
        if extra:
            raise UserInputError(
                f"{where}: unknown field(s) {', '.join(extra)}: allowed are {', '.join(sorted(allowed))}"
            )
        for field in ("input_size", "randaug_magnitude"):
            if field not in raw:
                raise UserInputError(f"{where}: '{field}' is missing: add it")
        has_span = "start_epoch" in raw or "end_epoch" in raw
        if "epochs" in raw and has_span:
            raise UserInputError(f"{where}: give either 'epochs' or 'start_epoch'/'end_epoch', not both")
        if "epochs" in raw:
            length = raw["epochs"]
            _check_int(length, f"{where}: 'epochs'")
            start, end = next_start, next_start + length
        elif "start_epoch" in raw and "end_epoch" in raw:
            start, end = raw["start_epoch"], raw["end_epoch"]
            _check_int(start, f"{where}: 'start_epoch'")
            _check_int(end, f"{where}: 'end_epoch'")
        else:
            raise UserInputError(
                f"{where}: the stage length is missing: add 'epochs' (or 'start_epoch' and 'end_epoch')"
            )
        size = raw["input_size"]
        _check_int(size, f"{where}: 'input_size'")
        magnitude = raw["randaug_magnitude"]
        if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)):
            raise UserInputError(f"{where}: 'randaug_magnitude' must be a number, got {magnitude!r}")
        optional = {name: raw.get(name) for name in _OPTIONAL_STAGE_FIELDS}
        for name in ("batch_scale", "lr_epochs", "lr_start_epoch"):
            if optional[name] is not None:
                _check_int(optional[name], f"{where}: '{name}'")
        warm = optional["lr_warmup_epochs"]
        if warm is not None:
            if isinstance(warm, bool) or not isinstance(warm, (int, float)):
                raise UserInputError(f"{where}: 'lr_warmup_epochs' must be a number, got {warm!r}")
            optional["lr_warmup_epochs"] = float(warm)
        stages.append(Stage(int(start), int(end), int(size), float(magnitude), **optional))
        next_start = int(end)
    return tuple(stages)


def _check_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"{what} must be a whole number, got {value!r}")


def _validate(
    name: str, stages: tuple[Stage, ...], total_epochs: int, final_size: int, source: str, size_multiple: int
) -> None:
    """Stages ordered, gap-free, non-empty, from 0 to total_epochs; sizes valid. Raises UserInputError."""
    if not isinstance(name, str) or not name:
        raise UserInputError(f"{source}: the name must be a non-empty string")
    _check_positive_int(final_size, f"{source}: final_size")
    if not stages:
        raise UserInputError(f"{source}: it has no stages: add at least one")
    expected_start = 0
    for index, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            raise UserInputError(f"{source}: stage {index} is not a Stage")
        where = f"{source}: stage {index} (epochs {stage.start_epoch}-{stage.end_epoch})"
        if stage.start_epoch < expected_start:
            raise UserInputError(
                f"{where} overlaps or comes before the previous stage, which ends at epoch "
                f"{expected_start}: order the stages and make each start where the last one ends"
            )
        if stage.start_epoch > expected_start:
            raise UserInputError(
                f"{where} leaves epochs {expected_start}-{stage.start_epoch} without a stage: "
                f"start it at epoch {expected_start}"
            )
        if stage.end_epoch <= stage.start_epoch:
            raise UserInputError(f"{where} has no epochs: make end_epoch larger than start_epoch (or 'epochs' >= 1)")
        if stage.input_size <= 0:
            raise UserInputError(f"{where}: input_size {stage.input_size} must be positive")
        if stage.input_size > final_size:
            raise UserInputError(
                f"{where}: input_size {stage.input_size} is above the final size {final_size}: use at most {final_size}"
            )
        if stage.input_size % size_multiple:
            raise UserInputError(
                f"{where}: input_size {stage.input_size} is not a multiple of {size_multiple} "
                f"(the model's size multiple): use e.g. {_nearest_multiple(stage.input_size, size_multiple)}"
            )
        if not (math.isfinite(stage.randaug_magnitude) and stage.randaug_magnitude >= 0):
            raise UserInputError(f"{where}: randaug_magnitude {stage.randaug_magnitude} must be a number >= 0")
        expected_start = stage.end_epoch
    _check_positive_int(total_epochs, f"{source}: total_epochs")
    if expected_start != total_epochs:
        raise UserInputError(
            f"{source}: the stages end at epoch {expected_start} but total_epochs is "
            f"{total_epochs}: make the stages cover every epoch of the run"
        )
