"""Every switch of a pretraining run in one dataclass, merged from defaults < family recipe < YAML < CLI.

`PretrainConfig` is the single source of truth: the command line (`pretraining.cli`) and the YAML
`--config` file use the same field names (a YAML key `clip_grad` is the flag `--clip-grad`). Each
resolved value remembers where it came from, and `describe_recipe` prints them for the log.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from etcore.errors import UserInputError
from etcore.tracking import VIS_BACKENDS
from pretraining.curriculum.value import LOWFREQ_OPS

CHOICES = {
    "lowfreq": LOWFREQ_OPS,
    "corrupt_images": ("stop", "skip"),
    "lr_progress": ("auto", "epochs", "compute"),
    "amp_dtype": ("float16", "bfloat16"),
    "device": ("auto", "cpu", "cuda"),
    "interpolation": ("bicubic", "bilinear", "random"),
    "mixup_mode": ("batch", "pair", "elem"),
}
# Fields that may change when a run is resumed (they do not change what is trained).
# `imports` names where the model's code lives (a moved module must not block a resume; the model name and the
# strict weight loading still check what is trained); `vis` and `log_interval` only say where curves go.
RESUMABLE_CHANGES = frozenset(
    {
        "data",
        "work_dir",
        "workers",
        "device",
        "eval_every",
        "resume",
        "config",
        "corrupt_images",
        "imports",
        "vis",
        "log_interval",
    }
)


@dataclass
class PretrainConfig:
    """A fully resolved pretraining run. Field docs are the `--help` texts."""

    # --- what to train -------------------------------------------------------------------------
    model: str = field(
        default="", metadata={"help": "timm model name, e.g. convnext_tiny, swin_tiny_patch4_window7_224"}
    )
    data: str = field(default="", metadata={"help": "ImageNet-style folder with train/<class>/* and val/<class>/*"})
    work_dir: str = field(
        default="", metadata={"help": "output folder: last.pth, final.pth, log.jsonl, curriculum.json"}
    )
    curriculum: str = field(
        default="baseline",
        metadata={"help": "baseline | efficienttrain | efficienttrain++ | path of a YAML/JSON curriculum"},
    )
    epochs: int = field(
        default=300, metadata={"help": "epochs (for efficienttrain++: the budget in equivalent full-size epochs)"}
    )
    final_size: int = field(default=224, metadata={"help": "final training and evaluation input size"})
    size_multiple: int | None = field(
        default=None,
        metadata={
            "help": "round curriculum input sizes to this multiple (default: what the model needs: 32, or the "
            "ViT patch size)"
        },
    )
    imports: list = field(
        default_factory=list,
        metadata={
            "help": "import this module before the model is built, e.g. one that registers your own timm model "
            "(@timm.models.register_model); repeatable; recorded in the provenance"
        },
    )
    model_kwargs: dict = field(
        default_factory=dict,
        metadata={"help": 'extra timm.create_model kwargs as JSON, e.g. \'{"embed_dim": 32, "depth": 2}\''},
    )
    drop_path: float | None = field(
        default=None, metadata={"help": "stochastic depth rate (default: the model's paper)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of data order, augmentation and initialisation"})
    deterministic: bool = field(default=False, metadata={"help": "deterministic kernels: bit-identical reruns"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    # --- data ----------------------------------------------------------------------------------
    batch_size: int = field(default=128, metadata={"help": "images per device per step at the final size"})
    accum_steps: int = field(default=1, metadata={"help": "gradient accumulation steps per optimiser update"})
    scale_batch_with_size: bool = field(
        default=True,
        metadata={
            "help": "trade accumulation for a larger per-device batch in small stages, by each stage's batch_scale "
            "(the official scripts': x2, or x4 for Swin/CSWin-S/B at 96; default x2 below the final size), "
            "as far as --accum-steps allows (gcd); the effective batch never changes"
        },
    )
    workers: int = field(default=8, metadata={"help": "data-loader worker processes per device"})
    corrupt_images: str = field(
        default="stop",
        metadata={"help": "unreadable image: stop (error naming the file) or skip (skip it and count it)"},
    )
    lowfreq: str | None = field(
        default=None,
        metadata={
            "help": "low-frequency operation: fft (exact crop of the batch on the device, EfficientTrain), resize "
            "(LANCZOS in the workers, EfficientTrain++), or direct (not the papers' order: every per-image operation "
            "at the stage size: reduced-scale JPEG decode, crop straight to the stage size, RandAugment there; "
            "docs/PRETRAINING_RECIPES.md) (default: the curriculum's own)"
        },
    )
    interpolation: str = field(default="bicubic", metadata={"help": "train-time resize interpolation"})
    randaug: str = field(
        default="rand-m{m}-mstd0.5-inc1",
        metadata={"help": "timm RandAugment string; {m} becomes the stage's magnitude; 'none' turns it off"},
    )
    reprob: float = field(default=0.25, metadata={"help": "random erasing probability"})
    crop_scale: float = field(
        default=0.08, metadata={"help": "smallest RandomResizedCrop area fraction (timm's scale=(crop_scale, 1.0))"}
    )
    hflip: float = field(
        default=0.5,
        metadata={
            "help": "horizontal flip probability (timm's default, as the official code); 0 for data whose classes "
            "are mirror images of each other, as the embedded demo's diagonal stripes"
        },
    )
    crop_pct: float = field(default=0.875, metadata={"help": "evaluation centre-crop ratio"})
    mixup: float = field(default=0.8, metadata={"help": "mixup alpha (0 = off)"})
    cutmix: float = field(default=1.0, metadata={"help": "cutmix alpha (0 = off)"})
    mixup_prob: float = field(default=1.0, metadata={"help": "probability of mixup or cutmix per batch"})
    mixup_switch_prob: float = field(default=0.5, metadata={"help": "probability of cutmix instead of mixup"})
    mixup_mode: str = field(default="batch", metadata={"help": "batch | pair | elem"})
    smoothing: float = field(default=0.1, metadata={"help": "label smoothing"})
    # --- optimisation --------------------------------------------------------------------------
    opt: str = field(default="adamw", metadata={"help": "timm optimizer name"})
    lr: float | None = field(
        default=None, metadata={"help": "peak learning rate (default: blr * batch / lr_ref_batch)"}
    )
    blr: float = field(default=4e-3, metadata={"help": "peak learning rate at the reference batch"})
    lr_ref_batch: int = field(default=4096, metadata={"help": "reference (effective) batch of --blr"})
    min_lr: float = field(default=1e-6, metadata={"help": "final learning rate of the cosine"})
    warmup_epochs: float | None = field(
        default=None,
        metadata={
            "help": "warm-up length in epochs of the LR schedule, for efficienttrain++ of every stage's own cosine "
            "(default: the curriculum's: 20, DeiT efficienttrain++ 20%% of each stage's cosine; a custom file "
            "without one: 20 per 300 of the schedule)"
        },
    )
    warmup_lr: float = field(default=0.0, metadata={"help": "learning rate at the start of warm-up"})
    lr_progress: str = field(
        default="auto",
        metadata={
            "help": "LR schedule axis: epochs, compute, or auto (the curriculum's own lr_axis: one cosine per stage "
            "for efficienttrain++, epochs otherwise)"
        },
    )
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    betas: list = field(default_factory=lambda: [0.9, 0.999], metadata={"help": "AdamW betas, two floats"})
    opt_eps: float = field(default=1e-8, metadata={"help": "optimizer epsilon"})
    clip_grad: float | None = field(
        default=None, metadata={"help": "gradient-norm clipping, 0 = off (default: 5.0 for DeiT/PVT/Swin)"}
    )
    ema: bool = field(default=False, metadata={"help": "keep an EMA of the weights (default on for ConvNeXt)"})
    ema_decay: float = field(default=0.9999, metadata={"help": "EMA decay per step"})
    amp: bool = field(default=False, metadata={"help": "mixed precision (default on GPU except ConvNeXt)"})
    amp_dtype: str = field(default="float16", metadata={"help": "float16 | bfloat16"})
    # --- evaluation and bookkeeping ------------------------------------------------------------
    eval_every: int | None = field(
        default=None,
        metadata={
            "help": "validate every N epochs (default: at the end of every curriculum stage); always after the last"
        },
    )
    resume: str | None = field(
        default=None, metadata={"help": "'auto' (W/last.pth when it exists) or a checkpoint path"}
    )
    vis: list = field(
        default_factory=list,
        metadata={
            "help": "experiment tracking: tensorboard (event files in W/tensorboard/) and/or wandb (needs "
            "`pip install wandb`); W/summary.csv and log.jsonl are always written"
        },
    )
    log_interval: int = field(
        default=50, metadata={"help": "log loss, lr and img/s to --vis every N optimizer updates"}
    )
    config: str | None = field(default=None, metadata={"help": "YAML file with any of these fields"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(PretrainConfig)}
REQUIRED = ("model", "data", "work_dir")


def _type_name(f: dataclasses.Field) -> str:
    return str(f.type).replace(" | None", "")


def coerce_value(name: str, value: Any, source: str) -> Any:
    """Check (and gently convert, int -> float) one value against its field type; UserInputError otherwise."""
    f = FIELDS[name]
    kind = _type_name(f)
    optional = "None" in str(f.type)
    if value is None:
        if optional:
            return None
        raise UserInputError(f"{source}: '{name}' cannot be empty: give a {kind}")
    ok = True
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
        value = str(value) if isinstance(value, (str, Path)) else value
    elif kind == "dict":
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    elif kind == "list":
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    if not ok:
        raise UserInputError(f"{source}: '{name}' must be a {kind}, got {value!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise UserInputError(f"{source}: '{name}' is {value!r}: use one of {', '.join(CHOICES[name])}")
    return value


def check_known_keys(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Normalise dashes to underscores and refuse unknown keys, suggesting close field names."""
    normalised = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS or name == "config":
            close = difflib.get_close_matches(name, list(FIELDS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserInputError(f"{source}: unknown setting '{key}'{hint}: see `tools/pretrain.py --help`")
        normalised[name] = value
    return normalised


def load_yaml_config(path: str) -> dict[str, Any]:
    """Read a YAML `--config` file into {field: value}; every problem names the file."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"--config {file} does not exist: check the path")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise UserInputError(f"--config {file} is not valid YAML ({detail}): fix the syntax") from None
    if not isinstance(data, Mapping):
        raise UserInputError(f"--config {file} must hold a mapping of settings, got {type(data).__name__}")
    source = f"--config {file}"
    return {name: coerce_value(name, value, source) for name, value in check_known_keys(data, source).items()}


def validate(config: PretrainConfig) -> None:
    """Cross-field checks that no single type check catches."""
    for name in REQUIRED:
        if not getattr(config, name):
            raise UserInputError(f"--{name.replace('_', '-')} is required (on the command line or in --config)")
    positive = ("epochs", "final_size", "batch_size", "accum_steps", "eval_every", "lr_ref_batch", "log_interval")
    for name in positive:
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise UserInputError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    if config.workers < 0:
        raise UserInputError(f"--workers must be >= 0, got {config.workers}")
    if len(config.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in config.betas):
        raise UserInputError(f"betas must be two numbers in [0, 1), got {config.betas}")
    for name in ("reprob", "mixup_prob", "mixup_switch_prob", "smoothing", "crop_scale", "hflip"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise UserInputError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(config, name)}")
    if not 0.0 < config.crop_pct <= 1.0:
        raise UserInputError(f"--crop-pct must lie in (0, 1], got {config.crop_pct}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise UserInputError(f"--ema-decay must lie in [0, 1), got {config.ema_decay}")
    if config.mixup > 0 or config.cutmix > 0:
        if config.batch_size % 2:
            raise UserInputError(
                f"--batch-size {config.batch_size} is odd but mixup/cutmix pair images: use an "
                "even batch or --mixup 0 --cutmix 0"
            )
    if config.randaug != "none" and "{m}" not in config.randaug:
        raise UserInputError(
            f"--randaug {config.randaug!r} has no '{{m}}' for the stage magnitude: "
            "e.g. rand-m{m}-mstd0.5-inc1, or 'none'"
        )
    unknown = [name for name in config.vis if name not in VIS_BACKENDS]
    if unknown:
        raise UserInputError(f"--vis {unknown[0]!r} is not a tracking backend: use {' or '.join(VIS_BACKENDS)}")
    if not all(isinstance(name, str) and name for name in config.imports):
        raise UserInputError(f"--import takes module names (strings), got {config.imports!r}")
    for name in ("drop_path", "clip_grad", "lr", "warmup_epochs"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise UserInputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")


def describe_recipe(config: PretrainConfig, sources: Mapping[str, str], extra: Mapping[str, Any]) -> str:
    """The resolved recipe, one `name = value  (source)` line per field, plus derived values."""
    lines = ["resolved recipe:"]
    for name in FIELDS:
        if name == "config" and config.config is None:
            continue
        lines.append(f"  {name:<22} = {getattr(config, name)!r:<32} ({sources.get(name, 'default')})")
    for name, value in extra.items():
        lines.append(f"  {name:<22} = {value!r:<32} (derived)")
    return "\n".join(lines)
