"""Training curricula as values: which input size and RandAugment magnitude each epoch uses.

A `Curriculum` is an ordered tuple of `Stage`s covering epochs 0..total_epochs-1 without gaps. The
engine asks it `stage_at(epoch)` and `compute_progress(epoch)`; nothing in a training loop compares
epochs with constants. Construction validates, once, and raises `UserInputError` naming the problem
(and the file it came from, when `source` is given), so a curriculum is either sound or refused.

The curriculum owns its schedule: `lr_axis` says whether the cosine LR runs over epochs, over compute
done, or (`stages`) whether every stage trains a part of its own cosine, as EfficientTrain++'s official
scripts do: then each stage also gives `lr_epochs` (the length of its cosine), `lr_start_epoch` (where
on it the stage starts) and optionally `lr_warmup_epochs`. A budgeted curriculum carries its
`budget_epochs` and `drop_path_scale` (EfficientTrain++: budget / 200), and `lowfreq` names the
low-frequency operation it was defined with (EfficientTrain++: resize). No code branches on a
curriculum's name; a curriculum written to a file and read back trains exactly as the original.
"""

from __future__ import annotations

import math
from dataclasses import InitVar, dataclass
from typing import Any, Sequence

from etcore.errors import UserInputError

LR_AXES = ("epochs", "compute", "stages")
LOWFREQ_OPS = ("fft", "resize", "direct")


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
        for name in OPTIONAL_STAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = float(value) if name == "lr_warmup_epochs" else value
        return data


OPTIONAL_STAGE_FIELDS = ("batch_scale", "lr_epochs", "lr_start_epoch", "lr_warmup_epochs")
_STAGE_SCHEDULE_FIELDS = ("lr_epochs", "lr_start_epoch", "lr_warmup_epochs")


@dataclass(frozen=True)
class Curriculum:
    """An ordered, gap-free tuple of stages over `total_epochs` epochs, evaluated at `final_size`.

    Construction validates the stages and raises `UserInputError` naming the problem, so a curriculum
    read from a file, a checkpoint or the command line is either sound or refused. `source` (not a field)
    names where it came from in those messages (default: the curriculum's name).
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
    source: InitVar[str | None] = None

    def __post_init__(self, source: str | None) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        source = source or f"curriculum {self.name!r}"
        _validate(self.name, self.stages, self.total_epochs, self.final_size, source)
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


def stage_batch(stage: Stage, final_size: int, batch_size: int, accum_steps: int, scale: bool) -> tuple[int, int]:
    """(per-device batch, accumulation steps) of `stage` for a run of `batch_size` x `accum_steps` at full size.

    With `scale` the stage trades accumulation for a larger per-device batch by its `batch_factor`, as the
    official scripts do; the effective batch never changes, so the factor applied is the largest one that
    divides both the stage's factor and `accum_steps` (gcd): with --accum-steps 1 the batch stays as it is.
    """
    factor = math.gcd(stage.batch_factor(final_size), accum_steps) if scale else 1
    return batch_size * factor, accum_steps // factor


def check_positive_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserInputError(f"{what} must be a positive whole number, got {value!r}")


def _nearest_multiple(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


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


def check_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"{what} must be a whole number, got {value!r}")


def _validate(name: str, stages: tuple[Stage, ...], total_epochs: int, final_size: int, source: str) -> None:
    """Stages ordered, gap-free, non-empty, from 0 to total_epochs; sizes valid. Raises UserInputError."""
    if not isinstance(name, str) or not name:
        raise UserInputError(f"{source}: the name must be a non-empty string")
    check_positive_int(final_size, f"{source}: final_size")
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
        if not (math.isfinite(stage.randaug_magnitude) and stage.randaug_magnitude >= 0):
            raise UserInputError(f"{where}: randaug_magnitude {stage.randaug_magnitude} must be a number >= 0")
        expected_start = stage.end_epoch
    check_positive_int(total_epochs, f"{source}: total_epochs")
    if expected_start != total_epochs:
        raise UserInputError(
            f"{source}: the stages end at epoch {expected_start} but total_epochs is "
            f"{total_epochs}: make the stages cover every epoch of the run"
        )


def check_size_multiple(curriculum: Curriculum, size_multiple: int, source: str) -> None:
    """Every size of `curriculum` (final size first) is a multiple of the model's `size_multiple`."""
    check_final_size(curriculum.final_size, size_multiple, source)
    for index, stage in enumerate(curriculum.stages):
        if stage.input_size % size_multiple:
            raise UserInputError(
                f"{source}: stage {index} (epochs {stage.start_epoch}-{stage.end_epoch}): input_size "
                f"{stage.input_size} is not a multiple of {size_multiple} (the model's size multiple): "
                f"use e.g. {_nearest_multiple(stage.input_size, size_multiple)}"
            )


def check_final_size(final_size: int, size_multiple: int, source: str) -> None:
    if final_size % size_multiple:
        raise UserInputError(
            f"{source}: final size {final_size} is not a multiple of {size_multiple} "
            f"(the model's size multiple): use e.g. {_nearest_multiple(final_size, size_multiple)}"
        )
