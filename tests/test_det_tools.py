"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on CPU, on generated COCO data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "det_configs" / "tiny"
RETINANET = TINY / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
CASCADE = TINY / "cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo_efficienttrain.py"
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[:6]


@pytest.fixture(scope="module")
def data_root(coco_large_objects: Path) -> Path:
    """Large objects: a barely trained Cascade R-CNN's boxes already overlap some of them."""
    return coco_large_objects


@pytest.fixture(scope="module")
def small_objects_root(coco_small_objects: Path) -> Path:
    """Objects of about the size of RetinaNet's smallest anchors (the top boxes of an untrained model)."""
    return coco_small_objects


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(list(args), cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


def train(config: Path, work_dir: Path, data_root: Path, iters: int, *extra: str) -> subprocess.CompletedProcess:
    return run(
        sys.executable,
        "tools/train.py",
        str(config),
        "--work-dir",
        str(work_dir),
        *extra,
        "--cfg-options",
        f"data_root={data_root}/",
        "model.backbone.checkpoint=None",
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={iters}",
    )


def pycocotools_stats(gt_file: Path, results_file: Path, iou_type: str) -> dict:
    coco_gt = COCO(str(gt_file))
    results = json.loads(Path(results_file).read_text())
    if iou_type == "segm":  # as mmdet's CocoMetric: with 'bbox' present, loadRes sizes instances by box area
        results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return {name: round(float(v), 3) for name, v in zip(STAT_NAMES, coco_eval.stats[:6])}


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def check_metrics_against_pycocotools(work_dir: Path, data_root: Path, iou_types: tuple) -> dict:
    record = json.loads((work_dir / "coco_metrics.json").read_text())
    gt = data_root / "annotations" / "instances_val.json"
    assert set(record["metrics"]) == set(iou_types)
    for iou_type in iou_types:
        detections = json.loads((work_dir / f"detections.{iou_type}.json").read_text())
        assert detections, f"no {iou_type} detections dumped"
        assert record["metrics"][iou_type] == pycocotools_stats(gt, work_dir / f"detections.{iou_type}.json", iou_type)
    return record


def test_retinanet_trains_resumes_and_its_map_matches_pycocotools(tmp_path, small_objects_root):
    data_root = small_objects_root
    work_dir = tmp_path / "retina"
    assert_ok(train(RETINANET, work_dir, data_root, 4))
    assert (work_dir / "iter_4.pth").is_file()
    provenance = json.loads((work_dir / "pretrain_provenance.json").read_text())
    assert provenance["checkpoint"] is None

    # --resume alone continues from the work dir's last checkpoint
    resumed = train(RETINANET, work_dir, data_root, 6, "--resume")
    assert_ok(resumed)
    assert (work_dir / "iter_6.pth").is_file()
    log = max(work_dir.glob("*/*.log")).read_text()
    assert "Auto resumed from the latest checkpoint" in log and "resumed epoch: 0, iter: 4" in log

    # untrained scores are ~0.01, under the default threshold: keep every box so there is something to score
    tested = run(
        sys.executable,
        "tools/test.py",
        str(RETINANET),
        str(work_dir / "iter_6.pth"),
        "--work-dir",
        str(work_dir),
        "--dump-detections",
        "--out",
        str(work_dir / "preds.pkl"),
        "--cfg-options",
        f"data_root={data_root}/",
        "model.test_cfg.score_thr=0.0",
    )
    assert_ok(tested)
    assert (work_dir / "preds.pkl").is_file()
    record = check_metrics_against_pycocotools(work_dir, data_root, ("bbox",))
    assert record["metrics"]["bbox"]["AP50"] > 0  # 100 anchor-sized boxes per image: some hit
    assert record["schema"] == "efficienttrain-det/metrics-v1"
    assert (record["detector"], record["backbone"], record["schedule"], record["seed"]) == (
        "retinanet",
        "convnext_atto",
        "tiny",
        0,
    )
    assert record["checkpoint"] == str(work_dir / "iter_6.pth")
    assert record["config"] == str(RETINANET)
    assert record["pretrain_checkpoint"] is None  # what training used, read from the checkpoint's meta
    assert record["resolved_config"]["model"]["backbone"]["model_name"] == "convnext_atto"
    assert "work_dir" not in record["resolved_config"] and "load_from" not in record["resolved_config"]


def test_cascade_mask_rcnn_trains_and_its_box_and_mask_map_match_pycocotools(tmp_path, data_root):
    work_dir = tmp_path / "cascade"
    assert_ok(train(CASCADE, work_dir, data_root, 3))
    tested = run(
        sys.executable,
        "tools/test.py",
        str(CASCADE),
        str(work_dir / "iter_3.pth"),
        "--work-dir",
        str(work_dir),
        "--dump-detections",
        "--cfg-options",
        f"data_root={data_root}/",
    )
    assert_ok(tested)
    record = check_metrics_against_pycocotools(work_dir, data_root, ("bbox", "segm"))
    # Three iterations from random init of the demo's slim heads detect nothing yet (AP 0 is expected), so the
    # non-trivial part is that every validation image has boxes and masks in the dumps pycocotools re-scored.
    val_file = data_root / "annotations" / "instances_val.json"
    val_images = {image["id"] for image in json.loads(val_file.read_text())["images"]}
    for kind in ("bbox", "segm"):
        dumped = json.loads((work_dir / f"detections.{kind}.json").read_text())
        assert {d["image_id"] for d in dumped} == val_images
    assert all("counts" in d["segmentation"] for d in dumped)
    assert (record["detector"], record["backbone"]) == ("cascade_mask_rcnn", "resnet18")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dist_train_runs_two_cpu_processes(tmp_path, data_root):
    work_dir = tmp_path / "dist"
    result = run(
        "bash",
        "tools/dist_train.sh",
        str(RETINANET),
        "2",
        "--work-dir",
        str(work_dir),
        "--cfg-options",
        f"data_root={data_root}/",
        "model.backbone.checkpoint=None",
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        env={"PYTHON": sys.executable, "PORT": str(_free_port())},
    )
    assert_ok(result)
    log = max(work_dir.glob("*/*.log")).read_text()
    assert "Distributed training: True" in log and "GPU number: 2" in log  # mmengine's world-size line
    assert (work_dir / "iter_2.pth").is_file()


@pytest.mark.parametrize("case", ["config", "data_root", "pretrained", "checkpoint"])
def test_user_errors_are_one_line_exit_2_and_leave_nothing(tmp_path, data_root, case):
    work_dir = tmp_path / "wd"
    if case == "config":
        args = ["tools/train.py", "det_configs/nope.py", "--work-dir", str(work_dir)]
        named = "det_configs/nope.py"
    elif case == "data_root":
        args = [
            "tools/train.py",
            str(RETINANET),
            "--work-dir",
            str(work_dir),
            "--cfg-options",
            f"data_root={tmp_path}/missing/",
        ]
        named = f"{tmp_path}/missing/"
    elif case == "pretrained":  # the config's default pretraining checkpoint has not been made here
        args = [
            "tools/train.py",
            str(RETINANET),
            "--work-dir",
            str(work_dir),
            "--cfg-options",
            f"data_root={data_root}/",
            f"model.backbone.checkpoint={tmp_path}/pt/final.pth",
        ]
        named = f"{tmp_path}/pt/final.pth"
    else:
        args = [
            "tools/test.py",
            str(RETINANET),
            str(tmp_path / "epoch_1.pth"),
            "--work-dir",
            str(work_dir),
            "--cfg-options",
            f"data_root={data_root}/",
        ]
        named = str(tmp_path / "epoch_1.pth")
    result = run(sys.executable, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not work_dir.exists()
