"""The comparison table: one row per curriculum arm (seeds averaged), a seed-paired delta row per non-baseline arm.

Runs are grouped by (detector or segmentor, backbone, schedule); within a group an arm is a curriculum (plus
pretraining epochs, or the foreign checkpoint). Runs are paired only when their resolved configs differ
in nothing but the pretrained checkpoint, the work dir and the seed; refused pairs become notes.
Detection groups show COCO box (and mask) AP, segmentation groups ADE20K mIoU single-scale and ms+flip,
so segmentors fine-tuned from the same checkpoints as the detectors appear in the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from etcore.errors import UserInputError
from reporting.paper import PAPER_ROWS, PaperRow, paper_rows_for
from reporting.runs import BASELINE, IOU_TYPES, METRIC_KEYS, SEGMENTATION, Run
from reporting.stats import Stat, config_differences, summarize


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    numeric: bool = False
    decimals: int = 1


@dataclass
class Table:
    """Rows of cells (str, Stat or None) under `columns`; `notes` explain refused pairs and gaps."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str]


@dataclass(frozen=True)
class MetricCell:
    """A metric column: its key, header, and where the number sits in `Run.metrics` / `PaperRow.metrics`."""

    key: str
    header: str
    block: str  # 'bbox' | 'segm' | 'single_scale' | 'ms_flip'
    metric: str  # 'AP' ... | 'mIoU'


DET_CELLS = [
    MetricCell(f"{iou_type}_{key}", f"{label} {key}", iou_type, key)
    for iou_type, label in IOU_TYPES.items()
    for key in METRIC_KEYS
]
SEG_CELLS = [
    MetricCell("miou", "mIoU", "single_scale", "mIoU"),
    MetricCell("miou_ms_flip", "mIoU MS+flip", "ms_flip", "mIoU"),
]
METRIC_CELLS = DET_CELLS + SEG_CELLS
_CELL_OF = {(cell.block, cell.metric): cell.key for cell in METRIC_CELLS}


def _arm_label(run: Run) -> str:
    epochs = run.pretrain.get("epochs")
    if run.pretrain.get("foreign_checkpoint"):
        return f"{run.curriculum} ({Path(run.pretrain['foreign_checkpoint']).name})"
    return f"{run.curriculum} {epochs:g}ep" if isinstance(epochs, (int, float)) else run.curriculum


def _columns(with_masks: bool, with_boxes: bool = True, with_seg: bool = False) -> list[Column]:
    columns = [
        Column("row", "Row"),
        Column("detector", "Detector / segmentor" if with_seg else "Detector"),
        Column("backbone", "Backbone"),
        Column("schedule", "Sched."),
        Column("method", "Method"),
        Column("pretraining", "Pretraining"),
        Column("epochs", "Ep.", True, 0),
        Column("equivalent_epochs", "Eq. ep.", True, 1),
        Column("pretrain_hours", "Pretrain h", True, 3),
        Column("speedup", "Speedup", True, 2),
        Column("top1", "Top-1", True, 1),
        Column("seeds", "Seeds"),
    ]
    shown = {"bbox": with_boxes, "segm": with_masks, "single_scale": with_seg, "ms_flip": with_seg}
    columns += [Column(cell.key, cell.header, True, 1) for cell in METRIC_CELLS if shown[cell.block]]
    return columns


def _unique_pretrainings(runs: Sequence[Run]) -> list[dict]:
    """One pretraining record per distinct checkpoint, so a checkpoint shared by seeds counts once."""
    seen: dict[Any, dict] = {}
    for run in runs:
        seen.setdefault(run.pretrain.get("sha256") or run.pretrain.get("checkpoint") or id(run), run.pretrain)
    return list(seen.values())


def _seeds_text(seeds: Iterable[int | None]) -> str:
    return ",".join("n/a" if seed is None else str(seed) for seed in seeds)


def _arm_row(runs: list[Run]) -> dict[str, Any]:
    first = runs[0]
    pretrainings = _unique_pretrainings(runs)
    row = {
        "row": "run",
        "detector": first.detector,
        "backbone": first.backbone,
        "schedule": first.schedule,
        "method": first.curriculum,
        "pretraining": _arm_label(first),
        "seeds": _seeds_text(r.seed for r in runs),
    }
    for key, source in (
        ("epochs", "epochs"),
        ("equivalent_epochs", "equivalent_epochs"),
        ("pretrain_hours", "hours"),
        ("top1", "top1"),
    ):
        row[key] = summarize([p.get(source) for p in pretrainings])
    for cell in METRIC_CELLS:
        row[cell.key] = summarize([r.metrics.get(cell.block, {}).get(cell.metric) for r in runs])
    return row


def _pick_baseline(arm_runs: list[Run], baselines: dict[tuple, list[Run]]) -> tuple[list[Run] | None, str | None]:
    """The baseline arm for `arm_runs`: the only one, or the one with the same pretraining epochs."""
    if len(baselines) == 1:
        return next(iter(baselines.values())), None
    epochs = arm_runs[0].pretrain.get("epochs")
    same = [runs for runs in baselines.values() if runs[0].pretrain.get("epochs") == epochs]
    if len(same) == 1:
        return same[0], None
    labels = ", ".join(sorted(_arm_label(runs[0]) for runs in baselines.values()))
    return None, f"several baselines ({labels}) and none with {epochs} epochs"


def _shown(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _delta_row(arm_runs: list[Run], base_runs: list[Run], notes: list[str]) -> dict[str, Any]:
    """Seed-paired delta (arm minus baseline) of every metric; refused pairs are named in `notes`."""
    first, label, base_label = arm_runs[0], _arm_label(arm_runs[0]), _arm_label(base_runs[0])
    by_seed = {r.seed: r for r in base_runs}
    pairs = []
    for run in arm_runs:
        base = by_seed.get(run.seed)
        if base is None:
            notes.append(
                f"{first.detector} {first.backbone} {first.schedule}: {label} seed {run.seed} "
                f"({run.work_dir}) has no {base_label} run with that seed; left out of the paired delta"
            )
            continue
        differing = config_differences(run, base)
        if differing:
            notes.append(
                f"not paired: {run.work_dir} ({label} seed {run.seed}) and {base.work_dir} "
                f"({base_label} seed {base.seed}): resolved_config differs in {_shown(differing)}"
            )
            continue
        pairs.append((run, base))
    row: dict[str, Any] = {
        "row": "delta",
        "detector": first.detector,
        "backbone": first.backbone,
        "schedule": first.schedule,
        "seeds": _seeds_text(r.seed for r, _ in pairs),
    }
    arm_hours = summarize([p.get("hours") for p in _unique_pretrainings(arm_runs)])
    base_hours = summarize([p.get("hours") for p in _unique_pretrainings(base_runs)])
    ratio = (
        f", {arm_hours.mean / base_hours.mean:.2f}x pretrain time"
        if arm_hours and base_hours and base_hours.mean > 0
        else ""
    )
    row["pretraining"] = (
        f"Δ {label} − {base_label}{ratio}" if pairs else f"Δ {label} − {base_label}: not paired (see notes)"
    )
    for key, source in (("pretrain_hours", "hours"), ("top1", "top1")):
        arm_stat = summarize([p.get(source) for p in _unique_pretrainings(arm_runs)])
        base_stat = summarize([p.get(source) for p in _unique_pretrainings(base_runs)])
        row[key] = Stat(arm_stat.mean - base_stat.mean, signed=True) if arm_stat and base_stat else None
    for cell in METRIC_CELLS:
        diffs = []
        for run, base in pairs:
            a, b = run.metrics.get(cell.block, {}).get(cell.metric), base.metrics.get(cell.block, {}).get(cell.metric)
            diffs.append(None if a is None or b is None else a - b)
        row[cell.key] = summarize(diffs, signed=True)
    return row


def _check_arm(group: tuple[str, str, str], arm_runs: list[Run], notes: list[str]) -> None:
    """Sort an arm's runs by seed; refuse two runs with one seed, note seeds trained with another recipe."""
    arm_runs.sort(key=lambda r: (r.seed is not None, r.seed or 0))
    seeds = [r.seed for r in arm_runs]
    duplicate = next((s for s in seeds if seeds.count(s) > 1), None)
    if duplicate is not None or seeds.count(None) > 1:
        dirs = " and ".join(str(r.work_dir) for r in arm_runs if r.seed == duplicate)
        raise UserInputError(
            f"{dirs} are both {' '.join(group)} {_arm_label(arm_runs[0])} seed {duplicate}: "
            "give each run its own seed, or compare them separately"
        )
    for run in arm_runs[1:]:
        differing = config_differences(run, arm_runs[0])
        if differing:
            notes.append(
                f"{run.work_dir} and {arm_runs[0].work_dir} are averaged as {_arm_label(run)} but "
                f"their resolved_config differs in {_shown(differing)}"
            )


def _paper_row(row: PaperRow, backbone: str, delta_to: PaperRow | None = None) -> dict[str, Any]:
    """A published row (or its delta to the published baseline) in the table's cells."""
    cells: dict[str, Any] = {
        "row": "paper",
        "detector": row.detector,
        "backbone": backbone,
        "schedule": row.schedule,
        "method": row.method,
        "speedup": Stat(row.speedup),
    }
    if delta_to is None:
        cells["pretraining"] = f"paper: {row.method} ({row.backbone})"
    else:
        cells["pretraining"] = f"paper: Δ {row.method} − {delta_to.method}"
        cells["speedup"] = None
    for block, values in row.metrics.items():
        for key, value in values.items():
            if delta_to is None:
                cells[_CELL_OF[(block, key)]] = Stat(value)
            elif key in delta_to.metrics.get(block, {}):
                cells[_CELL_OF[(block, key)]] = Stat(round(value - delta_to.metrics[block][key], 1), signed=True)
    return cells


def _paper_rows(detector: str, backbone: str, schedule: str, method: str) -> list[dict[str, Any]]:
    """The published row of `method` for this group, and its delta to the published baseline."""
    rows = []
    for row in paper_rows_for(detector, backbone, schedule, method):
        rows.append(_paper_row(row, backbone))
        base = paper_rows_for(detector, backbone, schedule, BASELINE)
        if row.method != BASELINE and base:
            rows.append(_paper_row(row, backbone, delta_to=base[0]))
    return rows


def paper_table() -> Table:
    """Every published row, with no measured run (`tools/compare.py --paper` without work dirs)."""
    rows = [_paper_row(row, row.backbone) for row in PAPER_ROWS]
    with_masks = any("segm" in row.metrics for row in PAPER_ROWS)
    with_boxes = any("bbox" in row.metrics for row in PAPER_ROWS)
    with_seg = any(set(row.metrics) & {"single_scale", "ms_flip"} for row in PAPER_ROWS)
    return Table(_columns(with_masks, with_boxes, with_seg), rows, [])


def build_table(runs: Sequence[Run], paper: bool = False) -> Table:
    """Group runs (detector, backbone, schedule), one row per curriculum arm, a delta row per non-baseline arm.

    With `paper`, the published row of the same detector, schedule, backbone and curriculum follows each arm.
    """
    groups: dict[tuple, dict[tuple, list[Run]]] = {}
    for run in runs:
        groups.setdefault(run.group, {}).setdefault(run.arm, []).append(run)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    matched_paper = False
    for group in sorted(groups):
        arms = groups[group]
        for arm_runs in arms.values():
            _check_arm(group, arm_runs, notes)
        baselines = {arm: r for arm, r in arms.items() if arm[0] == BASELINE}
        order = sorted(
            arms, key=lambda a: (a[0] != BASELINE, str(a[0]), a[1] if isinstance(a[1], (int, float)) else -1, str(a[2]))
        )
        for arm in order:
            arm_row = _arm_row(arms[arm])
            rows.append(arm_row)
            if arm[0] == BASELINE:
                arm_row["speedup"] = _speedup(arms[arm], arms[arm])
            elif not baselines:
                notes.append(f"{' '.join(group)}: no {BASELINE} run, so no delta for {_arm_label(arms[arm][0])}")
            else:
                base_runs, problem = _pick_baseline(arms[arm], baselines)
                if base_runs is None:
                    notes.append(f"{' '.join(group)}: {_arm_label(arms[arm][0])} has no delta: {problem}")
                else:
                    arm_row["speedup"] = _speedup(arms[arm], base_runs)
                    rows.append(_delta_row(arms[arm], base_runs, notes))
            if paper:
                reference = _paper_rows(*group, method=arm[0])
                matched_paper |= bool(reference)
                rows += reference
    if paper and not matched_paper:
        covered = sorted({f"{r.detector} {r.schedule} {r.backbone} {r.method}" for r in PAPER_ROWS})
        notes.append(
            "--paper: no run matches a published row (same detector, schedule, backbone and curriculum; "
            f"published: {'; '.join(covered)}), so no reference rows were added"
        )
    with_masks = any(f"segm_{key}" in row and row[f"segm_{key}"] is not None for row in rows for key in METRIC_KEYS)
    with_seg = any(run.task == SEGMENTATION for run in runs)
    with_boxes = any(run.task != SEGMENTATION for run in runs)
    return Table(_columns(with_masks, with_boxes, with_seg), rows, notes)


def _speedup(arm_runs: list[Run], base_runs: list[Run]) -> Stat | None:
    """Pretraining wall-clock speedup of an arm over the baseline arm: baseline hours / arm hours."""
    arm = summarize([p.get("hours") for p in _unique_pretrainings(arm_runs)])
    base = summarize([p.get("hours") for p in _unique_pretrainings(base_runs)])
    if arm is None or base is None or arm.mean <= 0:
        return None
    return Stat(base.mean / arm.mean)
