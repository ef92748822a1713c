"""`tools/benchmark.py`: measured speedups and overheads, side by side in one process, as tables and JSON.

Sub-commands (each prints a table and, with --out, writes JSON with the machine, date and command):

  curriculum  engine training step at every stage size -> predicted curriculum wall time vs baseline,
              measured/theoretical speedup (theoretical = ratio of equivalent epochs);
              --end-to-end trains both curricula through tools/pretrain.py's main on --data
  lowfreq     FFT crop / resize cost as a fraction of a step; loader images/s with and without resize
  backbone    TimmBackbone vs mmdet ResNet/SwinTransformer (same weights, outputs checked equal)
  detector    RetinaNet / Cascade Mask R-CNN training-iteration time per backbone (det_configs)
  throughput  per stage size of the ICCV and ET++ curricula: step images/s against the loader's in each mode
  breakdown   where real pretraining runs' time went, per stage (loader, wait, step, FFT crop per image;
              evaluation, checkpoint, bookkeeping per epoch), read from their work dirs' log.jsonl

Every "a [b-c]" in a table is the median over the timing rounds and, in brackets, their interquartile
range (min and max are in the JSON). On a CPU the default is one thread (--threads): on a shared machine
a multi-threaded step waits for its slowest core, which turns other processes' load into noise that does
not cancel between rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_CURRICULUM, PRETRAIN_LOG

CPU_DETECTOR_CONFIGS = (
    "det_configs/_base_/recipes/retinanet_resnet18_fpn_tiny-demo.py",
    "det_configs/_base_/recipes/retinanet_convnext-atto_fpn_tiny-demo.py",
    "det_configs/_base_/recipes/cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo.py",
    "det_configs/_base_/recipes/cascade-mask-rcnn_convnext-atto_fpn_4conv1fc-giou_tiny-demo.py",
)
GPU_DETECTOR_CONFIGS = (
    "det_configs/_base_/recipes/retinanet_swin-t_fpn_1x_coco.py",
    "det_configs/_base_/recipes/retinanet_convnext-t_fpn_1x_coco.py",
    "det_configs/_base_/recipes/cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-1x_coco.py",
    "det_configs/_base_/recipes/cascade-mask-rcnn_convnext-t_fpn_4conv1fc-giou_amp-1x_coco.py",
)


def _common(p: argparse.ArgumentParser, rounds: int, warmup: int) -> None:
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU, unchanged on GPU)")
    p.add_argument("--rounds", type=int, default=rounds, help="interleaved timing rounds (after warm-up)")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed calls of every case before the rounds")
    p.add_argument("--out", default=None, help="write the result as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="tools/benchmark.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    c = sub.add_parser("curriculum", help="measured vs theoretical curriculum speedup")
    c.add_argument("--model", default="convnext_atto")
    c.add_argument("--curriculum", default="efficienttrain", help="efficienttrain | efficienttrain++ | file")
    c.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="curriculum epochs (efficienttrain++: equivalent-epoch budget); default 300, 5 end-to-end",
    )
    c.add_argument("--baseline-epochs", type=int, default=None, help="baseline epochs (default: the curriculum's)")
    c.add_argument("--final-size", type=int, default=224)
    c.add_argument("--batch-size", type=int, default=8, help="per-step batch at the final size (default 8: CPU)")
    c.add_argument(
        "--lowfreq",
        nargs="+",
        default=["fft"],
        choices=("fft", "resize", "direct"),
        help="low-frequency mode(s); with --end-to-end several run side by side (default fft)",
    )
    c.add_argument("--num-classes", type=int, default=1000)
    c.add_argument("--images-per-epoch", type=int, default=1_281_167, help="for the predicted hours (ImageNet-1k)")
    c.add_argument("--pretrain-args", default="", help="extra tools/pretrain.py flags, one quoted string")
    c.add_argument("--end-to-end", action="store_true", help="train both curricula on --data and read their logs")
    c.add_argument("--data", default=None, help="ImageNet-style folder for --end-to-end (tools/make_demo_data.py)")
    c.add_argument("--workers", type=int, default=2, help="--end-to-end: loader workers")
    c.add_argument("--work-dir", default=None, help="--end-to-end: where the runs go (default: a temporary folder)")
    c.add_argument("--repeats", type=int, default=1, help="--end-to-end: baseline/curriculum pairs, order alternating")
    _common(c, rounds=30, warmup=2)

    lf = sub.add_parser("lowfreq", help="low-frequency op cost vs a step; loader throughput")
    lf.add_argument("--model", default="convnext_atto")
    lf.add_argument("--final-size", type=int, default=224)
    lf.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192])
    lf.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    lf.add_argument("--num-classes", type=int, default=1000)
    lf.add_argument("--data", default=None, help="ImageNet-style folder for the loader (default: generated JPEGs)")
    lf.add_argument("--loader-batch", type=int, default=32)
    lf.add_argument("--loader-batches", type=int, default=3, help="timed batches per loader measurement")
    lf.add_argument("--loader-rounds", type=int, default=3)
    lf.add_argument("--workers", type=int, default=2)
    lf.add_argument("--magnitude", type=float, default=9.0, help="RandAugment magnitude in the loader")
    lf.add_argument("--no-loader", action="store_true", help="skip the loader throughput part")
    _common(lf, rounds=6, warmup=1)

    b = sub.add_parser("backbone", help="TimmBackbone vs mmdet native backbones")
    b.add_argument("--families", nargs="+", default=["resnet50", "swin_tiny"])
    b.add_argument("--size", type=int, nargs="+", default=[224], metavar="H [W]", help="input side, or height width")
    b.add_argument("--batch", type=int, default=1)
    _common(b, rounds=20, warmup=2)

    d = sub.add_parser("detector", help="detector training-iteration time per backbone")
    d.add_argument(
        "--configs",
        nargs="+",
        default=None,
        help="mmdet configs (default: the tiny CPU recipes on CPU, Swin-T/ConvNeXt-T 1x on CUDA)",
    )
    d.add_argument("--batch", type=int, default=2)
    d.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="default 160 192 on CPU, 800 1333 on CUDA",
    )
    _common(d, rounds=6, warmup=2)

    t = sub.add_parser("throughput", help="step vs loader images/s at every ICCV and ET++ stage size")
    t.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny", "swin_tiny_patch4_window7_224"])
    t.add_argument("--final-size", type=int, default=224)
    t.add_argument("--batch-size", type=int, default=128, help="per-step batch at the final size (x2 below it)")
    t.add_argument("--num-classes", type=int, default=1000)
    t.add_argument("--model-kwargs", default=None, help="JSON kwargs for every model (tiny smoke runs)")
    t.add_argument("--data", default=None, help="ImageNet-style folder for the loader (default: generated JPEGs)")
    t.add_argument("--workers", type=int, default=None, help="loader workers (default: every core)")
    t.add_argument("--loader-batch", type=int, default=64)
    t.add_argument(
        "--loader-batches", type=int, default=None, help="timed batches per loader measurement (default: 2 per worker)"
    )
    t.add_argument("--loader-rounds", type=int, default=1)
    t.add_argument("--magnitude", type=float, default=9.0, help="RandAugment magnitude in the loader")
    _common(t, rounds=10, warmup=3)

    bd = sub.add_parser("breakdown", help="per-stage time breakdown of finished pretraining runs")
    bd.add_argument("work_dirs", nargs="+", help="tools/pretrain.py work dirs (their log.jsonl)")
    bd.add_argument("--out", default=None, help="write the result as JSON here")
    return parser


# --- shared plumbing ---------------------------------------------------------------------------
def _setup(args: argparse.Namespace) -> Any:
    import torch

    from pretraining.distributed import resolve_device

    device = resolve_device(args.device, 0)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu":
        torch.set_num_threads(1)
    for name in ("rounds",):
        if getattr(args, name) < 1:
            raise UserInputError(f"--{name} must be >= 1")
    return device


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: Any) -> dict[str, Any]:
    """What produced the numbers: host, CPU, GPU, threads, library versions, date."""
    import mmdet
    import timm
    import torch

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "mmdet": mmdet.__version__},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        info["load_average"] = os.getloadavg()
    return info


def _emit(args: argparse.Namespace, argv: Sequence[str], device: Any, table: str, result: Any) -> None:
    print(table, flush=True)
    if args.out:
        from etcore.checkpoint_io import write_text_atomic

        payload = {
            "command": "python tools/benchmark.py " + " ".join(shlex.quote(a) for a in argv),
            "subcommand": args.command,
            "machine": machine_info(device),
            "table": table,
            "result": result,
        }
        write_text_atomic(json.dumps(payload, indent=2) + "\n", Path(args.out))
        print(f"wrote {args.out}")


# --- sub-commands ------------------------------------------------------------------------------
def run_curriculum(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench import curriculum as bc

    device = _setup(args)
    extra = shlex.split(args.pretrain_args)
    if args.end_to_end:
        result, table = end_to_end(args, extra, device)
        _emit(args, argv, device, table, result)
        return 0
    if len(args.lowfreq) > 1:
        raise UserInputError(f"--lowfreq {' '.join(args.lowfreq)}: several modes side by side need --end-to-end")
    lowfreq = args.lowfreq[0]
    epochs = args.epochs or 300
    report = bc.step_benchmark(
        args.model,
        args.curriculum,
        epochs,
        args.final_size,
        args.batch_size,
        str(device.type),
        lowfreq,
        args.rounds,
        args.warmup,
        args.num_classes,
        args.images_per_epoch,
        args.baseline_epochs,
        extra,
    )
    header = (
        f"curriculum {report.curriculum.name} vs baseline, {args.model}, final size {args.final_size}, "
        f"batch {args.batch_size}, lowfreq {lowfreq}, {device}, {args.rounds} rounds after {args.warmup} "
        f"warm-up"
    )
    _emit(args, argv, device, header + "\n" + report.table(), report.to_dict())
    return 0


def end_to_end(args: argparse.Namespace, extra: Sequence[str], device: Any) -> tuple[dict[str, Any], str]:
    """Train baseline and curriculum through `pretraining.cli.main` for every `--lowfreq` mode, side by side.

    Each repeat trains, in a rotating order, the curriculum once per mode and the baseline once per
    distinct baseline pipeline: `fft` and `resize` share one (a single stage at the final size makes no
    low-frequency view), `direct` has its own (its reduced-scale decode also runs at the final size).
    Every mode's speedup is its curriculum against its baseline, paired within the repeat.
    """
    from bench import curriculum as bc
    from bench.timing import Spread
    from pretraining import cli as pretrain_cli
    from pretraining.curriculum import build_curriculum, curriculum_from_dict

    if not args.data:
        raise UserInputError(
            "--end-to-end needs --data: an ImageNet-style folder (python tools/make_demo_data.py "
            "writes data/demo/imagenet)"
        )
    modes = list(dict.fromkeys(args.lowfreq))
    epochs = args.epochs or 5
    planned = build_curriculum(args.curriculum, epochs, final_size=args.final_size, model_name=args.model)
    baseline_epochs = args.baseline_epochs or planned.total_epochs
    root = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    common = [
        "--model",
        args.model,
        "--final-size",
        str(args.final_size),
        "--batch-size",
        str(args.batch_size),
        "--data",
        args.data,
        "--workers",
        str(args.workers),
        "--device",
        device.type,
        "--eval-every",
        str(max(epochs, baseline_epochs, planned.total_epochs) + 1),  # both arms validate once, at the end
        *extra,
    ]

    def baseline_of(mode: str) -> str:
        return "baseline_direct" if mode == "direct" else "baseline"

    runs: dict[str, list[str]] = {}
    for mode in modes:
        if baseline_of(mode) not in runs:
            runs[baseline_of(mode)] = ["--curriculum", "baseline", "--epochs", str(baseline_epochs), "--lowfreq", mode]
        runs[f"curriculum_{mode}"] = ["--curriculum", args.curriculum, "--epochs", str(epochs), "--lowfreq", mode]
    names = list(runs)
    repeats, ran = [], {}
    for rep in range(args.repeats):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        logs = {}
        for name in order:
            work = root / f"rep{rep}_{name}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            print(f"end-to-end: training {name} ({' '.join(runs[name])}) -> {work}", flush=True)
            with open(work / "stdout.txt", "w") as sink, contextlib.redirect_stdout(sink):
                pretrain_cli.main([*common, *runs[name], "--work-dir", str(work)])
            logs[name] = bc.read_log(work / PRETRAIN_LOG)
            ran[name] = curriculum_from_dict(json.loads((work / PRETRAIN_CURRICULUM).read_text()))
        repeats.append(
            {
                "order": order,
                "times": {n: bc.log_times(logs[n]) for n in logs},
                "speedups": {
                    mode: bc.log_speedups(logs[baseline_of(mode)], logs[f"curriculum_{mode}"]) for mode in modes
                },
            }
        )
    baseline, curriculum = ran[baseline_of(modes[0])], ran[f"curriculum_{modes[0]}"]  # as the engine resolved them
    theoretical = bc.theoretical_speedup(baseline, curriculum)
    measures = list(repeats[0]["speedups"][modes[0]])
    lines = [
        f"end-to-end {curriculum.name} ({curriculum.total_epochs} epochs, sizes "
        f"{[s.input_size for s in curriculum.stages]}) vs baseline ({baseline_epochs} epochs at {args.final_size}), "
        f"{args.model}, batch {args.batch_size} at the final size, {args.workers} workers, {device}, data {args.data}, "
        f"{args.repeats} repeat(s)",
        f"theoretical speedup: {theoretical:.3f}x",
        f"{'mode':>7} {'measure':>14} {'baseline s':>11} {'curriculum s':>13} {'speedup':>22} "
        f"{'measured/theoretical':>22}",
    ]
    per_mode = {}
    for mode in modes:
        summary = {m: Spread.of([r["speedups"][mode][m] for r in repeats]) for m in measures}
        for m in measures:
            b = Spread.of([r["times"][baseline_of(mode)][m] for r in repeats]).median
            c = Spread.of([r["times"][f"curriculum_{mode}"][m] for r in repeats]).median
            lines.append(
                f"{mode:>7} {m:>14} {b:>11.1f} {c:>13.1f} {summary[m].fmt():>22} "
                f"{summary[m].scaled(1 / theoretical).fmt():>22}"
            )
        per_mode[mode] = {
            "measured_speedup": {m: summary[m].to_dict() for m in measures},
            "measured_over_theoretical": {m: summary[m].scaled(1 / theoretical).to_dict() for m in measures},
        }
    lines.append(
        "epoch_time_s: stage switches, training loops and the final evaluation; train_s: stage switches and "
        "training loops (provenance train_time_s, the cost column's); train_time_s: the loops only "
        "(images / images_per_s); wall_clock_s: everything but set-up"
    )
    last = args.repeats - 1
    breakdowns, text = breakdown_text([root / f"rep{last}_{name}" for name in names])
    lines += ["", f"per-stage breakdown (repeat {last})", text]
    result = {
        "curriculum": curriculum.to_dict(),
        "baseline": baseline.to_dict(),
        "theoretical_speedup": theoretical,
        "modes": per_mode,
        "repeats": repeats,
        "breakdown": breakdowns,
        "work_dir": str(root),
    }
    return result, "\n".join(lines)


def run_lowfreq(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench import lowfreq as bl
    from bench.curriculum import resolve_recipe

    device = _setup(args)
    bad = [s for s in args.sizes if not 0 < s < args.final_size]
    if bad:
        raise UserInputError(f"--sizes {bad} must lie below --final-size {args.final_size}")
    config, _ = resolve_recipe(args.model, "baseline", 300, args.final_size, max(args.batch_sizes), device.type, "fft")
    rows = bl.op_costs(config, args.sizes, args.batch_sizes, args.num_classes, device, args.rounds, args.warmup)
    table = (
        f"low-frequency ops vs one training step ({args.model}, final size {args.final_size}, {device}, "
        f"{args.rounds} rounds)\n" + bl.op_table(rows)
    )
    result: dict[str, Any] = {"ops": rows}
    if not args.no_loader:
        with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
            data = args.data or str(bl.make_image_folder(Path(tmp), args.loader_batch * (args.loader_batches + 1)))
            loader_rows = bl.loader_throughput(
                config,
                data,
                args.sizes,
                args.loader_batch,
                args.workers,
                args.loader_rounds,
                args.loader_batches,
                args.magnitude,
            )
        # the step's images/s at each size, from the op rows at the largest batch (the step plus its FFT crop)
        largest = max(args.batch_sizes)
        step_rate = {
            r["input_size"]: r["batch"] / (r["step_s"]["median"] + r["fft_s"]["median"])
            for r in rows
            if r["batch"] == largest
        }
        result["loader"] = loader_rows
        result["loader_data"] = args.data or "generated 500x375 JPEGs"
        table += (
            f"\n\nloader images/s (batch {args.loader_batch}, {args.workers} workers, RandAugment m="
            f"{args.magnitude:g}, data {result['loader_data']}) vs the step at batch {largest}\n"
            + bl.loader_table(loader_rows, step_rate)
        )
    _emit(args, argv, device, table, result)
    return 0


def run_backbone(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.detection import backbone_benchmark, backbone_table

    device = _setup(args)
    if len(args.size) > 2:
        raise UserInputError(f"--size {' '.join(map(str, args.size))}: give one side or a height and a width")
    height, width = args.size * 2 if len(args.size) == 1 else args.size
    rows = backbone_benchmark(args.families, (height, width), args.batch, device, args.rounds, args.warmup)
    table = (
        f"TimmBackbone vs mmdet native (same weights), {height}x{width}, batch {args.batch}, {device}, "
        f"{args.rounds} rounds\n" + backbone_table(rows)
    )
    _emit(args, argv, device, table, rows)
    return 0


def run_detector(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench.detection import detector_benchmark, detector_table

    device = _setup(args)
    on_gpu = device.type == "cuda"
    configs = args.configs or list(GPU_DETECTOR_CONFIGS if on_gpu else CPU_DETECTOR_CONFIGS)
    height, width = args.image_size or ((800, 1333) if on_gpu else (160, 192))
    result = detector_benchmark(configs, args.batch, height, width, device, args.rounds, args.warmup)
    table = (
        f"detector training iteration (train_step: preprocess, losses, backward, optimizer), batch {args.batch} "
        f"at {height}x{width}, {device}, {args.rounds} rounds\n" + detector_table(result)
    )
    _emit(args, argv, device, table, result)
    return 0


def run_throughput(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from bench import lowfreq as bl
    from bench.throughput import throughput, throughput_table

    device = _setup(args)
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    try:
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else None
    except json.JSONDecodeError as err:
        raise UserInputError(f"--model-kwargs is not valid JSON ({err}): give an object, e.g. '{{\"dims\": [8]}}'")
    batches = max(4, 2 * workers) if args.loader_batches is None else args.loader_batches
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as tmp:
        images = args.loader_batch * (batches + max(1, 2 * workers))
        data = args.data or str(bl.make_image_folder(Path(tmp), images, workers=workers))
        result = throughput(
            args.models,
            args.final_size,
            args.batch_size,
            args.num_classes,
            device,
            args.rounds,
            args.warmup,
            data,
            workers,
            args.loader_batch,
            batches,
            args.loader_rounds,
            args.magnitude,
            kwargs,
        )
    result["data"] = args.data or "generated 500x375 JPEGs"
    table = (
        f"per-stage throughput, final size {args.final_size}, batch {args.batch_size} at it, {device}, "
        f"{args.rounds} step rounds, data {result['data']}\n" + throughput_table(result)
    )
    _emit(args, argv, device, table, result)
    return 0


def breakdown_text(work_dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], str]:
    """Per-stage breakdown of each run: the rows (JSON) and the tables, one per work dir."""
    from bench import curriculum as bc
    from bench.breakdown import breakdown_table, stage_times

    runs, blocks = [], []
    for work in work_dirs:
        log = Path(work) / PRETRAIN_LOG
        if not log.is_file():
            raise UserInputError(f"{work}: no {PRETRAIN_LOG} there: pass a tools/pretrain.py work dir")
        try:
            stages = stage_times(bc.read_log(log))
        except ValueError as err:
            raise UserInputError(f"{log}: {err}: rerun the pretraining with this version") from None
        runs.append({"work_dir": str(work), "stages": [s.to_dict() for s in stages]})
        blocks.append(f"{work}\n" + breakdown_table(stages))
    return runs, "\n\n".join(blocks)


def run_breakdown(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import torch

    runs, table = breakdown_text([Path(w) for w in args.work_dirs])
    _emit(args, argv, torch.device("cpu"), table, runs)
    return 0


COMMANDS = {
    "curriculum": run_curriculum,
    "lowfreq": run_lowfreq,
    "backbone": run_backbone,
    "detector": run_detector,
    "throughput": run_throughput,
    "breakdown": run_breakdown,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import torch

    threads = torch.get_num_threads()  # _setup pins threads for timing; callers in-process keep theirs
    try:
        return COMMANDS[args.command](args, argv)
    finally:
        torch.set_num_threads(threads)
