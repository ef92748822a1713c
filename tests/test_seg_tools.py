"""tools/train.py, tools/test.py (single scale and --tta) and tools/dist_train.sh on a tiny UperNet, on CPU, on the
demo generator's ADE20K-layout data; the mIoU of seg_metrics.json is recomputed from the saved predictions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from etcore.errors import UserInputError
from etcore.formats import SEG_METRICS_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
NUM_CLASSES = 10


@pytest.fixture(scope="module")
def ade_root(demo_data: Path) -> Path:
    return demo_data / "ade"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(list(args), cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=900)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def options(data_root: Path, iters: int | None = None) -> list[str]:
    opts = ["--cfg-options", f"data_root={data_root}/", "model.backbone.checkpoint=None"]
    if iters is not None:
        opts += [f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={iters}"]
    return opts


def numpy_metrics(predictions: Path, labels: Path) -> dict[str, float]:
    """mIoU, mAcc, aAcc from the saved label maps and the ground truth: one confusion matrix, numpy only.

    Both are ADE-style files (class id + 1, 0 = ignored in the ground truth); a class absent from the ground
    truth and from the predictions has no IoU and is left out of the means, as IoUMetric does.
    """
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    files = sorted(labels.glob("*.png"))
    assert sorted(p.name for p in predictions.glob("*.png")) == [p.name for p in files]
    for truth_file in files:
        truth = cv2.imread(str(truth_file), cv2.IMREAD_UNCHANGED).astype(np.int64) - 1
        predicted = cv2.imread(str(predictions / truth_file.name), cv2.IMREAD_UNCHANGED).astype(np.int64) - 1
        assert predicted.shape == truth.shape and predicted.min() >= 0 and predicted.max() < NUM_CLASSES
        kept = truth >= 0
        confusion += np.bincount(truth[kept] * NUM_CLASSES + predicted[kept], minlength=NUM_CLASSES**2).reshape(
            NUM_CLASSES, NUM_CLASSES
        )
    hits = np.diag(confusion).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = hits / (confusion.sum(0) + confusion.sum(1) - hits)
        acc = hits / confusion.sum(1)
    return {"mIoU": float(np.nanmean(iou)), "mAcc": float(np.nanmean(acc)), "aAcc": hits.sum() / confusion.sum()}


@pytest.mark.slow
@pytest.mark.subprocess
def test_tiny_upernet_trains_resumes_tests_and_its_miou_matches_numpy(tmp_path, ade_root):
    work_dir = tmp_path / "upernet"
    trained = run(sys.executable, "tools/train.py", str(UPERNET), "--work-dir", str(work_dir), *options(ade_root, 2))
    assert_ok(trained)
    assert (work_dir / "iter_2.pth").is_file()
    assert json.loads((work_dir / "pretrain_provenance.json").read_text())["checkpoint"] is None
    assert "images and label maps checked" in trained.stdout

    resumed = run(
        sys.executable, "tools/train.py", str(UPERNET), "--work-dir", str(work_dir), "--resume", *options(ade_root, 3)
    )
    assert_ok(resumed)
    log = max(work_dir.glob("*/*.log")).read_text()
    assert "Auto resumed from the latest checkpoint" in log and "iter: 2" in log
    checkpoint = work_dir / "iter_3.pth"
    assert checkpoint.is_file() and not list(work_dir.glob(".*.tmp"))

    for extra in ([], ["--tta"]):
        tested = run(
            sys.executable,
            "tools/test.py",
            str(UPERNET),
            str(checkpoint),
            "--work-dir",
            str(work_dir),
            "--dump-predictions",
            "--out",
            str(work_dir / f"preds{len(extra)}.pkl"),
            *extra,
            *options(ade_root),
        )
        assert_ok(tested)
        assert (work_dir / f"preds{len(extra)}.pkl").is_file()

    record = json.loads((work_dir / "seg_metrics.json").read_text())
    assert record["schema"] == SEG_METRICS_SCHEMA
    assert (record["segmentor"], record["backbone"], record["schedule"], record["seed"]) == (
        "upernet",
        "resnet18",
        "tiny",
        0,
    )
    assert record["checkpoint"] == str(checkpoint) and record["config"] == str(UPERNET)
    assert record["pretrain_checkpoint"] is None
    assert list(record["metrics"]) == ["single_scale", "ms_flip"]  # the --tta call kept the single-scale block
    assert "work_dir" not in record["resolved_config"] and "load_from" not in record["resolved_config"]
    for mode in ("single_scale", "ms_flip"):
        predictions = Path(record["predictions"][mode])
        assert predictions == work_dir / "predictions" / mode
        recomputed = numpy_metrics(predictions, ade_root / "annotations" / "validation")
        for name, value in recomputed.items():
            # IoUMetric rounds percent to 2 decimals: fractions agree to 5e-5
            assert record["metrics"][mode][name] == pytest.approx(value, abs=5e-5 + 1e-9), (mode, name)
    single = cv2.imread(str(work_dir / "predictions" / "single_scale" / "000001.png"), cv2.IMREAD_UNCHANGED)
    flipped = cv2.imread(str(work_dir / "predictions" / "ms_flip" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert single.shape == flipped.shape and not np.array_equal(
        single, flipped
    )  # 6 scales averaged (the tiny config's TTA)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.subprocess
def test_dist_train_and_test_run_a_segmentor_on_two_cpu_processes(tmp_path, ade_root):
    work_dir = tmp_path / "dist"
    env = {"PYTHON": sys.executable}
    trained = run(
        "bash",
        "tools/dist_train.sh",
        str(UPERNET),
        "2",
        "--work-dir",
        str(work_dir),
        *options(ade_root, 2),
        env={**env, "PORT": str(_free_port())},
    )
    assert_ok(trained)
    assert "Distributed training: True" in max(work_dir.glob("*/*.log")).read_text()
    tested = run(
        "bash",
        "tools/dist_test.sh",
        str(UPERNET),
        str(work_dir / "iter_2.pth"),
        "2",
        "--work-dir",
        str(work_dir),
        *options(ade_root),
        env={**env, "PORT": str(_free_port())},
    )
    assert_ok(tested)
    assert "single_scale" in json.loads((work_dir / "seg_metrics.json").read_text())["metrics"]


# ------------------------------------------------------------------------ in-process: flags and records


@pytest.mark.parametrize(
    "config, flag, named",
    [
        (UPERNET, ["--dump-detections"], "--dump-predictions"),
        (RETINANET, ["--tta"], "--tta is for segmentation"),
        (RETINANET, ["--dump-predictions"], "--dump-predictions is for segmentation"),
    ],
)
def test_flags_of_the_other_kind_are_user_errors(tmp_path, coco_tiny, ade_root, config, flag, named):
    from finetune.test import main

    checkpoint = tmp_path / "iter_1.pth"
    checkpoint.write_bytes(b"not read: the flag is refused first")
    data = ade_root if config == UPERNET else coco_tiny
    with pytest.raises(UserInputError, match=named):
        main([str(config), str(checkpoint), "--work-dir", str(tmp_path / "w"), *flag, *options(data)])


def _record(mode: str, sha: str, miou: float) -> dict:
    from finetune.seg_metrics import seg_record

    return seg_record(
        config="c.py",
        checkpoint="w/iter_3.pth",
        checkpoint_sha256=sha,
        resolved={"model": {"backbone": {"model_name": "resnet18"}}, "benchmark": {"segmentor": "upernet"}},
        seed=0,
        pretrained=None,
        mode=mode,
        metrics={"mIoU": miou, "mAcc": 0.5, "aAcc": 0.9},
        predictions=None,
    )


def test_seg_metrics_keeps_the_other_mode_of_the_same_checkpoint_only(tmp_path):
    from finetune.seg_metrics import iou_metrics, write_seg_metrics

    assert iou_metrics({"mIoU": 44.51, "mAcc": float("nan"), "aAcc": 81.2, "other": 1}) == {
        "mIoU": 0.4451,
        "mAcc": None,
        "aAcc": 0.812,
    }
    path = tmp_path / "seg_metrics.json"
    write_seg_metrics(_record("ms_flip", "a", 0.46), path)
    _, note = write_seg_metrics(_record("single_scale", "a", 0.44), path)
    document = json.loads(path.read_text())
    assert note is None and list(document["metrics"]) == ["single_scale", "ms_flip"]
    assert (document["metrics"]["single_scale"]["mIoU"], document["metrics"]["ms_flip"]["mIoU"]) == (0.44, 0.46)
    _, note = write_seg_metrics(_record("single_scale", "b", 0.30), path)  # another checkpoint's weights
    assert list(json.loads(path.read_text())["metrics"]) == ["single_scale"] and "ms_flip" in note


# ------------------------------------------------------------------------ in-process: the data checks


def _ade_copy(ade_root: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(ade_root, dest))


def _check(root: Path, config: Path = UPERNET) -> list[str]:
    from finetune.config import load_config
    from finetune.segmentation import check_seg_data

    cfg = load_config(str(config), {"data_root": f"{root}/"})
    return check_seg_data(cfg, ["train_dataloader", "val_dataloader"])


def test_seg_data_checks_pass_on_the_demo_set_and_accept_the_ignore_value(tmp_path, ade_root):
    root = _ade_copy(ade_root, tmp_path / "ade")
    label = root / "annotations" / "training" / "000001.png"
    values = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    values[0, :3] = 255  # the ignore value is valid anywhere
    cv2.imwrite(str(label), values)
    notes = _check(root)
    assert notes[0].startswith("train_dataloader: 6 images and label maps checked")


@pytest.mark.parametrize(
    "damage, named",
    [
        ("missing", "annotation file {root}/annotations/training/000002.png (train_dataloader) does not exist"),
        ("size", "is 40x30 but its image"),
        ("value", "holds value 11"),
        ("rgb", "has 3 channels"),
        ("no_folder", "annotation folder {root}/annotations/validation (val_dataloader) does not exist"),
    ],
)
def test_seg_data_problems_are_one_user_error(tmp_path, ade_root, damage, named):
    root = _ade_copy(ade_root, tmp_path / "ade")
    label = root / "annotations" / "training" / "000002.png"
    if damage == "missing":
        label.unlink()
    elif damage == "size":
        cv2.imwrite(str(label), np.zeros((30, 40), np.uint8))
    elif damage == "value":
        values = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
        values[5, 5] = NUM_CLASSES + 1  # 10 classes: 0..10 and 255 are valid under reduce_zero_label
        cv2.imwrite(str(label), values)
    elif damage == "rgb":
        cv2.imwrite(str(label), np.zeros((*cv2.imread(str(label)).shape[:2], 3), np.uint8))
    else:
        import shutil

        shutil.rmtree(root / "annotations" / "validation")
    with pytest.raises(UserInputError, match=named.format(root=root).replace("(", r"\(").replace(")", r"\)")):
        _check(root)


def test_head_class_count_must_match_the_dataset(tmp_path, ade_root):
    from finetune.config import load_config
    from finetune.segmentation import check_seg_data

    cfg = load_config(str(UPERNET), {"data_root": f"{ade_root}/", "model.decode_head.num_classes": 150})
    with pytest.raises(UserInputError, match=r"decode_head.num_classes=150 but the train_dataloader dataset has 10"):
        check_seg_data(cfg, ["train_dataloader"])


def test_out_keeps_the_label_maps_not_the_logits():
    import torch

    from finetune.segmentation import DumpSegResults

    dump = DumpSegResults(out_file_path="unused.pkl")
    sample = {
        "img_path": "a.png",
        "seg_logits": {"data": torch.zeros(150, 4, 6)},
        "gt_sem_seg": {"data": torch.zeros(1, 4, 6, dtype=torch.int64)},
        "pred_sem_seg": {"data": torch.full((1, 4, 6), 149, dtype=torch.int64)},
    }
    dump.process({}, [sample])
    (kept,) = dump.results
    assert set(kept) == {"img_path", "pred_sem_seg"}
    assert kept["pred_sem_seg"]["data"].dtype == torch.uint8 and int(kept["pred_sem_seg"]["data"].max()) == 149
