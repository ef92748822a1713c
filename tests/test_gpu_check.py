"""tools/gpu_check.sh and its pieces on the CPU: config rewriting, the gpu marker, the report, and (slow) a rerun.

The GPU tests themselves are tests/test_gpu_*.py (`pytest -m gpu`); here they run only through the check's
dry run, which asks for them on the CPU at tiny sizes (ETDET_GPU_TESTS=cpu).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_fixtures import (
    CASCADE_CONFIG,
    GPU,
    TINY,
    Profile,
    cap_counts,
    detection_config,
    focal_loss_reference,
    scale_pipeline,
    scale_sizes,
)

from bench import gpu_report as gr
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
    scale_pipeline(pipeline, 0.125)
    assert pipeline[0]["scale"] == (167, 100) and pipeline[0]["keep_ratio"] is True
    assert pipeline[1]["transforms"][0][0]["scales"] == [(167, 60), (167, 100)]
    assert pipeline[1]["transforms"][1][0]["crop_size"] == (48, 75)
    assert pipeline[2]["prob"] == 0.5
    assert scale_sizes(100, 0.01) == 32  # never below one stride-32 cell


def test_counts_are_capped_in_train_and_test_cfg() -> None:
    cfg = {
        "rpn": {"sampler": {"num": 256}},
        "rpn_proposal": {"nms_pre": 2000, "max_per_img": 2000},
        "rcnn": [{"sampler": {"num": 512, "add_gt_as_proposals": True}}, {"sampler": {"num": 8}}],
    }
    cap_counts(cfg, 16)
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
    assert torch.allclose(focal_loss_reference(logits, labels), expected, atol=1e-6)


@pytest.mark.parametrize("profile", [TINY, GPU], ids=["tiny", "gpu"])
def test_detection_config_is_the_real_one_with_the_checks_data(tmp_path: Path, profile: Profile) -> None:
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    from finetune.config import validate_annotations

    coco = write_coco_instances(tmp_path / "data" / "coco", classes=["a_b", "c_d"], train_images=2, val_images=1)
    path, overrides = detection_config(CASCADE_CONFIG, coco, tmp_path / "cascade", profile, None)
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    # the generated categories carry the config's first class names, the file lists all 80: the real check passes
    renamed = json.loads((tmp_path / "cascade" / "instances_train.json").read_text())["categories"]
    assert [c["name"] for c in renamed] == list(CocoDataset.METAINFO["classes"])
    assert [c["id"] for c in renamed[:2]] == [1, 2] and len({c["id"] for c in renamed}) == 80
    validate_annotations(cfg, ["train_dataloader", "test_dataloader"])
    real = Config.fromfile(str(REPO / CASCADE_CONFIG), import_custom_modules=False)
    assert cfg.model.roi_head.bbox_head[0].num_classes == real.model.roi_head.bbox_head[0].num_classes
    assert cfg.model.backbone.model_name == real.model.backbone.model_name == "swin_tiny_patch4_window7_224"
    assert cfg.train_cfg.max_epochs == 1 and cfg.val_dataloader is None and cfg.val_cfg is None
    train_set = cfg.train_dataloader.dataset
    assert train_set.data_root == str(coco) + os.sep and "metainfo" not in train_set  # the config's classes
    assert cfg.test_evaluator.ann_file == str(tmp_path / "cascade" / "instances_val.json")
    assert cfg.model.backbone.checkpoint is None and overrides["data_root"] == str(coco) + os.sep
    real_pipeline = real.train_dataloader.dataset.pipeline  # Swin's multi-scale crop: sizes nested in RandomChoice
    sampler_num = cfg.model.train_cfg.rcnn[0].sampler.num
    if profile is GPU:  # full size, AMP and RoI counts as configured
        assert train_set.pipeline == real_pipeline
        assert cfg.optim_wrapper.type == real.optim_wrapper.type == "AmpOptimWrapper"
        assert sampler_num == real.model.train_cfg.rcnn[0].sampler.num
    else:
        scaled = copy.deepcopy(real_pipeline)
        scale_pipeline(scaled, profile.det_scale)
        assert train_set.pipeline == scaled != real_pipeline
        assert "[[167, 60], [167, 64]" in json.dumps(train_set.pipeline)  # (1333, 480) x 1/8, every size scaled
        assert cfg.optim_wrapper.type == "OptimWrapper" and sampler_num == profile.det_rois


def test_junit_outcomes_and_the_report_table(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_gpu_ops" name="test_nms" time="1.25"/>'
        '<testcase classname="tests.test_gpu_ops" name="test_roi" time="0.5">'
        '<skipped type="pytest.skip" message="needs a CUDA GPU"/></testcase>'
        '<testcase classname="tests.test_gpu_pretrain" name="test_resume[swin]" time="9">'
        '<failure message="assert 1 == 0">trace</failure></testcase>'
        "</testsuite></testsuites>"
    )
    cases = gr.junit_results(tmp_path / "junit.xml")
    assert [(c["test"], c["outcome"], c["reason"]) for c in cases] == [
        ("test_gpu_ops::test_nms", "passed", None),
        ("test_gpu_ops::test_roi", "skipped", "needs a CUDA GPU"),
        ("test_gpu_pretrain::test_resume[swin]", "failed", "assert 1 == 0"),
    ]
    report = {
        "mode": "dry-run",
        "tier": "1",
        "date": "2026-12-06",
        "total_s": 12.0,
        "ok": False,
        "machine": {"cpu_count": 2, "python": "3.12.1", "packages": {"torch": "2.11.0"}},
        "steps": [
            {"step": "tests", "ok": False, "rc": 1, "seconds": 10.0, "tests": cases, "log_tail": ["E  boom"]},
            {
                "step": "benchmarks",
                "ok": True,
                "rc": 0,
                "seconds": 2.0,
                "benchmarks": [
                    {"step": "throughput", "rc": 0, "seconds": 1.5, "table": "size step loader"},
                    {"step": "backbone", "skipped": "mmcv has no compiled ops"},
                ],
            },
        ],
    }
    gr.write_report(tmp_path / "out", report)
    text = (tmp_path / "out" / "gpu_check.txt").read_text()
    assert text.startswith("GPU check (dry-run, tier 1): FAIL in 12 s")
    assert "skipped" in text and "needs a CUDA GPU" in text and "| E  boom" in text
    assert "backbone                     skipped (mmcv has no compiled ops)" in text
    assert "== throughput\nsize step loader" in text
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["ok"] is False


def _check(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "tools/gpu_check.sh", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )


@pytest.mark.subprocess
def test_bad_input_is_one_error_line(tmp_path: Path) -> None:
    import torch

    (tmp_path / "file").write_text("")
    for args in (["--out", str(tmp_path / "file"), "--dry-run"], ["--as-lent", "--out", str(tmp_path / "x")]):
        proc = _check(args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    proc = _check(["--dry-run", "--as-lent", "--out", str(tmp_path / "x")], LENT_PYTHON="")
    assert proc.returncode == 2 and "--as-lent needs LENT_PYTHON" in proc.stderr, proc.stderr
    proc = _check(["--dry-run"], PYTHON=str(tmp_path / "missing-python"))
    assert proc.returncode == 2 and "run make setup first" in proc.stderr
    if not torch.cuda.is_available():
        proc = _check(["--out", str(tmp_path / "gc")])
        assert proc.returncode == 2 and proc.stderr.startswith("error: no CUDA device is visible"), proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "gc").exists()  # nothing half-written


@pytest.mark.subprocess
def test_gpu_tests_skip_with_their_reason_without_a_gpu_and_run_on_request(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu_ops.py", "-p", "no:cacheprovider", "-rs"]
    command += ["--basetemp", str(tmp_path / "t")]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop(gr.GPU_TESTS_ENV, None)
    skipped = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert skipped.returncode == 0 and " passed" not in skipped.stdout, skipped.stdout
    assert "4 skipped" in skipped.stdout and "needs a CUDA GPU" in skipped.stdout
    ran = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, env={**env, gr.GPU_TESTS_ENV: "cpu"}
    )
    assert ran.returncode == 0 and "4 passed" in ran.stdout, ran.stdout + ran.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_rerun_into_the_same_folder_gives_the_same_verdict(tmp_path: Path) -> None:
    """The check twice into one --out (one pretraining case, tiny, CPU): each works in a fresh folder."""
    out = tmp_path / "gc"
    reports = []
    for _ in range(2):
        proc = _check(["--dry-run", "--tier", "1", "--only", "tests", "--out", str(out)], PYTEST_ADDOPTS="-k convnext")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        reports.append(json.loads((out / "gpu_check.json").read_text()))
    tests = [[(c["test"], c["outcome"]) for c in r["steps"][0]["tests"]] for r in reports]
    assert (
        tests[0]
        == tests[1]
        == [("test_gpu_pretrain::test_killed_run_resumes_to_the_uninterrupted_weights[convnext_tiny]", "passed")]
    )
    assert all(r["ok"] for r in reports)
    numbers = reports[1]["steps"][0]["numbers"]["pretrain_convnext_tiny"]
    assert numbers["rc"] == {"reference": 0, "killed": -9, "resumed": 0}
    assert numbers["weights"]["model"]["differ"] == 0 and numbers["weights"]["model"]["tensors"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.txt"]  # nothing else left there


@pytest.mark.slow
def test_throughput_compares_each_stage_step_with_the_loader(tmp_path: Path) -> None:
    from bench import cli

    out = tmp_path / "tp.json"
    argv = ["throughput", "--models", "convnext_atto", "--final-size", "64", "--batch-size", "2", "--num-classes", "4"]
    argv += ["--rounds", "1", "--warmup", "0", "--loader-batch", "2", "--loader-batches", "1", "--loader-rounds", "1"]
    assert cli.main([*argv, "--workers", "0", "--device", "cpu", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    (entry,) = payload["result"]["models"]
    assert entry["sizes"] == {"efficienttrain": [32, 64], "efficienttrain++": [32, 64]}  # ICCV 160/192 -> 32 at 64 px
    for size in map(str, entry["all_sizes"]):
        for mode, row in entry["loader"][size].items():
            form = "fft" if mode == "fft" else "resize"
            assert row["step_images_per_s"] == entry["steps"][form][size]["images_per_s"]["median"]
            faster = row["images_per_s"]["median"] >= row["step_images_per_s"]
            assert row["bound_by"] == ("step" if faster else "loader")
    assert "bound by (fft, resize, direct)" in payload["table"]


def test_gpu_benchmarks_skip_what_this_mmcv_or_the_budget_cannot_run(tmp_path: Path, monkeypatch) -> None:
    import torch

    from bench import gpu

    ran = []
    monkeypatch.setattr(gpu, "mmcv_ops_missing", lambda: "mmcv-lite")
    monkeypatch.setattr(gpu, "run_process", lambda command, **kw: ran.append(command[2]) or _Done())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the step plan, not the steps, is under test
    assert gpu.main([str(tmp_path), "--tier", "1", "--only", "backbone", "lowfreq", "--budget-s", "100"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert summary[0] == {"step": "backbone", "skipped": "mmcv-lite"} and summary[1]["step"] == "lowfreq"
    assert ran == ["lowfreq"]
    assert gpu.main([str(tmp_path), "--tier", "2", "--budget-s", "100"]) == 0  # both need the ops
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == [
        {"step": "backbone", "skipped": "mmcv-lite"},
        {"step": "detector", "skipped": "mmcv-lite"},
    ]
    monkeypatch.setattr(gpu, "mmcv_ops_missing", lambda: None)
    assert gpu.main([str(tmp_path), "--tier", "2", "--budget-s", "100"]) == 0  # limits 90 s and 150 s, budget 100 s
    backbone, detector = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert backbone["step"] == "backbone" and backbone["rc"] == 0 and ran == ["lowfreq", "backbone"]
    assert detector["step"] == "detector" and "the step may take 150 s" in detector["skipped"]


class _Done:
    rc, seconds, ok, log = 0, 0.1, True, None


def test_lent_run_installs_first_gives_the_check_what_is_left_and_adds_its_steps(tmp_path: Path, monkeypatch) -> None:
    from bench import gpu_check, gpu_lent

    calls = []

    def child(command, **kw):  # stands in for the check inside the installed wheels: writes its report
        calls.append((command, kw["env"]))
        gr.write_report(
            out,
            {"mode": "gpu", "tier": "1", "date": "d", "total_s": 1.0, "ok": True, "steps": []}
            | {"machine": {"cpu_count": 16, "python": "3.12.3", "packages": {}}},
        )
        return _Done()

    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu_check.txt").write_text("an earlier run's verdict")
    monkeypatch.setattr(gpu_lent.gw, "install", lambda folder, site, tier: ["a.whl", "b.whl"])
    monkeypatch.setattr(gpu_lent, "run_process", child)
    args = gpu_check.parse_args(["--lent", "--out", str(out)])
    assert args.tier == "1" and gpu_lent.run_lent(args, ["--lent", "--out", str(out)]) == 0
    ((command, env),) = calls
    assert command[-2] == "--budget-s" and float(command[-1]) == gr.BUDGET_S["1"]  # install took no time here
    assert env[gr.LENT_SITE_ENV] in env["PYTHONPATH"] and str(REPO) in env["PYTHONPATH"]
    report = json.loads((out / "gpu_check.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["install"] and report["steps"][0]["wheels"] == ["a.whl", "b.whl"]
    assert report["ok"] and "install: ok" in (out / "gpu_check.txt").read_text()
