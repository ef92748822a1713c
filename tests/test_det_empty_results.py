"""A detector that keeps no box is still evaluated: tools/test.py scores the empty result with pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.config import Config

from det_fixtures import write_coco_instances
from finetune.det_metrics import empty_detection_metrics


def test_no_detections_score_zero_where_ground_truth_exists(tmp_path: Path) -> None:
    write_coco_instances(tmp_path)
    ann_file = str(tmp_path / "annotations" / "instances_val.json")
    cfg = Config(dict(test_evaluator=dict(type="CocoMetric", ann_file=ann_file, metric=["bbox", "segm"])))
    metrics = empty_detection_metrics(cfg)
    areas = [a["area"] for a in json.loads(Path(ann_file).read_text())["annotations"]]
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 0.0 and metrics[iou_type]["AP50"] == 0.0
        # pycocotools' -1 marks an area range without ground truth (large: area > 96^2)
        assert metrics[iou_type]["APl"] == (0.0 if max(areas) > 96**2 else -1.0)
