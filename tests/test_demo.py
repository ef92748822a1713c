"""tools/demo.py: the plan it runs, what it counts as finished, and its independent AP check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import embedded_demo.pipeline as demo
from det_fixtures import write_coco_instances


def test_plan_covers_every_seed_curriculum_and_detector(tmp_path: Path) -> None:
    layout = demo.Layout(root=tmp_path / "w", data=tmp_path / "d")
    steps = demo.plan(demo.PROFILES["smoke"], [0, 1], layout)
    kinds = [step.kind for step in steps]
    assert kinds[0] == "data" and kinds.count("pretrain") == 4
    assert kinds.count("train") == kinds.count("test") == 2 * 2 * 2  # seeds x curricula x detectors
    assert kinds.index("train") > max(i for i, k in enumerate(kinds) if k == "pretrain")
    assert not any(step.is_done() for step in steps[1:])  # nothing exists yet


def test_pretrain_counts_as_done_only_with_the_requested_provenance(tmp_path: Path) -> None:
    work = tmp_path / "pt"
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    work.mkdir()
    provenance = {"model_name": "resnet18", "curriculum": {"name": "baseline"}, "epochs": 20, "seed": 0}
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    assert not demo.pretrain_is_done(work, "resnet18", "efficienttrain", 20, 0)
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 1)
    (work / "final.pth").write_bytes(b"truncated")
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0)


def _run_dir(tmp_path: Path, recorded_ap: float) -> Path:
    """A finished detection work dir whose detections are the ground truth itself (AP 1.0 by construction)."""
    coco = write_coco_instances(tmp_path / "coco")
    ann_file = coco / "annotations" / "instances_val.json"
    truth = json.loads(ann_file.read_text())
    run = tmp_path / "run"
    run.mkdir()
    (run / "iter_4.pth").write_bytes(b"weights")
    (run / "last_checkpoint").write_text(str(run / "iter_4.pth"))
    detections = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in truth["annotations"]
    ]
    (run / "detections.bbox.json").write_text(json.dumps(detections))
    metrics = {"bbox": {"AP": recorded_ap, "AP50": 1.0, "AP75": 1.0, "APs": 1.0, "APm": 1.0, "APl": -1.0}}
    areas = [a["area"] for a in truth["annotations"]]
    for name, low, high in (("APs", 0, 32**2), ("APm", 32**2, 96**2), ("APl", 96**2, 1e10)):
        metrics["bbox"][name] = 1.0 if any(low <= a < high for a in areas) else -1.0
    (run / "coco_metrics.json").write_text(
        json.dumps({"metrics": metrics, "resolved_config": {"test_evaluator": {"ann_file": str(ann_file)}}})
    )
    return run


def test_recorded_ap_must_match_pycocotools_on_the_dumped_detections(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, recorded_ap=1.0)
    assert demo.det_train_is_done(run, 4) and not demo.det_train_is_done(run, 8)
    assert max(demo.verify_with_pycocotools(run).values()) <= 5e-4
    assert demo.metrics_are_current(run)
    doc = json.loads((run / "coco_metrics.json").read_text())
    doc["metrics"]["bbox"]["AP"] = 0.5
    (run / "coco_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="bbox AP is 0.5 in coco_metrics.json but pycocotools gives 1.0000"):
        demo.verify_with_pycocotools(run)
    assert not demo.metrics_are_current(run)  # so a rerun evaluates again
