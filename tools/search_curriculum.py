"""Search a low-frequency curriculum with real pretraining runs (EfficientTrain's greedy schedule search).

    python tools/search_curriculum.py --models resnet18,convnext_atto --data data/demo/imagenet \\
        --epochs 30 --stages 5 --candidates 96,128,160,192,224 --tolerance 0.0 --work-dir work_dirs/search \\
        [-- extra tools/pretrain.py arguments, e.g. --batch-size 64 --workers 2]

Every trial pretrains each model once through `pretrain.cli.main` with the trial's schedule written as a
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

from etcore.scripts import use_packages_not_tools

use_packages_not_tools(__file__)

from etcore.checkpoint_io import load_checkpoint_file, write_text_atomic  # noqa: E402
from etcore.errors import UserInputError, run_cli  # noqa: E402
from pretrain.curriculum import Curriculum, required_size_multiple, save_curriculum_file  # noqa: E402
from pretrain.search import (  # noqa: E402
    SearchResult,
    compute_constrained_search,
    greedy_curriculum_search,
    schedule_curriculum,
)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and everything after a lone `--` (passed unchanged to every pretraining run)."""
    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="comma-separated timm model names, e.g. resnet18,convnext_atto")
    parser.add_argument("--data", required=True, help="ImageNet-style folder (train/ and val/ class folders)")
    parser.add_argument("--epochs", type=float, required=True,
                        help="epochs of every trial (--mode compute: the budget in equivalent full-size epochs)")
    parser.add_argument("--stages", type=int, default=5, help="number of equal stages N (default 5)")
    parser.add_argument("--candidates", default="96,128,160,192,224",
                        help="comma-separated input sizes a stage may use (default 96,128,160,192,224)")
    parser.add_argument("--final-size", type=int, default=None, help="final input size (default: largest candidate)")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="allowed top-1 drop below each model's baseline, in points (default 0)")
    parser.add_argument("--mode", choices=("epochs", "compute"), default="epochs",
                        help="epochs: fixed epochs, smallest sizes without accuracy loss (EfficientTrain); "
                             "compute: fixed compute, best accuracy (EfficientTrain++ style)")
    parser.add_argument("--randaug-magnitudes", default="9",
                        help="RandAugment magnitude during the search: one value or one per stage (default 9)")
    parser.add_argument("--result-magnitudes", default=None,
                        help="magnitudes written into searched_curriculum.yaml (default: the search's), "
                             "e.g. 1,3,5,7,9 for EfficientTrain's ramp")
    parser.add_argument("--largest-first", action="store_true",
                        help="try sizes downwards and stop at the first failure (fewer trials; epochs mode)")
    parser.add_argument("--model-kwargs", action="append", default=[], metavar="MODEL=JSON",
                        help="timm kwargs of one model's runs, e.g. convnext_atto='{\"dims\": [8, 16, 24, 32]}' "
                             "(repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every pretraining run (default 0)")
    parser.add_argument("--size-multiple", type=int, default=None,
                        help="sizes must be multiples of this (default: what each model needs, e.g. 32); "
                             "passed on to every pretraining run")
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
            raise UserInputError(f"--model-kwargs {item!r} must be MODEL=JSON with MODEL one of --models "
                                 f"({', '.join(models)})")
        try:
            valid = isinstance(json.loads(text), dict)
        except json.JSONDecodeError:
            valid = False
        if not valid:
            raise UserInputError(f"--model-kwargs {item!r}: the part after '=' must be a JSON object, "
                                 "e.g. '{\"embed_dim\": 32}'")
        parsed[model] = text
    return parsed


def schedule_tag(schedule: Sequence[int]) -> str:
    """Folder name of a trial: b96-128-160-192-224."""
    return "b" + "-".join(str(size) for size in schedule)


class PretrainEvaluator:
    """evaluate(schedule) for the search: one real pretraining run per model, top-1 read from final.pth."""

    def __init__(self, models: Sequence[str], data: str, work_dir: Path, epochs: float, final_size: int,
                 magnitudes: Sequence[float], layout: str, seed: int, extra: Sequence[str],
                 model_kwargs: dict[str, str] | None = None) -> None:
        self.models, self.data, self.work_dir = list(models), data, work_dir
        self.model_kwargs = dict(model_kwargs or {})
        self.epochs, self.final_size, self.magnitudes, self.layout = epochs, final_size, tuple(magnitudes), layout
        self.seed, self.extra = seed, list(extra)

    def curriculum(self, schedule: Sequence[int]) -> Curriculum:
        return schedule_curriculum(schedule, self.epochs, self.final_size, self.magnitudes, self.layout,
                                   name=schedule_tag(schedule))

    def __call__(self, schedule: tuple[int, ...]) -> dict[str, float]:
        curriculum = self.curriculum(schedule)
        trial_dir = self.work_dir / "trials" / schedule_tag(schedule)
        curriculum_file = save_curriculum_file(curriculum, trial_dir / "curriculum.json")
        return {model: self._top1(model, schedule, curriculum, curriculum_file, trial_dir / model)
                for model in self.models}

    def _top1(self, model: str, schedule: Sequence[int], curriculum: Curriculum, curriculum_file: Path,
              run_dir: Path) -> float:
        final = run_dir / "final.pth"
        if not final.is_file():
            from pretrain.cli import main as pretrain_main  # the engine's entry point (same flags as tools/pretrain.py)

            argv = ["--model", model, "--data", self.data, "--curriculum", str(curriculum_file),
                    "--epochs", str(curriculum.total_epochs), "--final-size", str(self.final_size),
                    "--work-dir", str(run_dir), "--seed", str(self.seed), "--resume", "auto"]
            if model in self.model_kwargs:
                argv += ["--model-kwargs", self.model_kwargs[model]]
            if self.layout == "equal_compute" and "--lr-progress" not in self.extra:
                argv += ["--lr-progress", "compute"]  # EfficientTrain++: cosine over compute, not passes
            code = pretrain_main(argv + self.extra)
            if code not in (0, None):
                raise UserInputError(f"pretraining {model} on schedule {schedule_tag(schedule)} "
                                     f"failed (exit code {code}): see {run_dir}, fix it and re-run to resume")
        return read_final_top1(final, model, curriculum)


def read_final_top1(final: Path, model: str, curriculum: Curriculum) -> float:
    """`provenance.final_top1` of a finished run, checked to belong to this model and curriculum."""
    checkpoint = load_checkpoint_file(final)
    provenance = checkpoint.get("provenance") if isinstance(checkpoint, dict) else None
    if not isinstance(provenance, dict):
        raise UserInputError(f"{final} has no provenance: delete its folder so the trial is re-run")
    recorded = provenance.get("curriculum")
    expected = curriculum.to_dict()
    same_curriculum = isinstance(recorded, dict) and all(recorded.get(key) == expected[key]
                                                         for key in ("stages", "total_epochs", "final_size"))
    if provenance.get("model_name") != model or not same_curriculum:
        raise UserInputError(f"{final} was trained for another model or curriculum "
                             f"({provenance.get('model_name')}): delete its folder so the trial is re-run")
    top1 = provenance.get("final_top1")
    if not isinstance(top1, (int, float)) or isinstance(top1, bool):
        raise UserInputError(f"{final} records no final_top1: the run did not validate at its end; "
                             "delete its folder and re-run with validation on")
    return float(top1)


def plot_search(result: SearchResult, tolerance: float, path: Path) -> Path:
    """Two panels over the trials in search order: top-1 change vs baseline per model, and compute ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in result.trials if t.stage is not None]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(trials) + 2), 6.5), sharex=True)
    xs = list(range(len(trials)))
    for model, base in sorted(result.baseline_accuracy.items()):
        deltas = [t.accuracy[model] - base for t in trials]
        line, = top.plot(xs, deltas, marker="o", linestyle="-", linewidth=0.8, label=model)
        top.scatter([x for x, t in zip(xs, trials) if t.accepted], [d for d, t in zip(deltas, trials) if t.accepted],
                    s=90, facecolors="none", edgecolors=line.get_color())
    top.axhline(0.0, color="gray", linewidth=0.8)
    top.axhline(-tolerance, color="red", linestyle="--", linewidth=0.8, label=f"-tolerance ({tolerance:g})")
    top.set_ylabel("top-1 minus baseline (points)")
    top.legend(fontsize=8)
    top.set_title(f"curriculum search: found {schedule_tag(result.schedule)} "
                  f"({result.curriculum.compute_ratio():.3f} of full-size compute)", fontsize=10)
    ratios = [t.compute_ratio for t in trials]
    bottom.plot(xs, ratios, marker="o", color="tab:gray", linewidth=0.8)
    accepted = [(x, r) for x, r, t in zip(xs, ratios, trials) if t.accepted]
    if accepted:
        bottom.plot(*zip(*accepted), marker="o", color="tab:green", linewidth=2.0, label="accepted (search path)")
        bottom.legend(fontsize=8)
    bottom.set_ylabel("compute / full size")
    bottom.set_xticks(xs)
    bottom.set_xticklabels([schedule_tag(t.schedule)[1:] for t in trials], rotation=70, fontsize=7)
    bottom.set_xlabel("trial (stage sizes)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


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
        raise UserInputError(f"--epochs {args.epochs:g} must be a whole number of at least --stages ({args.stages}) "
                             "so that every stage trains at least one epoch")
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
            raise UserInputError(f"--candidates: size {bad[0]} is not a multiple of {multiple}, which {needs} needs: "
                                 f"use multiples of {multiple}")
    if args.size_multiple and "--size-multiple" not in extra:
        extra = [*extra, "--size-multiple", str(args.size_multiple)]
    model_kwargs = _model_kwargs(args.model_kwargs, models)
    magnitudes = _magnitudes(args.randaug_magnitudes, args.stages, "--randaug-magnitudes")
    result_magnitudes = _magnitudes(args.result_magnitudes, args.stages, "--result-magnitudes") \
        if args.result_magnitudes else magnitudes
    work_dir = Path(args.work_dir)
    layout = "equal_epochs" if args.mode == "epochs" else "equal_compute"
    epochs = int(args.epochs) if args.mode == "epochs" else args.epochs
    evaluator = PretrainEvaluator(models, args.data, work_dir, epochs, final_size, magnitudes, layout,
                                  args.seed, extra, model_kwargs)
    log = work_dir / "trials.jsonl"
    if args.mode == "epochs":
        result = greedy_curriculum_search(evaluator, args.stages, candidates, None, tolerance=args.tolerance,
                                          trial_log=log, epochs=epochs, final_size=final_size,
                                          magnitudes=magnitudes, smallest_first=not args.largest_first)
    else:
        result = compute_constrained_search(evaluator, args.stages, candidates, epochs, None,
                                            tolerance=args.tolerance, trial_log=log, final_size=final_size,
                                            magnitudes=magnitudes)

    found = schedule_curriculum(result.schedule, epochs, final_size, result_magnitudes, layout,
                                name="searched-" + schedule_tag(result.schedule)[1:])
    save_curriculum_file(found, work_dir / "searched_curriculum.yaml")
    summary: dict[str, Any] = {
        "schedule": list(result.schedule), "mode": args.mode, "models": models, "tolerance": args.tolerance,
        "baseline_top1": dict(result.baseline_accuracy), "trials": len(result.trials),
        "trials_run_now": result.evaluated, "trials_reused": result.reused,
        "equivalent_epochs": found.equivalent_epochs(), "compute_ratio": found.compute_ratio(),
        "curriculum": found.to_dict(),
    }
    write_text_atomic(json.dumps(summary, indent=2) + "\n", work_dir / "search_summary.json")
    plot_search(result, args.tolerance, work_dir / "search_path.png")
    print(found.describe())
    print(f"{len(result.trials)} trials ({result.evaluated} run now, {result.reused} re-used); "
          f"curriculum file: {work_dir / 'searched_curriculum.yaml'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
