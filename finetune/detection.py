"""The mmdet path of `tools/train.py` and `tools/test.py`: the data checked up front, and the test that writes
`coco_metrics.json` (`finetune.det_metrics`). `finetune.segmentation` is the same for mmseg configs.

The checks before any runner starts: the data root, annotation files and image folders exist, and every
COCO annotation file is valid and has the classes the heads were built for (`finetune.coco_validation`).
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
from typing import Sequence

from mmengine.config import Config
from mmengine.dist import is_main_process

from etcore.checkpoint_io import write_text_atomic
from etcore.errors import UserInputError
from etcore.formats import DETECTIONS_PREFIX, METRICS_FILE
from finetune import classes
from finetune.checkpoints import load_model_checkpoint, training_facts
from finetune.complexity import zoo_facts
from finetune.config import check_data, evaluators_of, validate_annotations
from finetune.det_metrics import bootstrap_record, coco_evaluators, empty_detection_metrics, metrics_record
from finetune.images import check_images, skipped_in_training
from finetune.runner import build_runner


def check_det_data(cfg: Config, loader_keys: Sequence[str]) -> None:
    """Every input behind `loader_keys` exists, and each COCO annotation file is valid for the heads."""
    check_data(cfg, loader_keys)
    validate_annotations(cfg, loader_keys)


def _dump_detections_to(cfg: Config, config: str, prefix: str) -> None:
    """Have every CocoMetric keep its detections as PREFIX.bbox.json (and .segm.json)."""
    evaluators = [e for e in evaluators_of(cfg, "test_evaluator") if e.get("type") == "CocoMetric"]
    if not evaluators:
        raise UserInputError(
            f"--dump-detections: config {config} has no CocoMetric test_evaluator: "
            "drop the flag or evaluate with CocoMetric"
        )
    for evaluator in evaluators:
        evaluator["outfile_prefix"] = prefix


def test_detector(args: argparse.Namespace, cfg: Config, resolved: dict) -> int:
    """Check the data, test the checkpoint with mmengine's runner, write coco_metrics.json."""
    for flag, given in (("--tta", args.tta), ("--dump-predictions", args.dump_predictions is not None)):
        if given:
            raise UserInputError(
                f"{flag} is for segmentation (mmseg) configs; {args.config} is a detection config: drop {flag}"
            )
    check_det_data(cfg, ["test_dataloader"])
    if args.check_images:
        check_images(cfg, ["test_dataloader"])
    prefix = None
    if args.dump_detections is not None:
        prefix = args.dump_detections or osp.join(cfg.work_dir, DETECTIONS_PREFIX)
        _dump_detections_to(cfg, args.config, prefix)
    if args.bootstrap and prefix is None:
        raise UserInputError("--bootstrap resamples the dumped detections: add --dump-detections")

    from mmdet.evaluation import DumpDetResults
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    checkpoint = load_model_checkpoint(runner, args.checkpoint)
    classes.check_trained_classes(checkpoint, cfg, args.checkpoint)
    seed, pretrained = training_facts(checkpoint, cfg)
    results = runner.test()
    if not is_main_process():
        return 0
    unreadable = skipped_in_training(checkpoint)
    record = metrics_record(args.config, args.checkpoint, resolved, results, seed, pretrained, unreadable)
    record.update(zoo_facts(cfg, checkpoint, args.checkpoint, runner.logger, args.complexity))
    format_only = any(e.get("format_only") for e in coco_evaluators(cfg))
    if not record["metrics"] and not format_only:
        # CocoMetric returns nothing when the detector kept no box at all; that result is still an
        # evaluation (AP 0 wherever ground truth exists), so score it with pycocotools.
        record["metrics"] = empty_detection_metrics(cfg)
        runner.logger.warning(
            "the detector kept no detections: every AP is 0 (-1 where the split has no ground truth of that size)"
        )
    if not record["metrics"]:
        runner.logger.warning(f"no COCO bbox/segm metrics came back (format_only?): {METRICS_FILE} not written")
        return 0
    if args.bootstrap:  # the evaluation's own sampling error, per metric (docs/FORMATS.md: "bootstrap")
        ann_file = coco_evaluators(cfg)[0]["ann_file"]
        record["bootstrap"] = bootstrap_record(ann_file, prefix, list(record["metrics"]), args.bootstrap)
    path = write_text_atomic(json.dumps(record, indent=2) + "\n", osp.join(runner.work_dir, METRICS_FILE))
    runner.logger.info(f"COCO metrics written to {path}")
    return 0
