"""Load fine-tuning runs: every `coco_metrics.json` or `seg_metrics.json` and its `pretrain_provenance.json`
(docs/FORMATS.md).

A `Run` is what one work dir says: what was trained (detector or segmentor, backbone, schedule, seed), its
metrics in percent (COCO AP, or ADE20K mIoU single-scale and ms+flip), its resolved config, and the
pretraining it started from. Malformed files are a `UserInputError` naming the file and the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from etcore.errors import UserInputError
from etcore.formats import (
    METRICS_FILE,
    METRICS_SCHEMA,
    PROVENANCE_FILE,
    SEG_METRICS_FILE,
    SEG_METRICS_SCHEMA,
    SEG_MODES,
)

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = {"bbox": "box", "segm": "mask"}
SEG_METRIC_KEYS = ("mIoU", "mAcc", "aAcc")
DETECTION, SEGMENTATION = "detection", "segmentation"
BASELINE = "baseline"


@dataclass
class Run:
    """One fine-tuning run: what was trained, its metrics (percent, None = n/a) and its pretraining.

    Detection: `metrics` = {'bbox': {'AP': ..}, 'segm': {..}}. Segmentation (`task` 'segmentation'):
    `detector` holds the segmentor ('upernet') and `metrics` = {'single_scale': {'mIoU': ..}, 'ms_flip': {..}}.
    """

    work_dir: Path
    detector: str
    backbone: str
    schedule: str
    seed: int | None  # None: the run recorded no seed
    metrics: dict[str, dict[str, float | None]]
    resolved_config: dict | None
    curriculum: str
    pretrain: dict[str, Any] = field(default_factory=dict)
    task: str = DETECTION
    # tools/test.py --bootstrap: per block ('bbox', 'single_scale', ...) its draws of each metric (percent) and
    # "key" (seed, draws, test images): two runs with the same key pair draw by draw
    bootstrap: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: str | None = None  # the config file tools/test.py was given, as given
    checkpoint: str | None = None  # the tested checkpoint, as given
    train_log: str | None = None  # the training run's log folder (<work dir>/<timestamp>), as recorded
    complexity: dict | None = None  # {'params', 'flops', 'input_shape': [H, W], 'counter'}, or None

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
        raise UserInputError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): {fix}"
        ) from None
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


def _seg_percent(value: Any, key: str, path: Path) -> float | None:
    """An IoUMetric fraction (tools/test.py divides mmseg's percent by 100) as percent; null stays None."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise UserInputError(
            f"{path}: {key} = {value!r} is not a fraction in [0, 1] or null: re-run tools/test.py to rewrite it"
        )
    return 100.0 * value


def _percent(value: Any, key: str, path: Path) -> float | None:
    """A pycocotools fraction as percent; -1 (no ground truth in that size range) becomes None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UserInputError(f"{path}: {key} = {value!r} is not a number: re-run tools/test.py")
    if value < 0:
        return None
    if value > 1:
        raise UserInputError(
            f"{path}: {key} = {value} is not a fraction in [0, 1]: AP values are written "
            "as pycocotools reports them (tools/test.py does this)"
        )
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
    name = _get(
        provenance,
        "curriculum.name",
        str,
        path,
        "the pretraining checkpoint lacks its provenance; re-create it with tools/pretrain.py",
    )
    # the cost column compares training: evaluation and checkpoint writes are left out where the run
    # recorded them apart (train_device_hours); older checkpoints fall back to their whole wall clock
    hours = provenance.get("train_device_hours", provenance.get("device_hours"))
    if hours is None and isinstance(provenance.get("wall_clock_s"), (int, float)):
        hours = provenance["wall_clock_s"] / 3600
    top1_key = "ema_top1" if record.get("weights") == "model_ema" else "final_top1"
    info.update(
        epochs=provenance.get("epochs"),
        equivalent_epochs=provenance.get("equivalent_epochs"),
        hours=hours,
        top1=provenance.get(top1_key),
        lowfreq=provenance.get("lowfreq"),  # the loader mode; absent in checkpoints older than --lowfreq direct
        budget_epochs=provenance.get("budget_epochs"),
        train_time_s=provenance.get("train_time_s"),
        val_images=provenance.get("val_images"),  # the top-1's sample size (absent in older checkpoints)
        seed=provenance.get("seed"),
    )
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
        metrics[iou_type] = {
            key: _percent(_get(block, key, (int, float), metrics_path, fix), f"metrics.{iou_type}.{key}", metrics_path)
            for key in METRIC_KEYS
        }
    run = _run(document, metrics_path, fix, "detector", metrics)
    run.bootstrap = _bootstrap(document.get("bootstrap"), metrics, _percent_scale)
    return run


def _percent_scale(value: float) -> float:
    return 100.0 * value if value >= 0 else value  # -1 (no such objects) stays -1


def _bootstrap(record: Any, metrics: dict, scale) -> dict[str, dict[str, Any]]:
    """The bootstrap draws of the blocks `metrics` has, in percent, each with its pairing key; {} without."""
    if not isinstance(record, dict):
        return {}
    found = {}
    for block in metrics:
        draws = record.get(block)
        if not isinstance(draws, dict):
            continue
        key = (draws.get("seed"), draws.get("draws"), draws.get("images_sha256") or draws.get("images"))
        found[block] = {
            "key": key,
            **{name: [scale(v) for v in values] for name, values in draws.items() if isinstance(values, list)},
        }
    return found


def _run(document: dict, metrics_path: Path, fix: str, model_key: str, metrics: dict, task: str = DETECTION) -> Run:
    """The Run of a checked metrics document: its model fields, config and the provenance beside it."""
    config = document.get("resolved_config")
    curriculum, pretrain = _pretrain_info(metrics_path.parent / PROVENANCE_FILE)
    complexity = (
        _get(document, "complexity", (dict, type(None)), metrics_path, fix) if "complexity" in document else None
    )
    if complexity is not None:
        for key, kind in (("params", int), ("flops", int), ("input_shape", list)):
            _get(document, f"complexity.{key}", kind, metrics_path, fix)
    return Run(
        work_dir=metrics_path.parent,
        detector=_get(document, model_key, str, metrics_path, fix),
        backbone=_get(document, "backbone", str, metrics_path, fix),
        schedule=_get(document, "schedule", (str, type(None)), metrics_path, fix) or "",
        seed=_get(document, "seed", (int, type(None)), metrics_path, fix),
        metrics=metrics,
        resolved_config=config if isinstance(config, dict) else None,
        curriculum=curriculum,
        pretrain=pretrain,
        task=task,
        config=_optional_text(document, "config", metrics_path, fix),
        checkpoint=_optional_text(document, "checkpoint", metrics_path, fix),
        train_log=_optional_text(document, "train_log", metrics_path, fix),
        complexity=complexity,
    )


def _optional_text(document: dict, key: str, path: Path, fix: str) -> str | None:
    """`document[key]` when it is a string, None when absent or null (files written before the key existed)."""
    return _get(document, key, (str, type(None)), path, fix) if key in document else None


def load_seg_run(metrics_path: Path) -> Run:
    """Parse one work dir's `seg_metrics.json` and `pretrain_provenance.json` into a segmentation Run."""
    fix = f"re-run tools/test.py to rewrite it (schema {SEG_METRICS_SCHEMA}, docs/FORMATS.md)"
    document = _read_json(metrics_path, fix)
    schema = document.get("schema")
    if schema != SEG_METRICS_SCHEMA:
        raise UserInputError(f"{metrics_path}: schema {schema!r} is not {SEG_METRICS_SCHEMA!r}: {fix}")
    blocks = _get(document, "metrics", dict, metrics_path, fix)
    unknown = sorted(set(blocks) - set(SEG_MODES))
    if unknown or not blocks:
        raise UserInputError(
            f"{metrics_path}: 'metrics' holds {sorted(blocks)}, expected one or both of {list(SEG_MODES)}: {fix}"
        )
    metrics: dict[str, dict[str, float | None]] = {}
    for mode in SEG_MODES:
        if mode in blocks:
            block = _get(document, f"metrics.{mode}", dict, metrics_path, fix)
            metrics[mode] = {
                key: _seg_percent(_get(block, key, (int, float, type(None)), metrics_path, fix), key, metrics_path)
                for key in SEG_METRIC_KEYS
            }
    run = _run(document, metrics_path, fix, "segmentor", metrics, task=SEGMENTATION)
    run.bootstrap = _bootstrap(document.get("bootstrap"), metrics, lambda value: 100.0 * value)
    return run


_LOADERS = {METRICS_FILE: load_run, SEG_METRICS_FILE: load_seg_run}


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run below `paths` (work dirs, searched recursively, or `coco_metrics.json` / `seg_metrics.json` files).

    A work dir that holds both files (one model tested both ways) counts as two runs.
    """
    found: dict[Path, None] = {}
    paths = [Path(p) for p in paths]
    names = " or ".join(_LOADERS)
    for path in paths:
        if path.is_file() and path.name in _LOADERS:
            found[path.resolve()] = None
        elif path.is_dir():
            for metrics_path in sorted(p for name in _LOADERS for p in path.rglob(name)):
                found[metrics_path.resolve()] = None
        elif path.exists():
            raise UserInputError(f"{path} is neither a work dir nor a {names}: pass fine-tuning work dirs")
        else:
            raise UserInputError(f"{path} does not exist: pass fine-tuning work dirs (e.g. work_dirs/demo)")
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise UserInputError(
            f"no {names} found under {shown}: run tools/test.py on the trained "
            "detectors or segmentors first, or pass the folder that holds their work dirs"
        )
    return [_LOADERS[path.name](path) for path in found]
