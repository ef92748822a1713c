"""`<work_dir>/seg_metrics.json` (docs/FORMATS.md): mmseg's IoUMetric numbers of one segmentor checkpoint.

One file per work dir holds both test modes of the checkpoint: `single_scale` (plain `tools/test.py`) and
`ms_flip` (`tools/test.py --tta`, multi-scale + flip). Each call fills its own block and keeps the other
one when it belongs to the same checkpoint (sha256) tested with the same resolved config; otherwise the
other block is dropped, so the file never mixes two models. Values are fractions (0..1) like the AP values
of coco_metrics.json: IoUMetric reports percent rounded to 2 decimals, divided here by 100.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from etcore.checkpoint_io import write_text_atomic
from etcore.formats import SEG_METRICS_FILE, SEG_METRICS_SCHEMA, SEG_MODES, UNREADABLE_IMAGES_KEY
from finetune.det_metrics import ids_sha256

METRIC_NAMES = ("mIoU", "mAcc", "aAcc")


def iou_metrics(results: dict) -> dict[str, float | None]:
    """{'mIoU': 0.4451, 'mAcc': .., 'aAcc': ..} from IoUMetric's {'mIoU': 44.51, ...} (a NaN becomes None)."""
    metrics: dict[str, float | None] = {}
    for key, value in results.items():
        name = str(key).split("/")[-1]
        if name in METRIC_NAMES:
            number = float(value)
            metrics[name] = round(number / 100.0, 6) if math.isfinite(number) else None
    return metrics


def segmentor_name(resolved: dict) -> str:
    """The run's segmentor label: `benchmark.segmentor` (e.g. 'upernet'), else the decode head's type."""
    benchmark = resolved.get("benchmark") or {}
    if benchmark.get("segmentor"):
        return str(benchmark["segmentor"])
    head = (resolved.get("model") or {}).get("decode_head") or {}
    kind = head.get("type", "") if isinstance(head, dict) else ""
    return "upernet" if kind == "UPerHead" else str(kind).lower() or "segmentor"


def seg_record(
    *,
    config: str,
    checkpoint: str,
    checkpoint_sha256: str,
    resolved: dict,
    seed: int | None,
    pretrained: str | None,
    mode: str,
    metrics: dict[str, float | None],
    predictions: str | None,
    bootstrap: dict[str, Any] | None = None,
    unreadable: list[str] | None = None,
) -> dict[str, Any]:
    """The seg_metrics.json object of docs/FORMATS.md, with one mode's block filled (and its bootstrap draws;
    `unreadable`: the training images the run skipped)."""
    if mode not in SEG_MODES:
        raise ValueError(f"unknown test mode {mode!r}")
    model = resolved.get("model") or {}
    backbone = model.get("backbone") or {}
    benchmark = resolved.get("benchmark") or {}
    return {
        "schema": SEG_METRICS_SCHEMA,
        "config": config,
        "checkpoint": checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "segmentor": segmentor_name(resolved),
        "backbone": benchmark.get("backbone") or backbone.get("model_name") or backbone.get("type"),
        "schedule": benchmark.get("schedule"),
        "seed": seed,
        "pretrain_checkpoint": pretrained,
        UNREADABLE_IMAGES_KEY: unreadable,
        "metrics": {mode: metrics},
        "predictions": {mode: predictions},
        **({"bootstrap": {mode: bootstrap}} if bootstrap else {}),
        "resolved_config": resolved,
    }


def merge_with_existing(record: dict, path: str | os.PathLike) -> tuple[dict, str | None]:
    """`record` plus the other mode's block of the file at `path` when it describes the same test.

    Returns (merged record, note): the note says why an existing block was dropped (None if nothing was).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            old = json.load(handle)
    except (OSError, ValueError):
        return record, None
    if not isinstance(old, dict) or old.get("schema") != SEG_METRICS_SCHEMA:
        return record, f"{path} was not a {SEG_METRICS_SCHEMA} file; replaced"
    same = all(old.get(key) == record[key] for key in ("config", "checkpoint_sha256", "resolved_config"))
    kept = [m for m in (old.get("metrics") or {}) if m in SEG_MODES and m not in record["metrics"]]
    if not kept:
        return record, None
    if not same:
        return record, (
            f"{path} held {', '.join(kept)} results of another checkpoint or config; they were dropped "
            f"(re-run tools/test.py{' --tta' if SEG_MODES[1] in kept else ''} for them)"
        )
    merged = dict(record, metrics=dict(record["metrics"]), predictions=dict(record["predictions"]))
    merged["bootstrap"] = dict(record.get("bootstrap") or {})
    for mode in kept:
        merged["metrics"][mode] = old["metrics"][mode]
        merged["predictions"][mode] = (old.get("predictions") or {}).get(mode)
        if mode in (old.get("bootstrap") or {}):
            merged["bootstrap"][mode] = old["bootstrap"][mode]
    if not merged["bootstrap"]:
        del merged["bootstrap"]
    merged["metrics"] = {m: merged["metrics"][m] for m in SEG_MODES if m in merged["metrics"]}
    merged["predictions"] = {m: merged["predictions"].get(m) for m in merged["metrics"]}
    return merged, None


def write_seg_metrics(record: dict, path: str | os.PathLike) -> tuple[str, str | None]:
    """Merge `record` into the file at `path` (see `merge_with_existing`) and write it atomically."""
    merged, note = merge_with_existing(record, path)
    return str(write_text_atomic(json.dumps(merged, indent=2) + "\n", path)), note


def image_confusions(dataset: dict, predictions: Path, root: Path) -> tuple[list[str], Any]:
    """The test images' names and one confusion matrix per image (images x classes x classes, int64), from the
    saved label maps.

    `dataset` is the resolved test dataset (its label folder, classes and reduce_zero_label: ADE style, class
    id + 1 with 0 ignored); numpy only, so the check does not share code with mmseg's IoUMetric.
    """
    import cv2
    import numpy as np

    labels = Path(dataset["data_root"]) / dataset["data_prefix"]["seg_map_path"]
    labels = labels if labels.is_absolute() else root / labels
    classes = len(dataset["metainfo"]["classes"])
    shift = 1 if dataset.get("reduce_zero_label") else 0
    matrices, names = [], []
    for truth_file in sorted(labels.glob("*.png")):
        names.append(truth_file.name)
        truth = cv2.imread(str(truth_file), cv2.IMREAD_UNCHANGED).astype(np.int64) - shift
        predicted = cv2.imread(str(predictions / truth_file.name), cv2.IMREAD_UNCHANGED).astype(np.int64) - shift
        kept = (truth >= 0) & (truth < classes)
        matrices.append(np.bincount(truth[kept] * classes + predicted[kept], minlength=classes**2))
    return names, np.asarray(matrices, np.int64).reshape(-1, classes, classes)


def confusion_scores(confusion: Any) -> dict[str, float]:
    """mIoU, mAcc and aAcc (fractions) of one confusion matrix (rows: truth); classes never seen are left out."""
    import numpy as np

    hits = np.diag(confusion).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "mIoU": float(np.nanmean(hits / (confusion.sum(0) + confusion.sum(1) - hits))),
            "mAcc": float(np.nanmean(hits / confusion.sum(1))),
            "aAcc": float(hits.sum() / confusion.sum()),
        }


def bootstrap_seg(confusions: Any, draws: int, seed: int = 0, names: list[str] | None = None) -> dict[str, Any]:
    """mIoU, mAcc and aAcc on `draws` resamples (with replacement) of the test images (per-image confusions).

    The draws depend only on `seed` and the number of images, so two runs on the same images pair draw by draw.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    count = len(confusions)
    values: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for _ in range(draws):
        scores = confusion_scores(confusions[rng.integers(0, count, count)].sum(0))
        for name in METRIC_NAMES:
            values[name].append(round(scores[name], 6))
    fingerprint = {"images_sha256": ids_sha256(names)} if names is not None else {}
    return {"seed": seed, "draws": draws, "images": count, **fingerprint, **values}


def verify_seg_predictions(work_dir: Path, root: Path) -> dict[str, float]:
    """Re-compute mIoU, mAcc and aAcc of every tested mode from the saved predictions; raise RuntimeError where
    they disagree with seg_metrics.json. Relative paths are taken from `root`.

    One confusion matrix per mode over the ground-truth label maps the test used (`image_confusions`).
    IoUMetric rounds percent to 2 decimals, so agreement means |difference| <= 5e-5.
    """
    doc = json.loads((work_dir / SEG_METRICS_FILE).read_text())
    dataset = doc["resolved_config"]["test_dataloader"]["dataset"]
    worst: dict[str, float] = {}
    for mode, recorded in doc["metrics"].items():
        confusion = image_confusions(dataset, Path(doc["predictions"][mode]), root)[1].sum(0)
        for name, value in confusion_scores(confusion).items():
            diff = abs(value - float(recorded[name]))
            worst[f"{mode}/{name}"] = diff
            if diff > 5e-5 + 1e-9:
                raise RuntimeError(
                    f"{work_dir}: {mode} {name} is {recorded[name]} in {SEG_METRICS_FILE} but the saved "
                    f"predictions give {value:.4f}"
                )
    return worst
