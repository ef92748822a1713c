"""The demo's report: the comparison table plus plots of the curricula, pretraining curves and AP / mIoU vs cost,
the model-zoo table beside it (`WORK_ROOT/zoo.md`, links relative to it) and, where the runs logged to
TensorBoard (`--vis tensorboard`), the command that shows their curves.

    python tools/demo_report.py WORK_ROOT   (re-draws WORK_ROOT/report.md from finished runs)

Reads only what the runs wrote (pretraining `log.jsonl` / `curriculum.json` / `final.pth`, fine-tuning
`coco_metrics.json` / `seg_metrics.json` / `pretrain_provenance.json`); the table is the one
tools/compare.py prints. Work-root layout (the demo's): `WORK_ROOT/pretrain/<model>_<curriculum>_s<seed>/`,
`WORK_ROOT/det/...`, `WORK_ROOT/seg/...`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from etcore.checkpoint_io import load_checkpoint_file, write_text_atomic  # noqa: E402
from etcore.cli import ArgumentParser  # noqa: E402
from etcore.errors import UserInputError  # noqa: E402
from etcore.formats import PRETRAIN_CURRICULUM, PRETRAIN_FINAL, PRETRAIN_LOG  # noqa: E402
from reporting.render import render  # noqa: E402
from reporting.runs import SEGMENTATION, load_runs  # noqa: E402
from reporting.summary import compact_table  # noqa: E402
from reporting.table import build_table  # noqa: E402
from reporting.zoo import zoo_markdown  # noqa: E402

TABLE_FILE = "table.md"  # the full comparison table, beside report.md
SUMMARY_FILE = "summary.md"  # the short answer with its noise, what the demo prints
ZOO_FILE = "zoo.md"  # the model-zoo table (tools/compare.py --format zoo), beside table.md


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _label(pretrain_dir: Path) -> str:
    curriculum = json.loads((pretrain_dir / PRETRAIN_CURRICULUM).read_text())
    seed = pretrain_dir.name.rsplit("_s", 1)[-1]  # study layout: <entry>_<curriculum>_e<epochs>_s<seed>
    epochs = curriculum.get("budget_epochs") or curriculum["total_epochs"]
    return f"{curriculum['name']} {epochs:g} ep (seed {seed})"


def plot_curricula(pretrain_dirs: Sequence[Path], out: Path) -> Path:
    """Input size and RandAugment magnitude over epochs, one line per curriculum."""
    fig, (size_ax, mag_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    seen = set()
    for directory in pretrain_dirs:
        curriculum = json.loads((directory / PRETRAIN_CURRICULUM).read_text())
        if curriculum["name"] in seen:
            continue
        seen.add(curriculum["name"])
        epochs, sizes, mags = [], [], []
        for stage in curriculum["stages"]:
            epochs += [stage["start_epoch"], stage["end_epoch"]]
            sizes += [stage["input_size"]] * 2
            mags += [stage["randaug_magnitude"]] * 2
        size_ax.plot(epochs, sizes, label=curriculum["name"], lw=2)
        mag_ax.plot(epochs, mags, label=curriculum["name"], lw=2)
    size_ax.set(xlabel="epoch", ylabel="input size (px)", title="low-frequency crop size")
    mag_ax.set(xlabel="epoch", ylabel="RandAugment magnitude", title="augmentation strength")
    for ax in (size_ax, mag_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out)


def plot_pretraining(pretrain_dirs: Sequence[Path], out: Path) -> Path:
    """Training loss and validation top-1 against wall-clock time, one line per run."""
    fig, (loss_ax, top1_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for directory in pretrain_dirs:
        log = _read_jsonl(directory / PRETRAIN_LOG)
        minutes = [row["wall_clock_s"] / 60 for row in log]
        loss_ax.plot(minutes, [row["train_loss"] for row in log], marker="o", ms=3, label=_label(directory))
        top1 = [(m, row["top1"]) for m, row in zip(minutes, log) if row.get("top1") is not None]
        if top1:
            top1_ax.plot(*zip(*top1), marker="o", ms=3, label=_label(directory))
    loss_ax.set(xlabel="wall-clock (min)", ylabel="train loss", title="pretraining loss")
    top1_ax.set(xlabel="wall-clock (min)", ylabel="val top-1 (%)", title="pretraining accuracy")
    for ax in (loss_ax, top1_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


def plot_ap_vs_cost(runs: Sequence, out: Path) -> Path:
    """Box (and mask) AP of each detection run, mIoU of each segmentation run, against the pretraining cost."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = {"retinanet": "o", "cascade_mask_rcnn": "s", "upernet": "D"}
    measures = (
        ("bbox", "AP", "full", "box AP"),
        ("segm", "AP", "none", "mask AP"),
        ("single_scale", "mIoU", "full", "mIoU"),
        ("ms_flip", "mIoU", "none", "mIoU MS+flip"),
    )
    for run in runs:
        cost = run.pretrain.get("equivalent_epochs")
        for block, metric, fill, name in measures:
            value = run.metrics.get(block, {}).get(metric)
            if cost is None or value is None:
                continue
            colour = "tab:blue" if run.curriculum == "baseline" else "tab:orange"
            ax.scatter(
                cost,
                value,
                marker=markers.get(run.detector, "^"),
                s=60,
                color=colour,
                facecolors=colour if fill == "full" else "none",
                label=f"{run.detector} {name}, {run.curriculum}",
            )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7)
    ax.set(
        xlabel="pretraining cost (equivalent full-size epochs)",
        ylabel="COCO AP / ADE-layout mIoU (%)",
        title="detection AP and segmentation mIoU vs pretraining cost",
    )
    ax.grid(alpha=0.3)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _pretraining_summary(pretrain_dirs: Sequence[Path]) -> list[str]:
    lines = [
        "| run | epochs | equivalent epochs | wall-clock (s) | train (s) | eval (s) | images seen | final top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for directory in pretrain_dirs:
        prov = load_checkpoint_file(directory / PRETRAIN_FINAL)["provenance"]
        split = [prov.get("train_time_s"), prov.get("eval_time_s")]  # absent in checkpoints written before
        train, evaluation = ("-" if value is None else f"{value:.0f}" for value in split)
        lines.append(
            f"| {_label(directory)} | {prov['epochs']} | {prov['equivalent_epochs']:.1f} | "
            f"{prov['wall_clock_s']:.0f} | {train} | {evaluation} | {prov['images_seen']} | {prov['final_top1']:.1f} |"
        )
    return lines


TENSORBOARD_EVENTS = "events.out.tfevents.*"  # the file names TensorBoard's writers give their event files


def tensorboard_line(root: Path) -> str | None:
    """The command that shows every TensorBoard log below `root`, or None when no run wrote one."""
    if next(root.rglob(TENSORBOARD_EVENTS), None) is None:
        return None
    return f"`tensorboard --logdir {root.as_posix()}`"


def write_report(
    root: Path,
    det_root: Path,
    pretrain_dirs: Sequence[Path],
    profile_name: str = "",
    elapsed_s: float | None = None,
    seg_root: Path | None = None,
) -> str:
    """Write `root/report.md` with its plots, the full table (`table.md`) and the short answer (`summary.md`);
    return the short answer (markdown), which is what fits a terminal."""
    runs = load_runs([folder for folder in (det_root, seg_root) if folder is not None and folder.is_dir()])
    with_seg = any(run.task == SEGMENTATION for run in runs)
    table = render(build_table(runs), "markdown")
    summary = compact_table(runs)
    zoo = zoo_markdown(runs, root)
    write_text_atomic(f"# Model zoo: {root.as_posix()}\n\n{zoo}", root / ZOO_FILE)
    tensorboard = tensorboard_line(root)
    plots = {
        "Curricula": plot_curricula(pretrain_dirs, root / "plots" / "curricula.png"),
        "Pretraining curves": plot_pretraining(pretrain_dirs, root / "plots" / "pretraining.png"),
        ("AP and mIoU" if with_seg else "AP") + " vs pretraining cost": plot_ap_vs_cost(
            runs, root / "plots" / "ap_vs_cost.png"
        ),
    }
    lines = [
        f"# EfficientTrain demo report{f' ({profile_name})' if profile_name else ''}",
        "",
        "Pretraining on the generated ImageNet-style set, then RetinaNet and Cascade Mask R-CNN fine-tuned "
        "from each checkpoint on the generated COCO-format set"
        + (
            ", and a tiny UperNet from each checkpoint on the same scenes as ADE20K-layout label maps"
            if with_seg
            else ""
        )
        + ". Numbers are real runs of this machine; every AP below was re-computed with pycocotools from the "
        "run's own dumped detections"
        + (", every mIoU with a numpy confusion matrix from its saved predictions." if with_seg else "."),
        "",
        "## The answer, with its noise",
        "",
        summary.rstrip(),
        "",
        "## COCO and ADE-layout results" if with_seg else "## COCO results",
        "",
        f"Every metric of every run: [{TABLE_FILE}]({TABLE_FILE}) (also `python tools/compare.py {root}`).",
        "",
        "## Pretraining",
        "",
        *_pretraining_summary(pretrain_dirs),
        "",
        "## Model zoo",
        "",
        f"Every fine-tuned model with #Params and FLOPs at its test size and links to its config, log and "
        f"checkpoint: [{ZOO_FILE}]({ZOO_FILE}) (also `python tools/compare.py {root} --format zoo`).",
        "",
    ]
    if tensorboard:
        lines += [
            "## Training curves",
            "",
            f"Loss, learning rate, throughput and accuracy of the pretrainings and fine-tunes: {tensorboard}",
            "",
        ]
    for title, path in plots.items():
        lines += [f"## {title}", "", f"![{title}]({path.relative_to(root).as_posix()})", ""]
    if elapsed_s is not None:
        lines += [f"Demo wall-clock for this invocation: {elapsed_s / 60:.1f} min.", ""]
    write_text_atomic("\n".join(lines), root / "report.md")
    write_text_atomic(table, root / TABLE_FILE)
    write_text_atomic(summary, root / SUMMARY_FILE)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Re-draw WORK_ROOT/report.md from finished demo runs."""
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "work_root", help="the demo's work root, holding pretrain/, det/ (and seg/) (e.g. work_dirs/demo)"
    )
    root = Path(parser.parse_args(argv).work_root)
    if not (root / "pretrain").is_dir() or not ((root / "det").is_dir() or (root / "seg").is_dir()):
        raise UserInputError(f"{root} has no pretrain/ and det/ or seg/ folders: run tools/demo.py first")
    pretrain_dirs = sorted(p for p in (root / "pretrain").iterdir() if (p / PRETRAIN_FINAL).is_file())
    print(write_report(root, root / "det", pretrain_dirs, seg_root=root / "seg"))
    return 0
