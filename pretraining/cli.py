"""`tools/pretrain.py`: resolve the recipe, then train (or report the finished run) in this process.

`main(argv) -> int` is safe to call repeatedly in one process (the curriculum search and the demo do):
it restores every global it touches (signal handlers included) and tears down only the process group it
created. On SIGUSR1/SIGTERM the run stops at the next update boundary with a resumable last.pth, prints
one line and returns `EXIT_PREEMPTED` (75); `--resume` continues it (docs/RELIABILITY.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from etcore.cli import ArgumentParser
from etcore.errors import EXIT_PREEMPTED, UserInputError
from etcore.imports import import_user_modules
from etcore.paths import check_writable_dir
from etcore.preemption import stop_signals, stopped_line
from etcore.tracking import VIS_BACKENDS, require_vis_backends
from pretraining.callbacks import TrainingCallback
from pretraining.config import (
    CHOICES,
    FIELDS,
    PretrainConfig,
    coerce_value,
    describe_recipe,
    load_yaml_config,
    validate,
)
from pretraining.curriculum import Curriculum, build_curriculum, required_size_multiple
from pretraining.determinism import isolated_global_state
from pretraining.distributed import init_distributed, resolve_device
from pretraining.preemption import RunStopped, StopOnSignal
from pretraining.recipes import family_defaults, paper_differences

USAGE = """Curriculum pretraining of a timm model: baseline, EfficientTrain, EfficientTrain++ or a custom curriculum.

  python tools/pretrain.py --model convnext_tiny --data data/imagenet --curriculum efficienttrain \\
      --epochs 300 --work-dir work_dirs/convnext_t_et [--config recipe.yaml] [--resume]

Every setting below can also be given in the YAML --config file (same names, e.g. clip_grad: 5.0);
precedence: defaults < the model family's recipe and the curriculum's own settings < --config < command
line. --dry-run prints the resolved recipe, every stage (epochs, size, RandAugment, batch per device x
accumulation, LR at its first and last epoch), where warm-up ends, the low-frequency operation, and
which values are not the official scripts'. Multi-GPU: tools/dist_pretrain.sh (torchrun), tools/slurm_pretrain.sh.
Your own timm model: --import MODULE imports the module that registers it (repeatable). Tracking: --vis
tensorboard (WORK_DIR/tensorboard/) and/or wandb.
Writes WORK_DIR/last.pth (every epoch), final.pth, log.jsonl, summary.csv, curriculum.json (docs/FORMATS.md).
On SIGUSR1 or SIGTERM (a cluster's time limit or preemption) it writes last.pth at the next optimizer
update and exits with code 75; the same command with --resume continues bit for bit."""
FLAG_ALIASES = {
    "work_dir": ["--work-dir", "--work_dir"],
    "batch_size": ["--batch-size", "-b"],
    "imports": ["--import", "--imports"],
}


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"embed_dim\": 32}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    """One flag per `PretrainConfig` field (`--clip-grad` for `clip_grad`); every default is resolved later."""
    parser = ArgumentParser(
        prog="tools/pretrain.py",
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=USAGE,
    )
    for name, f in FIELDS.items():
        flags = FLAG_ALIASES.get(name, [f"--{name.replace('_', '-')}"])
        kind = str(f.type).replace(" | None", "")
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": name}
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif name == "resume":
            kwargs.update(nargs="?", const="auto", metavar="auto|PATH")
        elif name == "model_kwargs":
            kwargs.update(type=_json_object, metavar="JSON")
        elif name == "imports":
            kwargs.update(action="extend", nargs="+", metavar="MODULE")  # also a study recipe's imports: [a, b]
        elif name == "vis":
            kwargs.update(nargs="+", choices=VIS_BACKENDS, metavar="BACKEND")
        elif name == "betas":
            kwargs.update(type=float, nargs=2, metavar=("B1", "B2"))
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}[kind]
            if name in CHOICES:
                kwargs["choices"] = CHOICES[name]
        parser.add_argument(*flags, **kwargs)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        dest="_dry_run",
        help="print the resolved recipe and curriculum, then exit without training",
    )
    return parser


def _check_smallest_input(curriculum: Curriculum, model_name: str) -> None:
    """Every stage must feed the model at least one pixel per output cell (its total stride)."""
    stride = required_size_multiple(model_name)
    smallest = min(stage.input_size for stage in curriculum.stages)
    if smallest < stride:
        raise UserInputError(
            f"curriculum {curriculum.name!r} trains at {smallest} px, below {model_name}'s total "
            f"stride of {stride} px: raise --final-size or --size-multiple"
        )


def resolve_config(argv: Sequence[str] | None) -> tuple[PretrainConfig, dict[str, str], Curriculum, bool]:
    """defaults < family recipe < YAML --config < command line; returns config, sources, curriculum, dry_run."""
    cli = vars(build_parser().parse_args(argv))
    dry_run = bool(cli.pop("_dry_run", False))
    file_values = load_yaml_config(cli["config"]) if cli.get("config") else {}
    explicit = {**file_values, **{name: coerce_value(name, value, "command line") for name, value in cli.items()}}
    sources = {name: ("command line" if name in cli else "config file") for name in explicit}

    config = PretrainConfig()
    for name, value in explicit.items():
        if name != "model_kwargs":
            setattr(config, name, value)
    validate(config)
    import_user_modules(config.imports)  # before anything asks timm about the model
    require_vis_backends(config.vis)
    curriculum = build_curriculum(
        config.curriculum,
        config.epochs,
        final_size=config.final_size,
        model_name=config.model,
        size_multiple=config.size_multiple,
    )
    _check_smallest_input(curriculum, config.model)
    if "lowfreq" not in explicit:
        config.lowfreq = curriculum.lowfreq
        sources["lowfreq"] = f"curriculum {curriculum.name}'s own"
    on_gpu = resolve_device(config.device, 0).type == "cuda"
    model_kwargs: dict[str, Any] = {}
    kwargs_sources: list[str] = []
    for key, (value, reason) in family_defaults(config.model, curriculum, on_gpu).items():
        if key.startswith("model_kwargs."):
            model_kwargs[key.split(".", 1)[1]] = value
            kwargs_sources.append(f"recipe: {reason}")
        elif key not in explicit:
            setattr(config, key, value)
            sources[key] = f"recipe: {reason}"
    model_kwargs.update(file_values.get("model_kwargs", {}))
    model_kwargs.update(cli.get("model_kwargs", {}))
    config.model_kwargs = model_kwargs
    if "model_kwargs" in explicit:
        kwargs_sources.append(sources["model_kwargs"])
    sources["model_kwargs"] = " + ".join(kwargs_sources) or "default"
    config.data = str(Path(config.data))
    config.work_dir = str(Path(config.work_dir))
    validate(config)
    return config, sources, curriculum, dry_run


def _train_images(data: str) -> tuple[int, str]:
    """The number of train images under `data` (for the updates per epoch), or ImageNet-1k's when absent."""
    from pretraining.data import load_image_folders
    from pretraining.optim import IMAGENET_TRAIN_IMAGES

    try:
        train, _ = load_image_folders(data)
    except UserInputError:
        return IMAGENET_TRAIN_IMAGES, f" (ImageNet-1k assumed: {data} holds no train/val image folders)"
    return len(train), f" (counted in {Path(data) / 'train'})"


def main(argv: Sequence[str] | None = None, callbacks: Sequence[TrainingCallback] = ()) -> int:
    """Entry point of tools/pretrain.py and of in-process callers; returns the exit code (0, or 75 when stopped).

    `callbacks` are installed into the training loop (`pretraining.callbacks`) beside `StopOnSignal`,
    which turns SIGUSR1/SIGTERM (handled only while main runs) into a stop at the next update boundary.
    """
    with isolated_global_state(), stop_signals() as request:
        config, sources, curriculum, dry_run = resolve_config(argv)
        dist = init_distributed(config.device)
        try:
            return _run(config, sources, curriculum, dry_run, dist, [*callbacks, StopOnSignal(request)])
        except RunStopped as stopped:
            if dist.is_main:
                line = stopped_line(request, str(stopped), "the same command plus --resume")
                print(line, file=sys.stderr, flush=True)
            return EXIT_PREEMPTED
        finally:
            dist.close()


def _run(
    config: PretrainConfig,
    sources: dict[str, str],
    curriculum: Curriculum,
    dry_run: bool,
    dist: Any,
    callbacks: Sequence[TrainingCallback],
) -> int:
    from pretraining import checkpoint as ckpt
    from pretraining.engine import Pretrainer
    from pretraining.optim import describe_plan, peak_lr

    def say(message: str) -> None:
        if dist.is_main:
            print(message, flush=True)

    effective = config.batch_size * config.accum_steps * dist.world_size
    say(
        describe_recipe(
            config,
            sources,
            {"processes": dist.world_size, "effective_batch": effective, "peak_lr": peak_lr(config, effective)},
        )
    )
    if dry_run:
        train_images, note = _train_images(config.data)
        differences = paper_differences(config, curriculum, dist.world_size)
        say(describe_plan(config, curriculum, dist.world_size, train_images, note, differences))
        return 0
    work_dir = Path(config.work_dir)
    check_writable_dir(work_dir)  # a path under a file was a NotADirectoryError traceback at the first save
    config_dict = config.to_dict()
    finished = ckpt.finished_run(work_dir, config_dict)
    if finished is not None:
        say(
            f"{work_dir / ckpt.FINAL} already holds this run (final top1 {finished.get('final_top1')}, "
            f"ema top1 {finished.get('ema_top1')}, {finished.get('epochs')} epochs): nothing to do"
        )
        return 0
    resume = None
    last = work_dir / ckpt.LAST
    if dist.is_main and work_dir.is_dir():
        ckpt.remove_stale_temporaries(work_dir)
    if config.resume is not None:
        path = last if config.resume == "auto" else Path(config.resume)
        if config.resume != "auto" or last.is_file():
            resume = ckpt.load_resume_state(path, config_dict)
            saved_batch = resume["resume"]["effective_batch"]
            if saved_batch != effective:
                raise UserInputError(
                    f"--resume {path}: the run used an effective batch of {saved_batch}, this one "
                    f"{effective} ({dist.world_size} processes x --batch-size x --accum-steps): "
                    "keep the effective batch the same"
                )
    elif last.is_file():
        raise UserInputError(
            f"{last} exists from an earlier run: pass --resume to continue it, or use a new "
            "--work-dir (or delete the folder) to start over"
        )
    Pretrainer(config, curriculum, dist, callbacks, say=say).run(resume)
    return 0
