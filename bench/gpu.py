"""`tools/gpu_benchmarks.py`: the GPU benchmark set in one go (about 8 minutes on one H200), JSON in one folder.

    python tools/gpu_benchmarks.py OUT_DIR            # one CUDA GPU: real sizes
    python tools/gpu_benchmarks.py OUT_DIR --smoke    # CPU, tiny sizes: checks every step's code path

Steps (each `tools/benchmark.py <sub-command> ... --out OUT_DIR/<step>.json`, its output in
OUT_DIR/<step>.log, in its own process with its own time limit):
  detector      RetinaNet and Cascade Mask R-CNN 1x, Swin-T and ConvNeXt-T, batch 2 at 800x1333
  curriculum_*  ConvNeXt-T and Swin-T EfficientTrain, ConvNeXt-T EfficientTrain++: per-stage steps at batch 128
  lowfreq       FFT crop / resize vs the step at batch 128 from 224 px; loader images/s with 8 workers
  backbone      TimmBackbone vs mmdet ResNet-50 / Swin-T at 800x800, batch 2
OUT_DIR/summary.json lists every step's command, exit code and seconds. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from etcore.process import run_process

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, str(ROOT / "tools" / "benchmark.py")]

# (step, benchmark arguments on the GPU, arguments for --smoke on the CPU, time limit in seconds on the GPU)
STEPS = (
    (
        "detector",
        ["detector", "--batch", "2", "--image-size", "800", "1333", "--rounds", "10", "--warmup", "3"],
        [
            "detector",
            "--configs",
            "det_configs/_base_/recipes/retinanet_convnext-atto_fpn_tiny-demo.py",
            "det_configs/_base_/recipes/cascade-mask-rcnn_convnext-atto_fpn_4conv1fc-giou_tiny-demo.py",
            "--batch",
            "1",
            "--image-size",
            "64",
            "64",
            "--rounds",
            "1",
            "--warmup",
            "1",
        ],
        150,
    ),
    (
        "curriculum_convnext_tiny",
        [
            "curriculum",
            "--model",
            "convnext_tiny",
            "--curriculum",
            "efficienttrain",
            "--batch-size",
            "128",
            "--rounds",
            "15",
            "--warmup",
            "3",
        ],
        [
            "curriculum",
            "--model",
            "convnext_atto",
            "--final-size",
            "64",
            "--batch-size",
            "2",
            "--rounds",
            "1",
            "--warmup",
            "1",
        ],
        90,
    ),
    (
        "curriculum_swin_tiny",
        [
            "curriculum",
            "--model",
            "swin_tiny_patch4_window7_224",
            "--curriculum",
            "efficienttrain",
            "--batch-size",
            "128",
            "--rounds",
            "15",
            "--warmup",
            "3",
        ],
        [
            "curriculum",
            "--model",
            "swin_tiny_patch4_window7_224",
            "--final-size",
            "64",
            "--batch-size",
            "2",
            "--rounds",
            "1",
            "--warmup",
            "1",
            "--num-classes",
            "10",
        ],
        90,
    ),
    (
        "curriculum_convnext_tiny_pp",
        [
            "curriculum",
            "--model",
            "convnext_tiny",
            "--curriculum",
            "efficienttrain++",
            "--epochs",
            "200",
            "--baseline-epochs",
            "300",
            "--batch-size",
            "128",
            "--rounds",
            "15",
            "--warmup",
            "3",
        ],
        [
            "curriculum",
            "--model",
            "convnext_atto",
            "--curriculum",
            "efficienttrain++",
            "--epochs",
            "200",
            "--baseline-epochs",
            "300",
            "--final-size",
            "64",
            "--batch-size",
            "2",
            "--rounds",
            "1",
            "--warmup",
            "1",
        ],
        60,
    ),
    (
        "lowfreq",
        [
            "lowfreq",
            "--model",
            "convnext_tiny",
            "--final-size",
            "224",
            "--sizes",
            "96",
            "128",
            "160",
            "192",
            "--batch-sizes",
            "128",
            "--rounds",
            "10",
            "--warmup",
            "2",
            "--loader-batch",
            "128",
            "--loader-batches",
            "4",
            "--loader-rounds",
            "2",
            "--workers",
            "8",
        ],
        [
            "lowfreq",
            "--final-size",
            "64",
            "--sizes",
            "32",
            "--batch-sizes",
            "2",
            "--rounds",
            "1",
            "--loader-batch",
            "2",
            "--loader-batches",
            "1",
            "--loader-rounds",
            "1",
            "--workers",
            "0",
        ],
        120,
    ),
    (
        "backbone",
        ["backbone", "--size", "800", "--batch", "2", "--rounds", "10", "--warmup", "2"],
        ["backbone", "--size", "64", "--rounds", "1"],
        90,
    ),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the JSON results, logs and summary.json")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one round: check the code paths")
    parser.add_argument("--only", nargs="+", choices=[s[0] for s in STEPS], help="run only these steps")
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no step after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            print(
                "error: no CUDA device is visible: run on a GPU machine, or pass --smoke for the CPU dry run",
                file=sys.stderr,
            )
            return 2
    device = ["--device", "cpu"] if args.smoke else ["--device", "cuda"]
    started = time.perf_counter()
    summary = []
    for name, gpu_args, smoke_args, limit in STEPS:
        if args.only and name not in args.only:
            continue
        elapsed = time.perf_counter() - started
        if elapsed > args.budget_s:
            summary.append({"step": name, "skipped": f"budget of {args.budget_s:.0f} s spent"})
            continue
        command = [*BENCH, *(smoke_args if args.smoke else gpu_args), *device, "--out", str(out / f"{name}.json")]
        print(f"[{elapsed:6.1f}s] {name}: {' '.join(command[1:])}", flush=True)
        result = run_process(command, cwd=ROOT, log=out / f"{name}.log", timeout=None if args.smoke else limit)
        rc, seconds = result.rc, result.seconds
        summary.append({"step": name, "command": command[1:], "rc": rc, "seconds": round(seconds, 1)})
        print(
            f"         rc={rc} in {seconds:.1f}s" + ("" if rc == 0 else f" (see {out / (name + '.log')})"), flush=True
        )
    (out / "summary.json").write_text(json.dumps({"smoke": args.smoke, "steps": summary}, indent=2) + "\n")
    failed = [s["step"] for s in summary if s.get("rc", 0) != 0]
    print(f"done in {time.perf_counter() - started:.0f}s; " + (f"failed: {failed}" if failed else "all steps ok"))
    return 1 if failed else 0
