"""Compare detection runs: one table of pretraining cost and COCO AP, EfficientTrain rows against baseline.

Reads every `coco_metrics.json` (+ `pretrain_provenance.json`) below the given work dirs
(docs/FORMATS.md), groups runs by detector, backbone and schedule, averages seeds (mean +- std), and adds
below each non-baseline row its seed-paired delta to the `baseline` curriculum. Runs are paired only when
their resolved configs differ in nothing but the pretrained checkpoint, the work dir and the seed.

    python tools/compare.py work_dirs/demo [--format markdown|csv|latex|json] [--out FILE] [--paper]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

try:
    from etcore.checkpoint_io import write_text_atomic
    from etcore.errors import UserInputError, run_cli
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from etcore.checkpoint_io import write_text_atomic
    from etcore.errors import UserInputError, run_cli

METRICS_FILE = "coco_metrics.json"
PROVENANCE_FILE = "pretrain_provenance.json"
METRICS_SCHEMA = "efficienttrain-det/metrics-v1"
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = {"bbox": "box", "segm": "mask"}
BASELINE = "baseline"
FORMATS = ("markdown", "csv", "latex", "json")

# Config keys that may differ between the two runs of a pair (plus every `seed` and `randomness.*` key).
PAIRING_IGNORED_KEYS = ("model.backbone.checkpoint", "model.backbone.init_cfg.checkpoint", "work_dir")

# The paper's COCO results (box AP / mask AP, percent), baseline -> EfficientTrain (arXiv 2211.09703).
PAPER_RESULTS = {
    ("retinanet", "1x", "Swin-T"): {"baseline": {"bbox": 41.7}, "efficienttrain": {"bbox": 41.8}},
    ("cascade_mask_rcnn", "1x", "Swin-T"): {"baseline": {"bbox": 48.1, "segm": 41.5},
                                            "efficienttrain": {"bbox": 48.2, "segm": 41.8}},
    ("cascade_mask_rcnn", "1x", "Swin-S"): {"baseline": {"bbox": 50.0, "segm": 43.1},
                                            "efficienttrain": {"bbox": 50.6, "segm": 43.6}},
    ("cascade_mask_rcnn", "1x", "Swin-B"): {"baseline": {"bbox": 50.9, "segm": 44.0},
                                            "efficienttrain": {"bbox": 51.3, "segm": 44.2}},
}
_FAMILIES = {"swin": "Swin", "convnext": "ConvNeXt", "deit": "DeiT", "cswin": "CSWin"}
_SIZES = {"tiny": "T", "small": "S", "base": "B", "large": "L", "t": "T", "s": "S", "b": "B", "l": "L"}


# --------------------------------------------------------------------------------------------- loading

@dataclass
class Run:
    """One detection run: what was trained, its COCO metrics (percent, None = n/a) and its pretraining."""

    work_dir: Path
    detector: str
    backbone: str
    schedule: str
    seed: int | None                     # None: the run recorded no seed
    metrics: dict[str, dict[str, float | None]]
    resolved_config: dict | None
    curriculum: str
    pretrain: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.detector, self.backbone, self.schedule)

    @property
    def arm(self) -> tuple:
        """Runs of one arm differ only in their seed: same curriculum, epochs (and checkpoint if foreign)."""
        return (self.curriculum, self.pretrain.get("epochs"), self.pretrain.get("foreign_checkpoint"))


def _read_json(path: Path, fix: str) -> dict:
    """A JSON object from `path`, or a one-line UserInputError naming the file and the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path} is missing: {fix}") from None
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): "
                             f"{fix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path} cannot be read ({err}): {fix}") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path} holds a JSON {type(data).__name__}, not an object: {fix}")
    return data


def _get(document: dict, dotted: str, kind: type | tuple, path: Path, fix: str) -> Any:
    """`document[a][b]...` for key 'a.b...', checked against `kind`."""
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UserInputError(f"{path}: key '{dotted}' is missing: {fix}")
        value = value[part]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UserInputError(f"{path}: key '{dotted}' = {value!r} has the wrong type: {fix}")
    return value


def _percent(value: Any, key: str, path: Path) -> float | None:
    """A pycocotools fraction as percent; -1 (no ground truth in that size range) becomes None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserInputError(f"{path}: {key} = {value!r} is not a number: re-run tools/test.py")
    if value < 0:
        return None
    if value > 1:
        raise UserInputError(f"{path}: {key} = {value} is not a fraction in [0, 1]: AP values are written "
                             "as pycocotools reports them (tools/test.py does this)")
    return 100.0 * value


def _pretrain_info(path: Path) -> tuple[str, dict[str, Any]]:
    """Curriculum name and pretraining facts (epochs, cost, top-1) from a run's provenance file."""
    fix = "it is written by the backbone's PretrainProvenanceHook when the run starts; re-run tools/test.py"
    record = _read_json(path, fix)
    provenance = record.get("provenance")
    checkpoint = record.get("checkpoint")
    info: dict[str, Any] = {"checkpoint": checkpoint, "sha256": record.get("sha256")}
    if provenance is None:
        info["foreign_checkpoint"] = checkpoint
        return ("random init" if checkpoint is None else "foreign checkpoint"), info
    if not isinstance(provenance, dict):
        raise UserInputError(f"{path}: 'provenance' must be an object or null: {fix}")
    name = _get(provenance, "curriculum.name", str, path, "the pretraining checkpoint lacks its provenance; "
                "re-create it with tools/pretrain.py")
    hours = provenance.get("device_hours")
    if hours is None and isinstance(provenance.get("wall_clock_s"), (int, float)):
        hours = provenance["wall_clock_s"] / 3600
    top1_key = "ema_top1" if record.get("weights") == "model_ema" else "final_top1"
    info.update(epochs=provenance.get("epochs"), equivalent_epochs=provenance.get("equivalent_epochs"),
                hours=hours, top1=provenance.get(top1_key))
    for key in ("epochs", "equivalent_epochs", "hours", "top1"):
        if info[key] is not None and (not isinstance(info[key], (int, float)) or isinstance(info[key], bool)):
            raise UserInputError(f"{path}: provenance value for {key} = {info[key]!r} is not a number: {fix}")
    return name, info


def load_run(metrics_path: Path) -> Run:
    """Parse one work dir's `coco_metrics.json` and `pretrain_provenance.json` into a Run."""
    fix = f"re-run tools/test.py to rewrite it (schema {METRICS_SCHEMA}, docs/FORMATS.md)"
    document = _read_json(metrics_path, fix)
    schema = document.get("schema")
    if schema != METRICS_SCHEMA:
        raise UserInputError(f"{metrics_path}: schema {schema!r} is not {METRICS_SCHEMA!r}: {fix}")
    metrics: dict[str, dict[str, float | None]] = {}
    for iou_type in IOU_TYPES:
        if iou_type == "segm" and "segm" not in _get(document, "metrics", dict, metrics_path, fix):
            continue
        block = _get(document, f"metrics.{iou_type}", dict, metrics_path, fix)
        metrics[iou_type] = {key: _percent(_get(block, key, (int, float), metrics_path, fix),
                                           f"metrics.{iou_type}.{key}", metrics_path) for key in METRIC_KEYS}
    config = document.get("resolved_config")
    curriculum, pretrain = _pretrain_info(metrics_path.parent / PROVENANCE_FILE)
    return Run(work_dir=metrics_path.parent,
               detector=_get(document, "detector", str, metrics_path, fix),
               backbone=_get(document, "backbone", str, metrics_path, fix),
               schedule=_get(document, "schedule", (str, type(None)), metrics_path, fix) or "",
               seed=_get(document, "seed", (int, type(None)), metrics_path, fix),
               metrics=metrics, resolved_config=config if isinstance(config, dict) else None,
               curriculum=curriculum, pretrain=pretrain)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run below `paths` (work dirs, searched recursively, or `coco_metrics.json` files)."""
    found: dict[Path, None] = {}
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.is_file() and path.name == METRICS_FILE:
            found[path.resolve()] = None
        elif path.is_dir():
            for metrics_path in sorted(path.rglob(METRICS_FILE)):
                found[metrics_path.resolve()] = None
        elif path.exists():
            raise UserInputError(f"{path} is neither a work dir nor a {METRICS_FILE}: pass detection work dirs")
        else:
            raise UserInputError(f"{path} does not exist: pass detection work dirs (e.g. work_dirs/demo)")
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise UserInputError(f"no {METRICS_FILE} found under {shown}: run tools/test.py on the trained "
                             "detectors first, or pass the folder that holds their work dirs")
    return [load_run(path) for path in found]


# --------------------------------------------------------------------------------------------- statistics

@dataclass(frozen=True)
class Stat:
    """A table number: mean over n values, sample std when n >= 2, `signed` for deltas."""

    mean: float
    std: float | None = None
    n: int = 1
    signed: bool = False


def summarize(values: Sequence[float | None], signed: bool = False) -> Stat | None:
    """Mean +- sample std of the values that exist; None when none does."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) >= 2 else None
    return Stat(statistics.fmean(present), std, len(present), signed)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested config (list items by index) -> leaf values."""
    if isinstance(config, dict):
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _pairing_ignores(key: str) -> bool:
    parts = key.split(".")
    return (any(key == k or key.startswith(k + ".") for k in PAIRING_IGNORED_KEYS)
            or parts[0] == "randomness" or parts[-1] == "seed")


def config_differences(first: Run, second: Run) -> list[str]:
    """Config keys in which two runs differ beyond the checkpoint, the work dir and the seed."""
    if first.resolved_config is None or second.resolved_config is None:
        return ["resolved_config (missing)"]

    def normalised(run: Run) -> dict[str, Any]:
        work_dir = run.resolved_config.get("work_dir")
        flat = flatten_config(run.resolved_config)
        if isinstance(work_dir, str) and work_dir:  # paths inside the run's own work dir are the work dir
            flat = {k: v.replace(work_dir, "{work_dir}") if isinstance(v, str) else v for k, v in flat.items()}
        return {k: v for k, v in flat.items() if not _pairing_ignores(k)}

    a, b = normalised(first), normalised(second)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))


# --------------------------------------------------------------------------------------------- table

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


def backbone_family_size(backbone: str) -> str | None:
    """'swin_tiny_patch4_window7_224' -> 'Swin-T' (family + size), None when it names no known family."""
    match = re.match(r"^(swin|convnext|deit|cswin)[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])", backbone.lower())
    return f"{_FAMILIES[match.group(1)]}-{_SIZES[match.group(2)]}" if match else None


def _arm_label(run: Run) -> str:
    epochs = run.pretrain.get("epochs")
    if run.pretrain.get("foreign_checkpoint"):
        return f"{run.curriculum} ({Path(run.pretrain['foreign_checkpoint']).name})"
    return f"{run.curriculum} {epochs:g}ep" if isinstance(epochs, (int, float)) else run.curriculum


def _columns(with_masks: bool) -> list[Column]:
    columns = [Column("row", "Row"), Column("detector", "Detector"), Column("backbone", "Backbone"),
               Column("schedule", "Sched."), Column("pretraining", "Pretraining"),
               Column("epochs", "Ep.", True, 0), Column("equivalent_epochs", "Eq. ep.", True, 1),
               Column("pretrain_hours", "Pretrain h", True, 3), Column("top1", "Top-1", True, 1),
               Column("seeds", "Seeds")]
    for iou_type, label in IOU_TYPES.items():
        if iou_type == "segm" and not with_masks:
            continue
        columns += [Column(f"{iou_type}_{key}", f"{label} {key}", True, 1) for key in METRIC_KEYS]
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
    row = {"row": "run", "detector": first.detector, "backbone": first.backbone, "schedule": first.schedule,
           "pretraining": _arm_label(first), "seeds": _seeds_text(r.seed for r in runs)}
    for key, source in (("epochs", "epochs"), ("equivalent_epochs", "equivalent_epochs"),
                        ("pretrain_hours", "hours"), ("top1", "top1")):
        row[key] = summarize([p.get(source) for p in pretrainings])
    for iou_type in IOU_TYPES:
        for key in METRIC_KEYS:
            row[f"{iou_type}_{key}"] = summarize([r.metrics.get(iou_type, {}).get(key) for r in runs])
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
            notes.append(f"{first.detector} {first.backbone} {first.schedule}: {label} seed {run.seed} "
                         f"({run.work_dir}) has no {base_label} run with that seed; left out of the paired delta")
            continue
        differing = config_differences(run, base)
        if differing:
            notes.append(f"not paired: {run.work_dir} ({label} seed {run.seed}) and {base.work_dir} "
                         f"({base_label} seed {base.seed}): resolved_config differs in {_shown(differing)}")
            continue
        pairs.append((run, base))
    row: dict[str, Any] = {"row": "delta", "detector": first.detector, "backbone": first.backbone,
                           "schedule": first.schedule, "seeds": _seeds_text(r.seed for r, _ in pairs)}
    arm_hours = summarize([p.get("hours") for p in _unique_pretrainings(arm_runs)])
    base_hours = summarize([p.get("hours") for p in _unique_pretrainings(base_runs)])
    ratio = (f", {arm_hours.mean / base_hours.mean:.2f}x pretrain time"
             if arm_hours and base_hours and base_hours.mean > 0 else "")
    row["pretraining"] = (f"Δ {label} − {base_label}{ratio}" if pairs
                          else f"Δ {label} − {base_label}: not paired (see notes)")
    for key, source in (("pretrain_hours", "hours"), ("top1", "top1")):
        arm_stat = summarize([p.get(source) for p in _unique_pretrainings(arm_runs)])
        base_stat = summarize([p.get(source) for p in _unique_pretrainings(base_runs)])
        row[key] = Stat(arm_stat.mean - base_stat.mean, signed=True) if arm_stat and base_stat else None
    for iou_type in IOU_TYPES:
        for key in METRIC_KEYS:
            diffs = []
            for run, base in pairs:
                a, b = run.metrics.get(iou_type, {}).get(key), base.metrics.get(iou_type, {}).get(key)
                diffs.append(None if a is None or b is None else a - b)
            row[f"{iou_type}_{key}"] = summarize(diffs, signed=True)
    return row


def _paper_rows(group: tuple[str, str, str]) -> list[dict[str, Any]]:
    """The paper's baseline, EfficientTrain and delta rows for a matching group (empty when none)."""
    detector, backbone, schedule = group
    reference = PAPER_RESULTS.get((detector, schedule, backbone_family_size(backbone) or ""))
    if reference is None:
        return []
    rows = []
    family = backbone_family_size(backbone)
    for arm in (BASELINE, "efficienttrain"):
        label = f"paper: {arm} ({family})"
        row = {"row": "paper", "detector": detector, "backbone": backbone, "schedule": schedule, "pretraining": label}
        for iou_type, value in reference[arm].items():
            row[f"{iou_type}_AP"] = Stat(value)
        rows.append(row)
    delta = {"row": "paper", "detector": detector, "backbone": backbone, "schedule": schedule,
             "pretraining": "paper: Δ efficienttrain − baseline"}
    for iou_type, value in reference["efficienttrain"].items():
        delta[f"{iou_type}_AP"] = Stat(round(value - reference[BASELINE][iou_type], 1), signed=True)
    return rows + [delta]


def _check_arm(group: tuple[str, str, str], arm_runs: list[Run], notes: list[str]) -> None:
    """Sort an arm's runs by seed; refuse two runs with one seed, note seeds trained with another recipe."""
    arm_runs.sort(key=lambda r: (r.seed is not None, r.seed or 0))
    seeds = [r.seed for r in arm_runs]
    duplicate = next((s for s in seeds if seeds.count(s) > 1), None)
    if duplicate is not None or seeds.count(None) > 1:
        dirs = " and ".join(str(r.work_dir) for r in arm_runs if r.seed == duplicate)
        raise UserInputError(f"{dirs} are both {' '.join(group)} {_arm_label(arm_runs[0])} seed {duplicate}: "
                             "give each run its own seed, or compare them separately")
    for run in arm_runs[1:]:
        differing = config_differences(run, arm_runs[0])
        if differing:
            notes.append(f"{run.work_dir} and {arm_runs[0].work_dir} are averaged as {_arm_label(run)} but "
                         f"their resolved_config differs in {_shown(differing)}")


def build_table(runs: Sequence[Run], paper: bool = False) -> Table:
    """Group runs (detector, backbone, schedule), one row per curriculum arm, a delta row per non-baseline arm."""
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
        order = sorted(arms, key=lambda a: (a[0] != BASELINE, str(a[0]), a[1] if isinstance(a[1], (int, float)) else -1,
                                            str(a[2])))
        for arm in order:
            rows.append(_arm_row(arms[arm]))
            if arm[0] == BASELINE:
                continue
            if not baselines:
                notes.append(f"{' '.join(group)}: no {BASELINE} run, so no delta for {_arm_label(arms[arm][0])}")
                continue
            base_runs, problem = _pick_baseline(arms[arm], baselines)
            if base_runs is None:
                notes.append(f"{' '.join(group)}: {_arm_label(arms[arm][0])} has no delta: {problem}")
                continue
            rows.append(_delta_row(arms[arm], base_runs, notes))
        if paper:
            paper_rows = _paper_rows(group)
            matched_paper |= bool(paper_rows)
            rows += paper_rows
    if paper and not matched_paper:
        notes.append("--paper: no run matches the paper's settings (RetinaNet 1x Swin-T; Cascade Mask R-CNN 1x "
                     "Swin-T/S/B), so no reference rows were added")
    with_masks = any(f"segm_{key}" in row and row[f"segm_{key}"] is not None for row in rows for key in METRIC_KEYS)
    return Table(_columns(with_masks), rows, notes)


# --------------------------------------------------------------------------------------------- rendering

def _number(stat: Stat, decimals: int, plus_minus: str = " ± ") -> str:
    sign = "+" if stat.signed else ""
    text = f"{round(stat.mean, decimals) + 0.0:{sign}.{decimals}f}"  # + 0.0: no "-0.0"
    if stat.std is not None:
        text += f"{plus_minus}{stat.std:.{decimals}f}"
    return text


def _cell_text(row: dict, column: Column, plus_minus: str = " ± ") -> str:
    value = row.get(column.key)
    if value is None:
        return ""
    if isinstance(value, Stat):
        return _number(value, column.decimals, plus_minus)
    return str(value)


def _markdown(table: Table) -> str:
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |",
             "|" + "|".join("---:" if c.numeric else ":---" for c in table.columns) + "|"]
    for row in table.rows:
        cells = [_cell_text(row, c).replace("|", "\\|") or "–" for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"Note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = []
    for column in table.columns:
        header += [column.key, f"{column.key}_std"] if column.numeric else [column.key]
    writer.writerow(header)
    for row in table.rows:
        cells: list[Any] = []
        for column in table.columns:
            value = row.get(column.key)
            if column.numeric:
                cells += ["", ""] if value is None else [round(value.mean, 4),
                                                          "" if value.std is None else round(value.std, 4)]
            else:
                cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue()


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_text(text: str) -> str:
    escaped = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return escaped.replace("Δ", r"$\Delta$").replace("−", "$-$").replace("±", r"$\pm$").replace("–", "--")


def _latex(table: Table) -> str:
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\hline",
             " & ".join(_latex_text(c.header) for c in table.columns) + r" \\", r"\hline"]
    for row in table.rows:
        lines.append(" & ".join(_latex_text(_cell_text(row, c)) for c in table.columns) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    lines += [f"% note: {' '.join(note.split())}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _json(table: Table) -> str:
    def cell(value: Any) -> Any:
        if isinstance(value, Stat):
            return {"mean": value.mean, "std": value.std, "n": value.n}
        return value

    document = {"schema": "efficienttrain-det/compare-v1",
                "columns": [{"key": c.key, "header": c.header} for c in table.columns],
                "rows": [{c.key: cell(row.get(c.key)) for c in table.columns} for row in table.rows],
                "notes": table.notes}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def render(table: Table, fmt: str = "markdown") -> str:
    """The table as markdown (notes below), csv (no notes), latex (notes as % comments) or json."""
    renderers = {"markdown": _markdown, "csv": _csv, "latex": _latex, "json": _json}
    if fmt not in renderers:
        raise UserInputError(f"--format {fmt!r} is unknown: use one of {', '.join(FORMATS)}")
    return renderers[fmt](table)


# --------------------------------------------------------------------------------------------- CLI

class _ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one UserInputError line (exit 2) like every other input error."""

    def error(self, message: str) -> None:
        raise UserInputError(f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Load runs, build the table, print it or write it atomically to --out."""
    parser = _ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work_dirs", nargs="+", help="detection work dirs (searched recursively)")
    parser.add_argument("--format", default="markdown", choices=FORMATS)
    parser.add_argument("--out", help="write the table to this file instead of stdout")
    parser.add_argument("--paper", action="store_true", help="add the paper's reference rows where they match")
    args = parser.parse_args(argv)
    table = build_table(load_runs(args.work_dirs), paper=args.paper)
    text = render(table, args.format)
    if args.format == "csv":
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise UserInputError(f"--out {out} is a folder: give a file name such as {out / 'compare.md'}")
    try:
        write_text_atomic(text, out)
    except OSError as err:
        raise UserInputError(f"--out {out}: cannot write ({err.strerror or err}): choose a writable path") from None
    print(f"wrote {out} ({len(table.rows)} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
