"""`tools/gpu_benchmarks.py`: the GPU benchmark set, by tier, within a time budget, JSON in one folder.

    python tools/gpu_benchmarks.py OUT_DIR [--tier 1|2|all] [--budget-s S]   # one CUDA GPU: real sizes
    python tools/gpu_benchmarks.py OUT_DIR --smoke                           # CPU, tiny sizes: every code path

Tier 1 needs no compiled mmcv ops (it runs on a lent machine's own image with mmcv-lite), Tier 2 does.
Steps, in order (each `tools/benchmark.py <sub-command> ... --out OUT_DIR/<step>.json`, its output in
OUT_DIR/<step>.log, in its own process with its own time limit; a step whose limit no longer fits in the
budget is skipped, and says so):
  tier 1  throughput    ResNet-50, ConvNeXt-T, Swin-T: step vs loader (every core as a worker) at every ICCV
                        and ET++ stage size, loader modes fft / resize / direct, on generated 500x375 JPEGs
          end_to_end    ResNet-50, EfficientTrain 5 epochs against the baseline, trained end to end (fft, direct)
          backbone      TimmBackbone vs mmdet ResNet-50 / Swin-T at 800x1344 (800x1333 padded to a multiple of 32,
                        as the detectors get it), batch 2; mmdet's model code imports mmcv.ops, so it needs the
                        ops (under mmcv-lite it is skipped, with the reason)
          curriculum_*  ConvNeXt-T and Swin-T EfficientTrain, ConvNeXt-T EfficientTrain++: per-stage steps
          lowfreq       FFT crop / resize vs the step at batch 128 from 224 px
  tier 2  backbone      as above (in both tiers: where the ops are, it runs)
          detector      RetinaNet and Cascade Mask R-CNN 1x, Swin-T and ConvNeXt-T, batch 2 at 800x1333
OUT_DIR/summary.json lists every step's command, exit code and seconds. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.process import run_process

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, str(ROOT / "tools" / "benchmark.py")]
DATA, CPUS, RUNS = "{data}", "{cpus}", "{runs}"  # filled in at run time: images, cores, a folder for training runs
E2E_IMAGES = 5120  # 40 updates per epoch at batch 128; the GPU's images (generated on its cores)
SMOKE_IMAGES = 16


@dataclass(frozen=True)
class Step:
    """One benchmark process: its tiers, its arguments on the GPU and in the smoke run, its limit on the GPU."""

    name: str
    tiers: tuple[int, ...]
    gpu: tuple[str, ...]
    smoke: tuple[str, ...]
    limit_s: float
    needs_ops: bool = False  # compiled mmcv ops (mmdet's model code imports mmcv.ops)

    @property
    def needs_data(self) -> bool:
        return DATA in self.gpu or DATA in self.smoke


def _curriculum(model: str, *more: str) -> tuple[str, ...]:
    return ("curriculum", "--model", model, *more, "--batch-size", "128", "--rounds", "15", "--warmup", "3")


SMOKE_CURRICULUM = ("--final-size", "64", "--batch-size", "2", "--rounds", "1", "--warmup", "1")
STEPS = (
    Step(
        "throughput",
        (1,),
        ("throughput", "--data", DATA, "--batch-size", "128", "--rounds", "10", "--warmup", "3", "--workers", CPUS),
        ("throughput", "--models", "convnext_atto", "swin_tiny_patch4_window7_224", "--num-classes", "10")
        + ("--final-size", "64", "--batch-size", "2", "--rounds", "1", "--warmup", "1", "--data", DATA)
        + ("--loader-batch", "2", "--loader-batches", "1", "--loader-rounds", "1", "--workers", "0"),
        150,
    ),
    Step(
        "end_to_end",
        (1,),
        ("curriculum", "--end-to-end", "--model", "resnet50", "--curriculum", "efficienttrain", "--epochs", "5")
        + ("--batch-size", "128", "--data", DATA, "--workers", CPUS, "--lowfreq", "fft", "direct", "--work-dir", RUNS),
        ("curriculum", "--end-to-end", "--model", "convnext_atto", "--epochs", "5", "--final-size", "64")
        + ("--batch-size", "4", "--data", DATA, "--workers", "0", "--lowfreq", "fft", "direct", "--work-dir", RUNS),
        150,
    ),
    Step(
        "backbone",
        (1, 2),  # tier 1 asks whether mmdet's model code runs without the ops (it does not), tier 2 runs it
        ("backbone", "--size", "800", "1344", "--batch", "2", "--rounds", "10", "--warmup", "2"),
        ("backbone", "--size", "64", "96", "--rounds", "1"),
        90,
        needs_ops=True,
    ),
    Step(
        "curriculum_convnext_tiny",
        (1,),
        _curriculum("convnext_tiny", "--curriculum", "efficienttrain"),
        ("curriculum", "--model", "convnext_atto", *SMOKE_CURRICULUM),
        90,
    ),
    Step(
        "curriculum_swin_tiny",
        (1,),
        _curriculum("swin_tiny_patch4_window7_224", "--curriculum", "efficienttrain"),
        ("curriculum", "--model", "swin_tiny_patch4_window7_224", *SMOKE_CURRICULUM, "--num-classes", "10"),
        90,
    ),
    Step(
        "curriculum_convnext_tiny_pp",
        (1,),
        _curriculum("convnext_tiny", "--curriculum", "efficienttrain++", "--epochs", "200", "--baseline-epochs", "300"),
        ("curriculum", "--model", "convnext_atto", "--curriculum", "efficienttrain++", "--epochs", "200")
        + ("--baseline-epochs", "300", *SMOKE_CURRICULUM),
        60,
    ),
    Step(
        "lowfreq",
        (1,),
        ("lowfreq", "--model", "convnext_tiny", "--final-size", "224", "--sizes", "96", "128", "160", "192")
        + ("--batch-sizes", "128", "--rounds", "10", "--warmup", "2", "--no-loader"),
        ("lowfreq", "--final-size", "64", "--sizes", "32", "--batch-sizes", "2", "--rounds", "1", "--no-loader"),
        60,
    ),
    Step(
        "detector",
        (2,),
        ("detector", "--batch", "2", "--image-size", "800", "1333", "--rounds", "10", "--warmup", "3"),
        (
            "detector",
            "--configs",
            "det_configs/_base_/recipes/retinanet_convnext-atto_fpn_tiny-demo.py",
            "det_configs/_base_/recipes/cascade-mask-rcnn_convnext-atto_fpn_4conv1fc-giou_tiny-demo.py",
        )
        + ("--batch", "1", "--image-size", "64", "64", "--rounds", "1", "--warmup", "1"),
        150,
        needs_ops=True,
    ),
)
TIERS = {"1": (1,), "2": (2,), "all": (1, 2)}


def mmcv_ops_missing() -> str | None:
    """Why mmcv's compiled ops cannot be used here (None when they can): mmcv-lite or no mmcv at all."""
    if importlib.util.find_spec("mmcv") is None:
        return "mmcv is not installed"
    if importlib.util.find_spec("mmcv._ext") is None:
        return "mmcv has no compiled ops (mmcv-lite), and mmdet's model code imports mmcv.ops: Tier 2 runs it"
    return None


def step_command(step: Step, smoke: bool, out: Path, data: Path) -> list[str]:
    """The step's `tools/benchmark.py` command line with its placeholders filled in."""
    fill = {DATA: str(data), CPUS: str(os.cpu_count() or 1), RUNS: str(out / f"{step.name}_runs")}
    args = [fill.get(a, a) for a in (step.smoke if smoke else step.gpu)]
    return [*BENCH, *args, "--device", "cpu" if smoke else "cuda", "--out", str(out / f"{step.name}.json")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="tools/gpu_benchmarks.py", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the JSON results, logs and summary.json")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one round: check the code paths")
    parser.add_argument("--tier", choices=sorted(TIERS), default="all", help="which steps (default: all)")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STEPS], help="run only these steps")
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no step whose limit does not fit in it")
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        raise UserInputError(f"--budget-s {args.budget_s:g} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            raise UserInputError("no CUDA device is visible: run on a GPU machine, or pass --smoke for the CPU dry run")
    started = time.perf_counter()
    tiers = set(TIERS[args.tier])
    selected = [s for s in STEPS if tiers & set(s.tiers) and (not args.only or s.name in args.only)]
    data = out / "images"
    if any(s.needs_data for s in selected):
        from bench.lowfreq import make_image_folder

        count, size = (SMOKE_IMAGES, (80, 60)) if args.smoke else (E2E_IMAGES, (500, 375))
        make_image_folder(data, count, *size, workers=os.cpu_count() or 1)
        print(f"[{time.perf_counter() - started:6.1f}s] {count} {size[0]}x{size[1]} JPEGs in {data}", flush=True)
    no_ops = mmcv_ops_missing()
    summary: list[dict[str, Any]] = []
    for step in selected:
        elapsed = time.perf_counter() - started
        left = args.budget_s - elapsed
        if step.needs_ops and no_ops:
            summary.append({"step": step.name, "skipped": no_ops})
        elif not args.smoke and left < step.limit_s:
            summary.append(
                {
                    "step": step.name,
                    "skipped": f"{left:.0f} s of the budget left, the step may take {step.limit_s:.0f} s",
                }
            )
        else:
            command = step_command(step, args.smoke, out, data)
            print(f"[{elapsed:6.1f}s] {step.name}: {' '.join(command[1:])}", flush=True)
            result = run_process(
                command, cwd=ROOT, log=out / f"{step.name}.log", timeout=None if args.smoke else step.limit_s
            )
            summary.append({"step": step.name, "command": command[1:], "rc": result.rc, "seconds": result.seconds})
            print(
                f"         rc={result.rc} in {result.seconds:.1f}s" + ("" if result.ok else f" (see {result.log})"),
                flush=True,
            )
            continue
        print(f"[{elapsed:6.1f}s] {step.name}: skipped ({summary[-1]['skipped']})", flush=True)
    (out / "summary.json").write_text(
        json.dumps({"smoke": args.smoke, "tier": args.tier, "steps": summary}, indent=2) + "\n"
    )
    failed = [s["step"] for s in summary if s.get("rc", 0) != 0]
    print(f"done in {time.perf_counter() - started:.0f}s; " + (f"failed: {failed}" if failed else "no step failed"))
    return 1 if failed else 0
