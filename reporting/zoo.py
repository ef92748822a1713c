"""`tools/compare.py --format zoo`: the runs as a model-zoo table, in the style of MMDetection's model-zoo READMEs.

One section per detector or segmentor, one row per fine-tuned model (every seed its own row, since every
seed is its own checkpoint): backbone, its pretraining (curriculum, epochs, equivalent epochs, training
device-hours), schedule, box/mask AP or mIoU (single-scale and multi-scale + flip), #Params and FLOPs at the
test size that tools/test.py measured (`finetune.complexity`), and links to the config the run trained with
(the copy mmengine keeps in the work dir), its training log and the checkpoint. Links are relative to the
folder the table is written to, so the table can be committed next to the runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from reporting.runs import BASELINE, SEGMENTATION, Run

ZOO_FORMAT = "zoo"
TITLES = {"retinanet": "RetinaNet", "cascade_mask_rcnn": "Cascade Mask R-CNN", "upernet": "UperNet"}
NOTES = (
    "AP / mIoU in percent. #Params: every parameter of the detector or segmentor. FLOPs: multiply-adds of the "
    "network (backbone, neck, heads; no NMS or other post-processing) on the first test image, counted by "
    "mmengine.analysis at the padded test size shown (H x W). Pretraining: curriculum, epochs (equivalent "
    "full-size epochs), and the training device-hours of the backbone's pretraining."
)


def _link(text: str, target: Path | None, base: Path) -> str:
    """A markdown link to `target` relative to `base`, or the bare text when the file is not there."""
    if target is None:
        return text
    return f"[{text}]({Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()})"


def _existing(recorded: str | None, work_dir: Path) -> Path | None:
    """The file a metrics file names: as recorded (relative to here), else by its name in the run's work dir."""
    if not recorded:
        return None
    for candidate in (Path(recorded), work_dir / Path(recorded).name):
        if candidate.exists():
            return candidate
    return None


def _pretraining(run: Run) -> str:
    info = run.pretrain
    if info.get("foreign_checkpoint") or info.get("epochs") is None:
        name = Path(info["foreign_checkpoint"]).name if info.get("foreign_checkpoint") else None
        return f"{run.curriculum} ({name})" if name else run.curriculum
    text = f"{run.curriculum}, {info['epochs']:g} ep"
    if info.get("equivalent_epochs") is not None:
        text += f" ({info['equivalent_epochs']:.1f} eq.)"
    if info.get("hours") is not None:
        text += f", {info['hours']:.3g} h"
    return text


def _number(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _row(run: Run, base: Path, with_seed: bool, with_masks: bool) -> list[str]:
    if run.task == SEGMENTATION:
        scores = [
            _number(run.metrics.get("single_scale", {}).get("mIoU")),
            _number(run.metrics.get("ms_flip", {}).get("mIoU")),
        ]
    else:
        scores = [_number(run.metrics.get("bbox", {}).get("AP"))]
        scores += [_number(run.metrics.get("segm", {}).get("AP"))] if with_masks else []
    complexity = run.complexity or {}
    shape = complexity.get("input_shape")
    size = f"{shape[0]}×{shape[1]}" if shape else "–"
    params = _number(complexity["params"] / 1e6, 2) if "params" in complexity else "–"
    flops = _number(complexity["flops"] / 1e9, 2) if "flops" in complexity else "–"
    config = Path(run.config).name if run.config else "–"
    copy = run.work_dir / config  # mmengine dumps the resolved config into the work dir at training time
    config_cell = _link(config, copy if copy.is_file() else _existing(run.config, run.work_dir), base)
    log_dir = _existing(run.train_log, run.work_dir)
    if log_dir is not None:
        text_log, json_log = log_dir / f"{log_dir.name}.log", log_dir / "vis_data" / "scalars.json"
        logs = [_link("log", p, base) for p in (text_log,) if p.is_file()]
        logs += [_link("json", p, base) for p in (json_log,) if p.is_file()]
        log_cell = " · ".join(logs) or "–"
    else:
        log_cell = "–"
    checkpoint = _existing(run.checkpoint, run.work_dir)
    checkpoint_cell = _link("model", checkpoint, base) if checkpoint else "–"
    cells = [run.backbone, _pretraining(run), run.schedule or "–"]
    cells += [str(run.seed) if run.seed is not None else "–"] if with_seed else []
    cells += [*scores, size, params, flops, config_cell, log_cell, checkpoint_cell]
    return [cell.replace("|", "\\|") for cell in cells]


def _order(run: Run) -> tuple:
    epochs = run.pretrain.get("epochs")
    return (
        run.backbone,
        run.schedule,
        run.curriculum != BASELINE,
        run.curriculum,
        epochs if isinstance(epochs, (int, float)) else -1,
        run.seed if run.seed is not None else -1,
    )


def zoo_markdown(runs: Sequence[Run], base: Path) -> str:
    """The zoo table of `runs` as markdown, its links relative to the folder `base`."""
    with_seed = len({run.seed for run in runs}) > 1
    sections: dict[str, list[Run]] = {}
    for run in runs:
        sections.setdefault(run.detector, []).append(run)
    known = [name for name in TITLES if name in sections]
    lines: list[str] = []
    for name in known + sorted(set(sections) - set(TITLES)):
        members = sorted(sections[name], key=_order)
        with_masks = any("segm" in run.metrics for run in members)
        if members[0].task == SEGMENTATION:
            scores = ["mIoU", "mIoU (MS+flip)"]
        else:
            scores = ["box AP", "mask AP"] if with_masks else ["box AP"]
        headers = ["Backbone", "Pretraining", "Lr schd", *(["Seed"] if with_seed else []), *scores]
        headers += ["Test size", "#Params (M)", "FLOPs (G)", "Config", "Log", "Checkpoint"]
        numeric = {"Seed", *scores, "#Params (M)", "FLOPs (G)"}
        lines += [f"### {TITLES.get(name, name)}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---:" if h in numeric else ":---" for h in headers) + "|")
        lines += ["| " + " | ".join(_row(run, base, with_seed, with_masks)) + " |" for run in members]
        lines.append("")
    missing = sorted(str(run.work_dir) for run in runs if run.complexity is None)
    lines.append(f"Notes: {NOTES}")
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        lines += ["", f"#Params / FLOPs are missing for {shown}: tested before tools/test.py measured them; re-run it."]
    return "\n".join(lines) + "\n"
