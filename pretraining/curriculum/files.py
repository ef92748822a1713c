"""Curriculum files: read a custom curriculum from YAML or JSON, and write one back.

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
multiple. `batch_scale` (optional) multiplies the per-device batch of the stage and divides the gradient
accumulation by the same factor, so the effective batch never changes (default: 2 below the final size,
1 at it). With `lr_axis: stages` each stage also gives `lr_epochs`, `lr_start_epoch` and optionally
`lr_warmup_epochs` (the value type's docstring says what they mean).

The parser checks what only a file can get wrong (its syntax, unknown fields, types, the run's epochs and
final size, the model's size multiple); the `Curriculum` it builds validates the rest, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from etcore.errors import UserInputError
from pretraining.curriculum.papers import CURRICULUM_NAMES, DEFAULT_SIZE_MULTIPLE
from pretraining.curriculum.value import (
    OPTIONAL_STAGE_FIELDS,
    Curriculum,
    Stage,
    check_int,
    check_positive_int,
    check_size_multiple,
)

CURRICULUM_SUFFIXES = (".yaml", ".yml", ".json")
_FILE_FIELDS = (
    "name",
    "final_size",
    "total_epochs",
    "stages",
    "lr_axis",
    "warmup_epochs",
    "lowfreq",
    "budget_epochs",
    "drop_path_scale",
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
    return curriculum_from_mapping(
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


def curriculum_from_dict(data: Mapping[str, Any], source: str = "curriculum dict") -> Curriculum:
    """A curriculum from its plain-data form (`Curriculum.to_dict()`, curriculum.json, a provenance's copy) or the
    custom-file form (stages with `epochs`)."""
    return curriculum_from_mapping(data, source=source, default_name="custom")


def curriculum_from_mapping(
    data: Any,
    source: str,
    default_name: str,
    final_size: int | None = None,
    epochs: int | None = None,
    size_multiple: int = 1,
) -> Curriculum:
    """Parse the file/dict form; every problem names `source`, the field and the fix.

    `final_size` and `epochs` (the run's, when given) must agree with the file; every size must be a
    multiple of `size_multiple`. The Curriculum built here validates stages and schedule fields itself.
    """
    if not isinstance(data, Mapping):
        raise UserInputError(f"{source} must be a mapping with a 'stages' list, got {type(data).__name__}")
    extra = sorted(set(map(str, data)) - set(_FILE_FIELDS))
    if extra:
        raise UserInputError(
            f"{source}: unknown field(s) {', '.join(extra)}: allowed are {', '.join(sorted(_FILE_FIELDS))}"
        )
    file_final = data.get("final_size")
    if file_final is not None:
        check_positive_int(file_final, f"{source}: 'final_size'")
        if final_size is not None and file_final != final_size:
            raise UserInputError(
                f"{source}: final_size {file_final} differs from the run's final input size "
                f"{final_size}: make them agree (edit the file or the input size)"
            )
    final = file_final if file_final is not None else final_size
    if final is None:
        raise UserInputError(f"{source}: 'final_size' is missing: add the final (evaluation) input size")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise UserInputError(
            f"{source}: 'stages' must be a non-empty list of {{epochs, input_size, randaug_magnitude}} entries"
        )
    stages = _parse_stages(raw_stages, source)
    budget, warmup, drop_path_scale = (
        data.get("budget_epochs"),
        data.get("warmup_epochs"),
        data.get("drop_path_scale", 1.0),
    )
    curriculum = Curriculum(
        name=data.get("name", default_name),
        stages=stages,
        total_epochs=stages[-1].end_epoch,
        final_size=final,
        lr_axis=data.get("lr_axis", "epochs"),
        budget_epochs=_as_float(budget),
        drop_path_scale=_as_float(drop_path_scale),
        warmup_epochs=_as_float(warmup),
        lowfreq=data.get("lowfreq", "fft"),
        source=source,
    )
    declared = data.get("total_epochs")
    if declared is not None:
        check_positive_int(declared, f"{source}: 'total_epochs'")
    for expected, what in ((declared, "its 'total_epochs'"), (epochs, "the run's --epochs")):
        if expected is not None and expected != curriculum.total_epochs:
            raise UserInputError(
                f"{source}: stages cover {curriculum.total_epochs} epochs but {what} is {expected}: "
                "make the stage lengths add up to the run's epochs"
            )
    check_size_multiple(curriculum, size_multiple, source)
    return curriculum


def _as_float(value: Any) -> Any:
    """A number as float; anything else as it is, for the Curriculum's validation to name."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _parse_stages(raw_stages: Iterable[Any], source: str) -> tuple[Stage, ...]:
    stages = []
    next_start = 0
    for index, raw in enumerate(raw_stages):
        where = f"{source}: stages[{index}]"
        if not isinstance(raw, Mapping):
            raise UserInputError(
                f"{where} must be a mapping like {{epochs: 60, input_size: 160, randaug_magnitude: 1}}"
            )
        allowed = {"epochs", "start_epoch", "end_epoch", "input_size", "randaug_magnitude", *OPTIONAL_STAGE_FIELDS}
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
            check_int(length, f"{where}: 'epochs'")
            start, end = next_start, next_start + length
        elif "start_epoch" in raw and "end_epoch" in raw:
            start, end = raw["start_epoch"], raw["end_epoch"]
            check_int(start, f"{where}: 'start_epoch'")
            check_int(end, f"{where}: 'end_epoch'")
        else:
            raise UserInputError(
                f"{where}: the stage length is missing: add 'epochs' (or 'start_epoch' and 'end_epoch')"
            )
        size = raw["input_size"]
        check_int(size, f"{where}: 'input_size'")
        magnitude = raw["randaug_magnitude"]
        if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)):
            raise UserInputError(f"{where}: 'randaug_magnitude' must be a number, got {magnitude!r}")
        optional = {name: raw.get(name) for name in OPTIONAL_STAGE_FIELDS}
        for name in ("batch_scale", "lr_epochs", "lr_start_epoch"):
            if optional[name] is not None:
                check_int(optional[name], f"{where}: '{name}'")
        warm = optional["lr_warmup_epochs"]
        if warm is not None:
            if isinstance(warm, bool) or not isinstance(warm, (int, float)):
                raise UserInputError(f"{where}: 'lr_warmup_epochs' must be a number, got {warm!r}")
            optional["lr_warmup_epochs"] = float(warm)
        stages.append(Stage(int(start), int(end), int(size), float(magnitude), **optional))
        next_start = int(end)
    return tuple(stages)
