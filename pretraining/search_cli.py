"""`tools/search_curriculum.py`: search a low-frequency curriculum with real pretraining runs (EfficientTrain).

    python tools/search_curriculum.py --models resnet18,convnext_atto --data data/demo/imagenet \\
        --epochs 30 --stages 5 --candidates 96,128,160,192,224 --tolerance 0.0 --work-dir work_dirs/search \\
        [-- extra tools/pretrain.py arguments, e.g. --batch-size 64 --workers 2]

Every trial pretrains each model once through `pretraining.cli.main` with the trial's schedule written as a
custom curriculum file, and reads `provenance.final_top1` from its `final.pth` (docs/FORMATS.md). The
full-size baseline runs first (once per model). Output in --work-dir:

    trials.jsonl                 every trial: schedule, top-1 per model, equivalent epochs, wall time, accepted
    trials/<schedule>/           the trial's curriculum.json and one pretraining work dir per model
    searched_curriculum.yaml     the schedule found, as a file `tools/pretrain.py --curriculum` accepts
    search_summary.json          found schedule, baselines, trial counts
    search_path.png              accuracy and compute of every trial, the accepted path highlighted

Re-running the same command resumes: logged trials are re-used, finished runs are read back, and an
interrupted run continues from its last.pth (`--resume auto`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

from etcore.checkpoint_io import write_text_atomic
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.formats import SEARCH_PLOT, SEARCH_RESULT, SEARCH_SUMMARY, SEARCH_TRIALS
from pretraining.curriculum import required_size_multiple, save_curriculum_file
from pretraining.search import compute_constrained_search, greedy_curriculum_search, schedule_curriculum
from pretraining.search_plot import plot_search
from pretraining.search_trials import PretrainEvaluator, schedule_tag


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and everything after a lone `--` (passed unchanged to every pretraining run)."""
    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = ArgumentParser(
        prog="tools/search_curriculum.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", required=True, help="comma-separated timm model names, e.g. resnet18,convnext_atto")
    parser.add_argument("--data", required=True, help="ImageNet-style folder (train/ and val/ class folders)")
    parser.add_argument(
        "--epochs",
        type=float,
        required=True,
        help="epochs of every trial (--mode compute: the budget in equivalent full-size epochs)",
    )
    parser.add_argument("--stages", type=int, default=5, help="number of equal stages N (default 5)")
    parser.add_argument(
        "--candidates",
        default="96,128,160,192,224",
        help="comma-separated input sizes a stage may use (default 96,128,160,192,224)",
    )
    parser.add_argument("--final-size", type=int, default=None, help="final input size (default: largest candidate)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="allowed top-1 drop below each model's baseline, in points (default 0)",
    )
    parser.add_argument(
        "--mode",
        choices=("epochs", "compute"),
        default="epochs",
        help="epochs: fixed epochs, smallest sizes without accuracy loss (EfficientTrain); "
        "compute: fixed compute, best accuracy (EfficientTrain++ style)",
    )
    parser.add_argument(
        "--randaug-magnitudes",
        default="9",
        help="RandAugment magnitude during the search: one value or one per stage (default 9)",
    )
    parser.add_argument(
        "--result-magnitudes",
        default=None,
        help="magnitudes written into searched_curriculum.yaml (default: the search's), "
        "e.g. 1,3,5,7,9 for EfficientTrain's ramp",
    )
    parser.add_argument(
        "--largest-first",
        action="store_true",
        help="try sizes downwards and stop at the first failure (fewer trials; epochs mode)",
    )
    parser.add_argument(
        "--model-kwargs",
        action="append",
        default=[],
        metavar="MODEL=JSON",
        help="timm kwargs of one model's runs, e.g. convnext_atto='{\"dims\": [8, 16, 24, 32]}' (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every pretraining run (default 0)")
    parser.add_argument(
        "--size-multiple",
        type=int,
        default=None,
        help="sizes must be multiples of this (default: what each model needs, e.g. 32); "
        "passed on to every pretraining run",
    )
    parser.add_argument("--work-dir", required=True, help="output folder (re-use it to resume)")
    return parser.parse_args(argv), extra


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserInputError(f"{flag} {text!r} must be comma-separated whole numbers, e.g. 96,128,160") from None
    if not values or min(values) < 1:
        raise UserInputError(f"{flag} {text!r} must list positive whole numbers")
    return values


def _magnitudes(text: str, stages: int, flag: str) -> tuple[float, ...]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserInputError(f"{flag} {text!r} must be numbers, e.g. 9 or 1,3,5,7,9") from None
    if len(values) == 1:
        values = values * stages
    if len(values) != stages or any(not math.isfinite(v) or v < 0 for v in values):
        raise UserInputError(f"{flag} {text!r}: give one magnitude >= 0, or one per stage ({stages})")
    return tuple(values)


def _model_kwargs(items: Sequence[str], models: Sequence[str]) -> dict[str, str]:
    """MODEL=JSON pairs -> {model: JSON text}; each JSON must be an object, each model one of --models."""
    parsed: dict[str, str] = {}
    for item in items:
        model, sep, text = item.partition("=")
        if not sep or model not in models:
            raise UserInputError(
                f"--model-kwargs {item!r} must be MODEL=JSON with MODEL one of --models ({', '.join(models)})"
            )
        try:
            valid = isinstance(json.loads(text), dict)
        except json.JSONDecodeError:
            valid = False
        if not valid:
            raise UserInputError(
                f"--model-kwargs {item!r}: the part after '=' must be a JSON object, e.g. '{{\"embed_dim\": 32}}'"
            )
        parsed[model] = text
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UserInputError("--models is empty: give comma-separated timm model names, e.g. resnet18,convnext_atto")
    if not Path(args.data).is_dir():
        raise UserInputError(f"--data {args.data} is not a folder: point it at an ImageNet-style dataset")
    if args.stages < 1:
        raise UserInputError(f"--stages {args.stages} must be at least 1")
    if not (math.isfinite(args.epochs) and args.epochs > 0):
        raise UserInputError(f"--epochs {args.epochs:g} must be positive")
    if args.mode == "epochs" and (args.epochs != int(args.epochs) or args.epochs < args.stages):
        raise UserInputError(
            f"--epochs {args.epochs:g} must be a whole number of at least --stages ({args.stages}) "
            "so that every stage trains at least one epoch"
        )
    if args.tolerance < 0:
        raise UserInputError(f"--tolerance {args.tolerance:g} must be >= 0 (a drop in top-1 points)")
    candidates = _int_list(args.candidates, "--candidates")
    final_size = args.final_size or max(candidates)
    if args.size_multiple is not None and args.size_multiple < 1:
        raise UserInputError(f"--size-multiple {args.size_multiple} must be a positive whole number")
    for model in models:
        multiple = args.size_multiple or required_size_multiple(model)
        bad = [c for c in candidates + [final_size] if c % multiple]
        if bad:
            needs = "--size-multiple" if args.size_multiple else f"{model}"
            raise UserInputError(
                f"--candidates: size {bad[0]} is not a multiple of {multiple}, which {needs} needs: "
                f"use multiples of {multiple}"
            )
    if args.size_multiple and "--size-multiple" not in extra:
        extra = [*extra, "--size-multiple", str(args.size_multiple)]
    model_kwargs = _model_kwargs(args.model_kwargs, models)
    magnitudes = _magnitudes(args.randaug_magnitudes, args.stages, "--randaug-magnitudes")
    result_magnitudes = (
        _magnitudes(args.result_magnitudes, args.stages, "--result-magnitudes")
        if args.result_magnitudes
        else magnitudes
    )
    work_dir = Path(args.work_dir)
    layout = "equal_epochs" if args.mode == "epochs" else "equal_compute"
    epochs = int(args.epochs) if args.mode == "epochs" else args.epochs
    evaluator = PretrainEvaluator(
        models, args.data, work_dir, epochs, final_size, magnitudes, layout, args.seed, extra, model_kwargs
    )
    log = work_dir / SEARCH_TRIALS
    if args.mode == "epochs":
        result = greedy_curriculum_search(
            evaluator,
            args.stages,
            candidates,
            None,
            tolerance=args.tolerance,
            trial_log=log,
            epochs=epochs,
            final_size=final_size,
            magnitudes=magnitudes,
            smallest_first=not args.largest_first,
        )
    else:
        result = compute_constrained_search(
            evaluator,
            args.stages,
            candidates,
            epochs,
            None,
            tolerance=args.tolerance,
            trial_log=log,
            final_size=final_size,
            magnitudes=magnitudes,
        )

    found = schedule_curriculum(
        result.schedule,
        epochs,
        final_size,
        result_magnitudes,
        layout,
        name="searched-" + schedule_tag(result.schedule)[1:],
    )
    save_curriculum_file(found, work_dir / SEARCH_RESULT)
    summary: dict[str, Any] = {
        "schedule": list(result.schedule),
        "mode": args.mode,
        "models": models,
        "tolerance": args.tolerance,
        "baseline_top1": dict(result.baseline_accuracy),
        "trials": len(result.trials),
        "trials_run_now": result.evaluated,
        "trials_reused": result.reused,
        "equivalent_epochs": found.equivalent_epochs(),
        "compute_ratio": found.compute_ratio(),
        "curriculum": found.to_dict(),
    }
    write_text_atomic(json.dumps(summary, indent=2) + "\n", work_dir / SEARCH_SUMMARY)
    plot_search(result, args.tolerance, work_dir / SEARCH_PLOT)
    print(found.describe())
    print(
        f"{len(result.trials)} trials ({result.evaluated} run now, {result.reused} re-used); "
        f"curriculum file: {work_dir / SEARCH_RESULT}"
    )
    return 0
