"""tools/gpu_check.sh: the GPU check's pieces on the CPU, and (slow) its whole dry run.

The dry run is the same code as the GPU run with the `DRY_RUN` profile (device cpu, tiny sizes, AMP off).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest

from bench import gpu_check as gc
from det_fixtures import write_coco_instances

REPO = Path(__file__).resolve().parents[1]


def test_pipeline_sizes_scale_everywhere() -> None:
    pipeline = [
        {"type": "Resize", "scale": (1333, 800), "keep_ratio": True},
        {
            "type": "RandomChoice",
            "transforms": [
                [{"type": "RandomChoiceResize", "scales": [(1333, 480), (1333, 800)], "keep_ratio": True}],
                [{"type": "RandomCrop", "crop_size": (384, 600), "allow_negative_crop": True}],
            ],
        },
        {"type": "RandomFlip", "prob": 0.5},
    ]
    gc.scale_pipeline(pipeline, 0.125)
    assert pipeline[0]["scale"] == (167, 100) and pipeline[0]["keep_ratio"] is True
    assert pipeline[1]["transforms"][0][0]["scales"] == [(167, 60), (167, 100)]
    assert pipeline[1]["transforms"][1][0]["crop_size"] == (48, 75)
    assert pipeline[2]["prob"] == 0.5
    assert gc.scale_sizes(100, 0.01) == 32  # never below one stride-32 cell


def test_counts_are_capped_in_train_and_test_cfg() -> None:
    cfg = {
        "rpn": {"sampler": {"num": 256}},
        "rpn_proposal": {"nms_pre": 2000, "max_per_img": 2000},
        "rcnn": [{"sampler": {"num": 512, "add_gt_as_proposals": True}}, {"sampler": {"num": 8}}],
    }
    gc.cap_counts(cfg, 16)
    assert cfg["rpn"]["sampler"]["num"] == 16 and cfg["rpn_proposal"] == {"nms_pre": 16, "max_per_img": 16}
    assert [r["sampler"]["num"] for r in cfg["rcnn"]] == [16, 8]
    assert cfg["rcnn"][0]["sampler"]["add_gt_as_proposals"] is True


def test_focal_loss_reference_matches_torchvision() -> None:
    import torch
    from torchvision.ops import sigmoid_focal_loss

    logits = torch.randn(64, 5) * 3
    labels = torch.randint(0, 6, (64,))  # 5 = background
    target = torch.nn.functional.one_hot(labels, 6)[:, :5].float()
    expected = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="none")
    assert torch.allclose(gc.focal_loss_reference(logits, labels), expected, atol=1e-6)


def test_ops_check_runs_on_cpu() -> None:
    result = gc.check_ops("cpu", gc.DRY_RUN)
    assert result["ok"], result
    assert result["nms"]["identical"] and 0 < result["nms"]["kept"] <= gc.DRY_RUN.nms_boxes
    assert result["roi_align"]["max_abs_diff_forward"] == 0.0  # the same CPU kernel twice
    focal = result["sigmoid_focal_loss"]
    assert "no CPU kernel" in focal.get("skipped", "") or focal["max_abs_diff_forward"] < 1e-4
    assert focal["reference_vs_torchvision"] < 1e-5


@pytest.mark.parametrize("profile", [gc.DRY_RUN, gc.GPU], ids=["dry-run", "gpu"])
def test_detection_config_is_the_real_one_with_the_checks_data(tmp_path: Path, profile: gc.Profile) -> None:
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    from finetune.config import validate_annotations

    coco = write_coco_instances(tmp_path / "data" / "coco", classes=["a_b", "c_d"], train_images=2, val_images=1)
    path, overrides = gc.detection_config(gc.CASCADE_CONFIG, coco, tmp_path / "cascade", profile, None)
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    # the demo's categories carry the config's first class names, the file lists all 80: the real check passes
    renamed = json.loads((tmp_path / "cascade" / "instances_train.json").read_text())["categories"]
    assert [c["name"] for c in renamed] == list(CocoDataset.METAINFO["classes"])
    assert [c["id"] for c in renamed[:2]] == [1, 2] and len({c["id"] for c in renamed}) == 80
    validate_annotations(cfg, ["train_dataloader", "test_dataloader"])
    real = Config.fromfile(str(REPO / gc.CASCADE_CONFIG), import_custom_modules=False)
    assert cfg.model.roi_head.bbox_head[0].num_classes == real.model.roi_head.bbox_head[0].num_classes
    assert cfg.model.backbone.model_name == real.model.backbone.model_name == gc.PRETRAIN_MODEL
    assert cfg.train_cfg.max_epochs == 1 and cfg.val_dataloader is None and cfg.val_cfg is None
    train_set = cfg.train_dataloader.dataset
    assert train_set.data_root == str(coco) + os.sep and "metainfo" not in train_set  # the config's classes
    assert cfg.test_evaluator.ann_file == str(tmp_path / "cascade" / "instances_val.json")
    assert cfg.model.backbone.checkpoint is None and overrides["data_root"] == str(coco) + os.sep
    real_pipeline = real.train_dataloader.dataset.pipeline  # Swin's multi-scale crop: sizes nested in RandomChoice
    sampler_num = cfg.model.train_cfg.rcnn[0].sampler.num
    if profile is gc.GPU:  # full size, AMP and RoI counts as configured
        assert train_set.pipeline == real_pipeline
        assert cfg.optim_wrapper.type == real.optim_wrapper.type == "AmpOptimWrapper"
        assert sampler_num == real.model.train_cfg.rcnn[0].sampler.num
    else:
        scaled = copy.deepcopy(real_pipeline)
        gc.scale_pipeline(scaled, profile.det_scale)
        assert train_set.pipeline == scaled != real_pipeline
        assert "[[167, 60], [167, 64]" in json.dumps(train_set.pipeline)  # (1333, 480) x 1/8, every size scaled
        assert cfg.optim_wrapper.type == "OptimWrapper" and sampler_num == profile.det_rois


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "tools/gpu_check.sh", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


def test_no_gpu_without_dry_run_is_one_error_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    proc = _run(["--out", str(tmp_path / "gc")])
    assert proc.returncode == 2 and proc.stderr.startswith("error: no CUDA device is visible"), proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = _run(["--dry-run"], PYTHON=str(tmp_path / "missing-python"))
    assert proc.returncode == 2 and "run make setup first" in proc.stderr


def test_dry_run_of_the_ops_step_writes_json_and_table(tmp_path: Path) -> None:
    proc = _run(["--dry-run", "--only", "ops", "--out", str(tmp_path / "gc")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gc" / "gpu_check.json").read_text())
    assert report["mode"] == "dry-run" and report["ok"] and [s["step"] for s in report["steps"]] == ["ops"]
    assert "ops" in proc.stdout and "all steps ok" in proc.stdout


@pytest.mark.manual
def test_whole_dry_run(tmp_path: Path) -> None:
    """Every step on the CPU at tiny sizes (several minutes on 2 cores): `pytest -m slow`."""
    proc = _run(["--dry-run", "--out", str(tmp_path / "gc")])
    report = json.loads((tmp_path / "gc" / "gpu_check.json").read_text())
    assert [s["step"] for s in report["steps"]] == list(gc.STEPS)
    assert proc.returncode == 0 and report["ok"], [(s["step"], s.get("error")) for s in report["steps"]]
    pretrain = next(s for s in report["steps"] if s["step"] == "pretrain")
    assert pretrain["killed_run"]["rc"] == -9 and pretrain["input_sizes"] == [32, 64]
    cascade = next(s for s in report["steps"] if s["step"] == "cascade")
    assert cascade["iterations"] == gc.DRY_RUN.det_iters and cascade["backbone_checkpoint"] == pretrain["final"]
