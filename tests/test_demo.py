"""tools/demo.py: the plan it runs, what it counts as finished, and its independent AP check."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

import embedded_demo.pipeline as demo
from det_fixtures import write_coco_instances
from etcore.checkpoint_io import file_sha256, load_checkpoint_file
from finetune.det_metrics import verify_detections
from finetune.seg_metrics import verify_seg_predictions


def test_plan_covers_every_seed_curriculum_detector_and_segmentor(tmp_path: Path) -> None:
    layout = demo.Layout(root=tmp_path / "w", data=tmp_path / "d")
    steps = demo.plan(demo.PROFILES["smoke"], [0, 1], layout)
    kinds = [step.kind for step in steps]
    assert kinds[0] == "data" and kinds.count("pretrain") == 4
    assert kinds.count("train") == kinds.count("test") == 2 * 2 * 2  # seeds x curricula x detectors
    assert kinds.count("seg_train") == kinds.count("seg_test") == 2 * 2  # one tiny UperNet per checkpoint
    assert kinds.index("train") > max(i for i, k in enumerate(kinds) if k == "pretrain")
    assert not any(step.is_done() for step in steps[1:])  # nothing exists yet
    assert all(set(kinds) <= set(profile.est_seconds) for profile in demo.PROFILES.values())


def test_fine_tunes_run_per_checkpoint_lane_side_by_side_and_pretrainings_alone(tmp_path: Path) -> None:
    steps = demo.plan(demo.PROFILES["smoke"], [0], demo.Layout(root=tmp_path / "w", data=tmp_path / "d"))
    assert all(step.lane is None for step in steps if step.kind in ("data", "pretrain"))
    lanes = {step.lane for step in steps if step.lane}
    assert len(lanes) == 2  # one per checkpoint (curriculum x seed), every detector and the UperNet in it

    log: list[str] = []
    baseline_started = threading.Event()

    def step(name: str, lane: str | None, wait_for: threading.Event | None = None) -> demo.Step:
        def run() -> None:
            log.append(f"{name} start threads={getattr(demo._LANE, 'threads', None)}")
            if name == "b1":
                baseline_started.set()
            if wait_for is not None:  # deadlocks (times out) unless the other lane runs meanwhile
                log.append(f"{name} saw the other lane: {wait_for.wait(timeout=10)}")
            log.append(f"{name} end")

        return demo.Step("train", name, is_done=lambda: False, run=run, lane=lane)

    plan = [step("pre", None), step("e1", "E", wait_for=baseline_started), step("b1", "B"), step("e2", "E")]
    demo.execute(plan, demo.PROFILES["smoke"])
    assert log[:2] == ["pre start threads=None", "pre end"]
    assert "e1 saw the other lane: True" in log
    assert log.index("e1 end") < next(i for i, line in enumerate(log) if line.startswith("e2 start"))
    assert all("threads=None" not in line for line in log[2:] if "start" in line)


def test_side_by_side_tools_split_the_thread_budget_even_when_the_user_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the Makefile's default: the budget of both lanes together
    assert demo.lane_threads(2) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 8)
    assert demo.lane_threads(2) == 4 and demo.lane_threads(3) == 2 and demo.lane_threads(16) == 1

    seen: list[str] = []
    monkeypatch.setattr(
        demo.subprocess,
        "run",
        lambda cmd, cwd, env: seen.append(env["OMP_NUM_THREADS"]) or demo.subprocess.CompletedProcess(cmd, 0),
    )
    plan = [
        demo.Step("train", name, is_done=lambda: False, run=lambda: demo._run_tool(["tools/train.py"]), lane=name)
        for name in ("A", "B")
    ]
    demo.execute(plan, demo.PROFILES["smoke"])
    assert seen == ["4", "4"]


def test_a_failed_lane_stops_every_lane_after_its_current_step(tmp_path: Path) -> None:
    ran: list[str] = []
    a_failing, b_started = threading.Event(), threading.Event()

    def failing() -> None:
        b_started.wait(timeout=10)
        a_failing.set()
        raise RuntimeError("step failed (exit 1)")

    def slow() -> None:  # still running when the other lane fails
        b_started.set()
        a_failing.wait(timeout=10)
        time.sleep(0.2)
        ran.append("b1")

    plan = [
        demo.Step("train", "a1", is_done=lambda: False, run=failing, lane="A"),
        demo.Step("train", "a2", is_done=lambda: False, run=lambda: ran.append("a2"), lane="A"),
        demo.Step("train", "b1", is_done=lambda: False, run=slow, lane="B"),
        demo.Step("train", "b2", is_done=lambda: False, run=lambda: ran.append("b2"), lane="B"),
    ]
    with pytest.raises(RuntimeError, match="step failed"):
        demo.execute(plan, demo.PROFILES["smoke"])
    assert ran == ["b1"]


def test_pretrain_counts_as_done_only_with_the_requested_provenance(tmp_path: Path) -> None:
    work = tmp_path / "pt"
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    work.mkdir()
    provenance = {"model_name": "resnet18", "curriculum": {"name": "baseline"}, "epochs": 20, "seed": 0}
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    assert not demo.pretrain_is_done(work, "resnet18", "efficienttrain", 20, 0)
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 1)
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="direct")  # mode not recorded
    provenance["lowfreq"] = "direct"
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="direct")
    assert not demo.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="fft")
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
    assert demo.train_is_done(run, 4) and not demo.train_is_done(run, 8)
    assert max(verify_detections(run, demo.REPO).values()) <= 5e-4
    assert demo.metrics_are_current(run)
    doc = json.loads((run / "coco_metrics.json").read_text())
    doc["metrics"]["bbox"]["AP"] = 0.5
    (run / "coco_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="bbox AP is 0.5 in coco_metrics.json but pycocotools gives 1.0000"):
        verify_detections(run, demo.REPO)
    assert not demo.metrics_are_current(run)  # so a rerun evaluates again


def _seg_run_dir(tmp_path: Path, recorded_miou: float) -> Path:
    """A finished segmentation work dir with two saved predictions: a.png right, b.png's right half wrong."""
    import cv2
    import numpy as np

    labels = tmp_path / "ade" / "annotations" / "validation"
    labels.mkdir(parents=True)
    run = tmp_path / "seg"
    predictions = run / "predictions" / "single_scale"
    predictions.mkdir(parents=True)
    truth = np.zeros((4, 6), np.uint8)
    truth[:, :3], truth[:, 3:] = 1, 2  # class 0 on the left half, class 1 on the right, (0 would be ignored)
    guess = truth.copy()
    guess[:, 3:] = 1  # the right half predicted as class 0
    for name, prediction in (("a.png", truth), ("b.png", guess)):
        cv2.imwrite(str(labels / name), truth)
        cv2.imwrite(str(predictions / name), prediction)
    (run / "iter_4.pth").write_bytes(b"weights")
    (run / "last_checkpoint").write_text(str(run / "iter_4.pth"))
    dataset = {
        "data_root": str(tmp_path / "ade"),
        "data_prefix": {"seg_map_path": "annotations/validation"},
        "metainfo": {"classes": ["left", "right"]},
        "reduce_zero_label": True,
    }
    metrics = {"single_scale": {"mIoU": recorded_miou, "mAcc": 0.75, "aAcc": 0.75}}
    (run / "seg_metrics.json").write_text(
        json.dumps(
            {
                "metrics": metrics,
                "predictions": {"single_scale": str(predictions)},
                "resolved_config": {"test_dataloader": {"dataset": dataset}},
            }
        )
    )
    return run


def test_recorded_miou_must_match_the_saved_predictions(tmp_path: Path) -> None:
    """Confusion over both maps [[24, 0], [12, 12]]: IoU 24/36 and 12/24, Acc 1 and 1/2, aAcc 36/48."""
    run = _seg_run_dir(tmp_path, recorded_miou=round((24 / 36 + 12 / 24) / 2, 4))
    assert max(verify_seg_predictions(run, demo.REPO).values()) <= 5e-5
    assert demo.seg_metrics_are_current(run, ["single_scale"])
    assert not demo.seg_metrics_are_current(run, ["single_scale", "ms_flip"])  # --tta not run yet
    doc = json.loads((run / "seg_metrics.json").read_text())
    doc["metrics"]["single_scale"]["mIoU"] = 0.5
    (run / "seg_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="single_scale mIoU is 0.5 in seg_metrics.json but the saved predictions"):
        verify_seg_predictions(run, demo.REPO)
    assert not demo.seg_metrics_are_current(run, ["single_scale"])


def test_a_finetune_counts_as_done_only_for_the_backbone_file_it_was_trained_from(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, recorded_ap=1.0)
    backbone = tmp_path / "final.pth"
    backbone.write_bytes(b"the pretraining the fine-tune started from")
    assert not demo.finetune_is_done(run, 4, backbone)  # no provenance recorded
    (run / "pretrain_provenance.json").write_text(json.dumps({"sha256": file_sha256(backbone)}))
    assert demo.finetune_is_done(run, 4, backbone)
    assert not demo.finetune_is_done(run, 8, backbone)  # not at its last iteration
    backbone.write_bytes(b"a new pretraining, e.g. with other epochs")
    assert not demo.finetune_is_done(run, 4, backbone)  # trains again from the new weights
    backbone.unlink()
    assert not demo.finetune_is_done(run, 4, backbone)


def _finished_demo_runs(tmp_path: Path) -> tuple[demo.Layout, list[demo.Step], Path]:
    """A smoke-profile layout whose baseline pretraining and RetinaNet fine-tune (with current metrics) are done."""
    profile = demo.PROFILES["smoke"]
    layout = demo.Layout(root=tmp_path / "demo", data=tmp_path / "data")
    pretrain = layout.pretrain(profile.model, "baseline", 0)
    pretrain.mkdir(parents=True)
    provenance = {"model_name": profile.model, "curriculum": {"name": "baseline"}, "epochs": profile.epochs}
    provenance.update(seed=0, lowfreq=profile.lowfreq, recipe={"hflip": 0.0})
    torch.save({"model": {}, "provenance": provenance}, pretrain / "final.pth")
    run = _run_dir(tmp_path, recorded_ap=1.0)  # iter_4.pth, last_checkpoint, detections, coco_metrics.json
    work_dir = layout.det("retinanet", "baseline", 0)
    work_dir.parent.mkdir(parents=True)
    run.rename(work_dir)
    (work_dir / "last_checkpoint").write_text(str(work_dir / "iter_4.pth"))
    (work_dir / "coco_metrics.json").touch()  # newer than the checkpoint
    (work_dir / "pretrain_provenance.json").write_text(json.dumps({"sha256": file_sha256(pretrain / "final.pth")}))
    return layout, demo.detection_steps(profile, layout, "retinanet", "baseline", 0), pretrain / "final.pth"


def test_a_pending_pretraining_makes_its_finetunes_and_their_tests_pending(tmp_path: Path) -> None:
    layout, (train, test), final = _finished_demo_runs(tmp_path)
    assert train.is_done() and test.is_done()
    old = load_checkpoint_file(final)
    old["provenance"]["recipe"] = {"hflip": 0.5}  # a pretraining from before the demo stopped flipping
    torch.save(old, final)
    work_dir = layout.det("retinanet", "baseline", 0)
    (work_dir / "pretrain_provenance.json").write_text(json.dumps({"sha256": file_sha256(final)}))
    assert not train.is_done() and not test.is_done()  # the pretraining step will run first, then these


def test_a_retrain_forgets_the_old_run_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout, (train, test), _ = _finished_demo_runs(tmp_path)
    started: list[list[str]] = []
    monkeypatch.setattr(demo, "_run_tool", lambda args, log=None: started.append(list(args)))
    train.run()  # as if killed right after it started: the tool wrote nothing
    assert started and started[0][0] == "tools/train.py"
    assert not train.is_done() and not test.is_done()  # the old iter_4.pth no longer counts


def test_the_demo_pretrains_without_flips(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(demo, "_run_tool", lambda args, log=None: started.append(list(args)))
    for profile in demo.PROFILES.values():
        demo.pretrain_step(profile, demo.Layout(Path("w"), Path("d")), "efficienttrain", 0).run()
        hflip = started[-1].index("--hflip")
        assert started[-1][hflip + 1] == "0" and "--hflip" not in started[-1][hflip + 1 :]
