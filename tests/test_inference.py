"""Inference on one's own images with the libraries' inferencers: mmdet's `DetInferencer(config, checkpoint)` and
mmseg's `MMSegInferencer(config, checkpoint)` take this suite's tiny configs and checkpoints as they are.

What is checked, and why it can fail:
* on a real photograph (matplotlib's `grace_hopper.jpg`: the mmdet and mmseg wheels ship no demo image), that
  inference runs end to end and its outputs are well formed: labels among the config's classes, scores in
  [0, 1], boxes inside the image, a label map of the image's size, the drawn image written;
* detection, on demo scenes, that the right classes come back. The tiny RetinaNet is trained here, from
  random init, on the three scenes it is then asked about, for `ITERS` iterations: long enough to know them
  (box AP50 0.95 after these 60 iterations: 15 of the 16 objects found with their class, the 16th a small
  triangle), far too short to generalise. So the check is that inference preprocesses the image and names
  the classes as training did (a wrong normalisation, channel order, resize or class list loses the scene),
  not how good the detector is: every class detected with a score of at least `CONFIDENT` is in the scene,
  and at least `RIGHT_OBJECTS` of the objects have their class on the best-scoring box that overlaps them;
* segmentation, on demo scenes, that the inferencer gives the label maps tools/test.py evaluated (its
  `--dump-predictions`, whose mIoU tests/test_seg_tools.py re-checks against the ground truth with a numpy
  confusion matrix), and the checkpoint's class names. Not against the ground truth itself: the tiny UperNet
  did not learn the scenes in 60 iterations (mIoU 59, two classes at IoU 0 on the three scenes it trained
  on), and more iterations cost more than this suite can spend; so it is trained for 2 iterations only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_resnet18_fpn_tiny-demo_baseline.py"
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"
ITERS = 60
CONFIDENT = 0.5  # every class detected with at least this score must be in the scene
RIGHT_OBJECTS = 0.8  # share of the scenes' objects whose best-scoring overlapping box (IoU >= 0.5) has their class
SAME_PIXELS = 0.995  # share of pixels on which the inferencer and tools/test.py agree (two processes' float sums)


def photograph() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def run(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def retinanet(demo_data: Path, module_tmp: Path) -> Path:
    """The tiny RetinaNet (ResNet-18, random init) trained on the demo's three test scenes."""
    root = demo_data / "coco"
    options = [
        f"data_root={root}/",
        "train_dataloader.dataset.ann_file=annotations/instances_val.json",
        "train_dataloader.dataset.data_prefix.img=val/",
        "train_dataloader.batch_size=3",
        f"param_scheduler.1.milestones=[{ITERS}]",
    ]
    common = ["model.backbone.checkpoint=None", "model.backbone.frozen_stages=-1", f"train_cfg.max_iters={ITERS}"]
    common += [f"default_hooks.checkpoint.interval={ITERS}", f"param_scheduler.1.end={ITERS}"]
    work_dir = module_tmp / "retinanet"
    run("tools/train.py", str(RETINANET), "--work-dir", str(work_dir), "--cfg-options", *common, *options)
    return work_dir / f"iter_{ITERS}.pth"


@pytest.fixture(scope="module")
def upernet(demo_data: Path, module_tmp: Path) -> Path:
    """The tiny UperNet (ResNet-18, random init) after 2 iterations, tested by tools/test.py --dump-predictions
    --show-dir (and its #Params / FLOPs measured)."""
    work_dir = module_tmp / "upernet"
    options = ["--cfg-options", f"data_root={demo_data / 'ade'}/", "model.backbone.checkpoint=None"]
    run("tools/train.py", str(UPERNET), "--work-dir", str(work_dir), *options, "train_cfg.max_iters=2",
        "train_cfg.val_interval=3", "default_hooks.checkpoint.interval=2")  # fmt: skip
    run("tools/test.py", str(UPERNET), str(work_dir / "iter_2.pth"), "--work-dir", str(work_dir),
        "--dump-predictions", "--show-dir", str(work_dir / "drawn"), *options)  # fmt: skip
    return work_dir


def _iou(box: list[float], truth: list[float]) -> float:
    """IoU of an (x1, y1, x2, y2) box and a COCO (x, y, w, h) box."""
    x, y, w, h = truth
    inter_w = max(0.0, min(box[2], x + w) - max(box[0], x))
    inter_h = max(0.0, min(box[3], y + h) - max(box[1], y))
    inter = inter_w * inter_h
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + w * h - inter)


def test_det_inferencer_finds_the_classes_of_demo_scenes(retinanet: Path, demo_data: Path) -> None:
    from mmdet.apis import DetInferencer

    inferencer = DetInferencer(model=str(RETINANET), weights=str(retinanet), device="cpu", show_progress=False)
    truth = json.loads((demo_data / "coco" / "annotations" / "instances_val.json").read_text())
    names = {c["id"]: c["name"] for c in truth["categories"]}
    classes = list(inferencer.model.dataset_meta["classes"])  # from the checkpoint, not COCO's 80
    assert classes == [names[i] for i in sorted(names)]
    right, objects = 0, 0
    for image in truth["images"]:
        annotations = [a for a in truth["annotations"] if a["image_id"] == image["id"]]
        found = inferencer(str(demo_data / "coco" / "val" / image["file_name"]), no_save_vis=True)["predictions"][0]
        detections = list(zip(found["scores"], [classes[label] for label in found["labels"]], found["bboxes"]))
        confident = {name for score, name, _ in detections if score >= CONFIDENT}
        assert confident <= {names[a["category_id"]] for a in annotations}, image["file_name"]
        for annotation in annotations:
            overlapping = [(score, name) for score, name, box in detections if _iou(box, annotation["bbox"]) >= 0.5]
            right += bool(overlapping) and max(overlapping)[1] == names[annotation["category_id"]]
            objects += 1
    assert right >= RIGHT_OBJECTS * objects, f"{right} of {objects} objects found with their class"


def test_det_inferencer_on_a_photograph_gives_well_formed_detections(retinanet: Path, tmp_path: Path) -> None:
    from mmdet.apis import DetInferencer

    inferencer = DetInferencer(model=str(RETINANET), weights=str(retinanet), device="cpu", show_progress=False)
    image = photograph()
    height, width = cv2.imread(str(image)).shape[:2]
    result = inferencer(str(image), out_dir=str(tmp_path), pred_score_thr=0.0, no_save_pred=False)
    found = result["predictions"][0]
    assert found["labels"] and len(found["labels"]) == len(found["scores"]) == len(found["bboxes"])
    assert all(0 <= label < 10 for label in found["labels"]) and all(0 <= s <= 1 for s in found["scores"])
    boxes = np.array(found["bboxes"])
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    assert boxes.min() >= 0 and (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
    drawn = cv2.imread(str(tmp_path / "vis" / image.name))
    assert drawn.shape[:2] == (height, width)
    assert json.loads((tmp_path / "preds" / f"{image.stem}.json").read_text())["labels"] == found["labels"]


def test_seg_inferencer_gives_the_evaluated_label_maps_and_labels_a_photograph(
    upernet: Path, demo_data: Path, tmp_path: Path
) -> None:
    from mmseg.apis import MMSegInferencer

    inferencer = MMSegInferencer(model=str(UPERNET), weights=str(upernet / "iter_2.pth"), device="cpu")
    assert list(inferencer.model.dataset_meta["classes"]) == json.loads(
        (demo_data / "ade" / "classes.json").read_text()
    )
    images = sorted((demo_data / "ade" / "images" / "validation").glob("*.png"))
    evaluated = upernet / "predictions" / "single_scale"  # tools/test.py's, class id + 1 as ADE20K's files
    assert sorted(p.name for p in evaluated.iterdir()) == [p.name for p in images]
    for image in images:
        predicted = inferencer(str(image))["predictions"]
        tested = cv2.imread(str(evaluated / image.name), cv2.IMREAD_UNCHANGED).astype(int) - 1
        assert predicted.shape == tested.shape == cv2.imread(str(image)).shape[:2]
        assert (predicted == tested).mean() >= SAME_PIXELS, image.name

    drawn = sorted((upernet / "drawn" / "vis_data" / "vis_image").iterdir())  # mmseg's --show-dir layout
    assert [p.name.split("_")[1] for p in drawn] == [p.name for p in images]  # test_<image>_<iteration>.png
    complexity = json.loads((upernet / "seg_metrics.json").read_text())["complexity"]
    assert complexity["params"] == sum(p.numel() for p in inferencer.model.parameters()) and complexity["flops"] > 0

    photo = photograph()
    height, width = cv2.imread(str(photo)).shape[:2]
    predicted = inferencer(str(photo), out_dir=str(tmp_path))["predictions"]
    assert predicted.shape == (height, width) and predicted.min() >= 0 and predicted.max() < 10
    assert cv2.imread(str(tmp_path / "vis" / photo.name)).shape[:2] == (height, width)
