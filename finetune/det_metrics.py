"""`<work_dir>/coco_metrics.json` (docs/FORMATS.md): mmdet's CocoMetric numbers of one detector checkpoint,
and the one pycocotools evaluation the project runs itself.

`coco_stats` is that evaluation: it scores an empty result list too (pycocotools' `loadRes` refuses one),
and serves both `tools/test.py` (a detector that kept nothing) and `verify_detections`, which re-computes
every AP of a metrics file from the detections `--dump-detections` kept and fails when they disagree.
`bootstrap_stats` gives the same six numbers on resamples of the test images: the evaluation's own sampling
error, which two runs on the same images can pair draw by draw.
Values are fractions (0..1); -1 where the split has no ground truth of that size, as pycocotools says.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from pathlib import Path
from typing import Any, Sequence

from etcore.formats import DETECTIONS_PREFIX, METRICS_FILE, METRICS_SCHEMA, UNREADABLE_IMAGES_KEY

# CocoMetric's result names -> the names of docs/FORMATS.md, in pycocotools' `stats` order
AP_NAMES = {"mAP": "AP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm", "mAP_l": "APl"}
STAT_NAMES = tuple(AP_NAMES.values())
COCO_ROUNDING = 5e-4  # CocoMetric rounds to 3 decimals

_STDOUT = threading.Lock()  # redirect_stdout swaps a global: side-by-side lanes must take turns


@contextlib.contextmanager
def _quiet():
    """pycocotools' prints swallowed, one thread at a time (a study's lanes verify side by side)."""
    with _STDOUT, contextlib.redirect_stdout(io.StringIO()):
        yield


def coco_metrics(results: dict) -> dict:
    """{'bbox': {'AP': ..}, 'segm': {..}} from CocoMetric's {'coco/bbox_mAP': .., ...}."""
    metrics: dict = {}
    for key, value in results.items():
        match = re.fullmatch(r"(bbox|segm)_(mAP(?:_50|_75|_s|_m|_l)?)", key.split("/")[-1])
        if match:
            metrics.setdefault(match.group(1), {})[AP_NAMES[match.group(2)]] = float(value)
    return metrics


def metrics_record(
    config: str,
    checkpoint: str,
    resolved: dict,
    results: dict,
    seed: int | None,
    pretrained: str | None,
    unreadable: list[str] | None = None,
) -> dict:
    """The coco_metrics.json object of docs/FORMATS.md (`unreadable`: the training images the run skipped)."""
    model = resolved.get("model") or {}
    backbone = model.get("backbone") or {}
    benchmark = resolved.get("benchmark") or {}
    detector = benchmark.get("detector") or re.sub(r"(?<!^)(?=[A-Z])", "_", str(model.get("type", ""))).lower()
    return {
        "schema": METRICS_SCHEMA,
        "config": config,
        "checkpoint": checkpoint,
        "detector": detector,
        "backbone": benchmark.get("backbone") or backbone.get("model_name") or backbone.get("type"),
        "schedule": benchmark.get("schedule"),
        "seed": seed,
        "pretrain_checkpoint": pretrained,
        UNREADABLE_IMAGES_KEY: unreadable,
        "metrics": coco_metrics(results),
        "resolved_config": resolved,
    }


def coco_stats(truth: Any, results: Sequence[dict], iou_type: str) -> list[float]:
    """pycocotools' six AP numbers (AP, AP50, AP75, APs, APm, APl) of `results` against the COCO `truth`.

    An empty `results` is scored as a detector that found nothing (0, or -1 where there is no ground truth).
    Segmentation results lose their 'bbox' key first, as mmdet does: with one, `loadRes` would size the
    instances by box area instead of mask area.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with _quiet():  # pycocotools prints its summaries
        if results:
            if iou_type == "segm":
                results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
            found = truth.loadRes(list(results))
        else:
            found = COCO()
            found.dataset = {"images": truth.dataset["images"], "categories": truth.dataset["categories"]}
            found.dataset["annotations"] = []
            found.createIndex()
        scorer = COCOeval(truth, found, iou_type)
        scorer.evaluate(), scorer.accumulate(), scorer.summarize()
    return [float(v) for v in scorer.stats[:6]]


BOOTSTRAP_DRAWS = 200
BOOTSTRAP_SEED = 0


def _quiet_evaluator(truth: Any, results: Sequence[dict], iou_type: str) -> Any:
    """A COCOeval of `results` that has run `evaluate()` (per-image matches), or None for no results."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return None
    if iou_type == "segm":
        results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    with _quiet():
        evaluator = COCOeval(truth, truth.loadRes(list(results)), iou_type)
        evaluator.evaluate()
    return evaluator


def bootstrap_stats(
    truth: Any, results: Sequence[dict], iou_type: str, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """The six AP numbers on `draws` resamples (with replacement) of the test images, from one `evaluate()`.

    pycocotools matches detections image by image; only its `accumulate()` depends on which images count.
    Each draw re-accumulates the per-image results of the drawn images (an image drawn twice counts twice).
    The draws depend only on `seed` and the number of images, so two runs on the same test set pair draw by
    draw. Returns {"seed", "draws", "images" (how many), "images_sha256" (of the sorted image ids), and per
    name the list of values}.
    """
    import numpy as np

    evaluator = _quiet_evaluator(truth, results, iou_type)
    images = sorted(truth.getImgIds())
    header = {"seed": seed, "draws": draws, "images": len(images), "images_sha256": ids_sha256(images)}
    values: dict[str, list[float]] = {name: [] for name in STAT_NAMES}
    if evaluator is None:  # no detections: every resample scores 0 (or -1 without ground truth), as the full set
        for name, value in zip(STAT_NAMES, coco_stats(truth, [], iou_type)):
            values[name] = [round(value, 4)] * draws
        return {**header, **values}
    per_image = list(evaluator.evalImgs)
    count = len(evaluator._paramsEval.imgIds)
    blocks = len(per_image) // count  # categories x area ranges, image index fastest
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        pick = rng.integers(0, count, count)
        evaluator.evalImgs = [per_image[block * count + i] for block in range(blocks) for i in pick]
        evaluator.params.imgIds = evaluator._paramsEval.imgIds = list(range(count))
        with _quiet():
            evaluator.accumulate()
            evaluator.summarize()
        for name, value in zip(STAT_NAMES, evaluator.stats[:6]):
            values[name].append(round(float(value), 4))
    return {**header, **values}


def ids_sha256(ids: Sequence[Any]) -> str:
    """A fingerprint of a test set's image list: two bootstraps pair only on the same images."""
    import hashlib

    return hashlib.sha256(json.dumps([str(i) for i in ids]).encode()).hexdigest()


def bootstrap_record(ann_file: str | Path, prefix: str | Path, iou_types: Sequence[str], draws: int) -> dict:
    """{iou type: bootstrap_stats(...)} for the detections dumped at `prefix` (`--dump-detections`)."""
    truth = load_truth(ann_file)
    record = {}
    for iou_type in iou_types:
        dumped = Path(f"{prefix}.{iou_type}.json")
        results = json.loads(dumped.read_text()) if dumped.is_file() else []  # none kept: nothing was dumped
        record[iou_type] = bootstrap_stats(truth, results, iou_type, draws)
    return record


def load_truth(ann_file: str | Path) -> Any:
    """The COCO ground truth of `ann_file`, read quietly."""
    from pycocotools.coco import COCO

    with _quiet():
        return COCO(str(ann_file))


def coco_evaluators(cfg: Any) -> list[dict]:
    """The config's CocoMetric test evaluators."""
    evaluators = cfg.get("test_evaluator") or []
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    return [e for e in evaluators if e.get("type") == "CocoMetric"]


def empty_detection_metrics(cfg: Any) -> dict:
    """The metrics block of a run with no detections, per CocoMetric evaluator and IoU type of the config."""
    metrics: dict = {}
    for evaluator in coco_evaluators(cfg):
        truth = load_truth(evaluator["ann_file"])
        kinds = evaluator.get("metric", "bbox")
        for iou_type in [kinds] if isinstance(kinds, str) else kinds:
            stats = coco_stats(truth, [], iou_type)
            metrics[iou_type] = {name: round(value, 3) for name, value in zip(STAT_NAMES, stats)}
    return metrics


def verify_detections(work_dir: Path, root: Path) -> dict[str, float]:
    """Re-evaluate a run's dumped detections with pycocotools; raise RuntimeError where they disagree with
    its coco_metrics.json. Returns the difference of every number; relative paths are taken from `root`.
    """
    doc = json.loads((work_dir / METRICS_FILE).read_text())
    ann_file = Path(doc["resolved_config"]["test_evaluator"]["ann_file"])
    truth = load_truth(ann_file if ann_file.is_absolute() else root / ann_file)
    differences: dict[str, float] = {}
    for iou_type, recorded in doc["metrics"].items():
        results = json.loads((work_dir / f"{DETECTIONS_PREFIX}.{iou_type}.json").read_text())
        for name, value in zip(STAT_NAMES, coco_stats(truth, results, iou_type)):
            value, written = max(value, 0.0), max(float(recorded[name]), 0.0)  # -1 (no such objects) counts as 0
            differences[f"{iou_type}/{name}"] = abs(value - written)
            if abs(value - written) > COCO_ROUNDING + 1e-9:
                raise RuntimeError(
                    f"{work_dir}: {iou_type} {name} is {recorded[name]} in {METRICS_FILE} "
                    f"but pycocotools gives {value:.4f} from the dumped detections"
                )
    return differences
