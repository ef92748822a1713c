"""The study runner without a cluster: specs and the graphs they expand into, the local executor (lanes, thread
shares, failures), and the done-checks every executor trusts (tools/study.py, tools/demo.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from det_fixtures import write_coco_instances
from etcore.checkpoint_io import file_sha256, load_checkpoint_file
from etcore.errors import UserInputError
from etcore.process import ProcessResult
from finetune.det_metrics import verify_detections
from finetune.seg_metrics import verify_seg_predictions
from study_runner import checks, local
from study_runner.demo import PROFILES
from study_runner.graph import Graph, Step, find_cycle
from study_runner.plan import build_graph
from study_runner.spec import load_study

REPO = checks.REPO
SMOKE = REPO / PROFILES["smoke"]


def _smoke(tmp_path: Path, seeds=(0,)) -> tuple:
    study = load_study(SMOKE, seeds=list(seeds), root=tmp_path / "w", variables={"data": str(tmp_path / "d")})
    return study, build_graph(study)


# ------------------------------------------------------------------------------------------------ specs and plans


def test_the_demo_plan_covers_every_seed_curriculum_finetune_and_the_report(tmp_path: Path) -> None:
    study, graph = _smoke(tmp_path, seeds=(0, 1))
    kinds = [step.kind for step in graph.steps]
    assert kinds[0] == "prepare" and kinds.count("pretrain") == 4  # seeds x curricula
    assert kinds.count("train") == kinds.count("test") == 2 * 2 * 2  # seeds x curricula x detectors
    assert kinds.count("seg_train") == kinds.count("seg_test") == 2 * 2  # one tiny UperNet per checkpoint
    assert kinds.index("train") > max(i for i, k in enumerate(kinds) if k == "pretrain")
    assert kinds[-1] == "report" and set(graph.steps[-1].needs) == {s.id for s in graph.steps if "test" in s.kind}
    assert not any(step.is_done() for step in graph.steps)  # nothing exists yet
    assert set(kinds) <= set(study.estimates)
    # every step is one of the project's own command lines, the checkpoint of a test known before training
    assert all(step.command[0].startswith("tools/") for step in graph.steps)
    test = next(s for s in graph.steps if s.kind == "test")
    assert test.command[2].endswith("/iter_4.pth")


def test_every_demo_profile_pretrains_without_flips_and_checks_it(tmp_path: Path) -> None:
    for profile, spec in PROFILES.items():
        study = load_study(REPO / spec, root=tmp_path / profile)
        for run in study.pretrainings:
            command = list(run.command())
            assert command.count("--hflip") == 1 and float(command[command.index("--hflip") + 1]) == 0, profile
            assert run.expect["hflip"] == 0 and "workers" not in run.expect  # recorded, and checked when done
            assert command[-1] == "--resume" and run.lowfreq == "direct"


def test_fine_tunes_run_per_checkpoint_lane_and_pretrainings_alone(tmp_path: Path) -> None:
    _, graph = _smoke(tmp_path)
    assert all(step.lane is None for step in graph.steps if step.kind in ("prepare", "pretrain", "report"))
    lanes = {step.lane for step in graph.steps if step.lane}
    assert len(lanes) == 2  # one per checkpoint (curriculum x seed), every detector and the UperNet in it


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pretrain": [{"name": "resnet18", "model": "resnet_18"}]}, "model 'resnet_18' is not a timm model"),
        ({"pretrain": [{"name": "resnet18", "curricula": ["efficientrain"]}]}, "curriculum 'efficientrain' is unknown"),
        (
            {"finetune": [{"name": "retinanet", "config": "det_configs/tiny/nope_{stem}.py"}]},
            "nope_resnet18.py does not exist",
        ),
        ({"finetune": [{"name": "retinanet", "from": ["r50"]}]}, "'from' names 'r50', which is no pretrain entry"),
        ({"finetune": [{"name": "upernet", "tests": ["tta", "ms"]}]}, "test 'ms' is unknown"),
        ({"pretrain": [{"name": "resnet18", "recipe": {"lr_rate": 1}}]}, "recipe.lr_rate is not a recipe setting"),
        ({"pretrain": [{"name": "resnet18", "recipe": {"epochs": 3}}]}, "recipe.epochs is not a recipe setting"),
        (
            {"prepare": [{"name": "data", "command": ["rm", "-rf", "x"]}]},
            "does not start with one of the project's tools",
        ),
        ({"seeds": [0]}, "unknown key.s. seeds"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_entry(tmp_path: Path, change: dict, message: str) -> None:
    import yaml

    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"base": str(SMOKE), **change}))
    with pytest.raises(UserInputError, match=message) as info:
        build_graph(load_study(spec, root=tmp_path / "w"))
    assert "\n" not in str(info.value) and str(spec) in str(info.value)


def test_two_steps_writing_one_folder_and_a_base_circle_are_refused(tmp_path: Path) -> None:
    import yaml

    spec = tmp_path / "twice.yaml"
    twin = {"name": "retinanet_again", "config": "det_configs/tiny/retinanet_{stem}_fpn_tiny-demo_{curriculum}.py"}
    spec.write_text(yaml.safe_dump({"base": str(SMOKE), "finetune": [{**twin, "data_root": "d"}]}))
    build_graph(load_study(spec, root=tmp_path / "w"))  # another name: another folder
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(UserInputError, match="its `base` chain comes back to itself"):
        load_study(tmp_path / "a.yaml")
    steps = [Step("x", "train", "x", ("tools/train.py",), work_dir=tmp_path / "same")]
    steps.append(Step("y", "train", "y", ("tools/train.py",), work_dir=tmp_path / "same"))
    with pytest.raises(UserInputError, match="steps x and y both write"):
        Graph("g", tmp_path, steps)


def test_a_graph_whose_steps_need_each_other_in_a_circle_is_refused(tmp_path: Path) -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) == []
    steps = [Step(name, "train", name, ("tools/train.py",), needs=(need,)) for name, need in (("a", "b"), ("b", "a"))]
    with pytest.raises(UserInputError, match=r"need each other in a circle \(a -> b -> a\)"):
        Graph("g", tmp_path, steps)
    with pytest.raises(UserInputError, match="needs nope, which is no step"):
        Graph("g", tmp_path, [Step("a", "train", "a", ("tools/train.py",), needs=("nope",))])


def test_a_derived_spec_changes_its_base_by_entry_name(tmp_path: Path) -> None:
    study = load_study(SMOKE, root=tmp_path / "w")
    assert [run.epochs for run in study.pretrainings] == [2, 2]
    assert study.pretrainings[0].args[:4] == ("--batch-size", "16", "--workers", "0")  # the smoke spec's
    assert "--crop-scale" in study.pretrainings[0].args  # the base demo's recipe, kept
    assert {run.entry for run in study.finetunes} == {"retinanet", "cascade_mask_rcnn", "upernet"}


# ------------------------------------------------------------------------------------------------ local executor


def _fake(name: str, lane: str | None, needs=()) -> Step:
    return Step(name, "train", name, ("tools/train.py",), lane=lane, needs=tuple(needs))


def test_lanes_run_side_by_side_with_their_thread_share_and_exclusive_steps_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    log: list[str] = []
    baseline_started = threading.Event()

    def runner(step: Step, threads: int | None) -> None:
        log.append(f"{step.id} start threads={threads}")
        if step.id == "b1":
            baseline_started.set()
        if step.id == "e1":  # deadlocks (times out) unless the other lane runs meanwhile
            log.append(f"e1 saw the other lane: {baseline_started.wait(timeout=10)}")
        log.append(f"{step.id} end")

    graph = Graph("g", tmp_path, [_fake("pre", None), _fake("e1", "E"), _fake("b1", "B"), _fake("e2", "E")])
    outcome = local.execute(graph, lanes=2, runner=runner)
    assert log[:2] == ["pre start threads=None", "pre end"]
    assert "e1 saw the other lane: True" in log
    assert log.index("e1 end") < next(i for i, line in enumerate(log) if line.startswith("e2 start"))
    assert all("threads=1" in line for line in log[2:] if "start" in line)
    assert sorted(outcome.ran) == ["b1", "e1", "e2", "pre"] and not outcome.failed


def test_side_by_side_tools_split_the_thread_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the Makefile's default: the budget of both lanes together
    assert local.lane_threads(2) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    assert local.lane_threads(2) == 4 and local.lane_threads(3) == 2 and local.lane_threads(16) == 1


def test_a_failed_step_leaves_its_dependents_unrun_and_the_others_go_on(tmp_path: Path) -> None:
    ran: list[str] = []

    def runner(step: Step, threads: int | None) -> None:
        if step.id == "a1":
            raise local.StepFailed(f"step a1 failed (exit 2); its log: {tmp_path / 'a1.log'}")
        ran.append(step.id)

    steps = [_fake("a1", "A"), _fake("a2", "A", needs=["a1"]), _fake("b1", "B"), _fake("b2", "B", ["b1"])]
    steps.append(_fake("report", None, needs=["a2", "b2"]))
    outcome = local.execute(Graph("g", tmp_path, steps), lanes=2, runner=runner)
    assert sorted(ran) == ["b1", "b2"] and sorted(outcome.blocked) == ["a2", "report"]
    assert outcome.failed == [("a1", f"step a1 failed (exit 2); its log: {tmp_path / 'a1.log'}")]
    record = json.loads((tmp_path / "study.json").read_text())["steps"]
    assert record["a1"]["state"] == "failed" and record["report"]["state"] == "blocked"


def test_a_retrain_forgets_the_old_run_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pointer = tmp_path / "last_checkpoint"
    pointer.write_text("iter_4.pth")
    started: list[tuple] = []

    def fake_run(command, **kwargs):
        started.append((tuple(command), pointer.exists()))
        return ProcessResult(tuple(command), 0, 0.0, None)

    monkeypatch.setattr(local, "run_process", fake_run)
    step = Step("t", "train", "t", ("tools/train.py", "cfg"), fresh_files=(pointer,), log=tmp_path / "t.log")
    local.run_step(step)
    assert started[0][0][1:] == ("tools/train.py", "cfg") and started[0][1] is False  # gone before it ran


# ------------------------------------------------------------------------------------------------ done-checks


def test_pretrain_counts_as_done_only_with_the_requested_provenance(tmp_path: Path) -> None:
    work = tmp_path / "pt"
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    work.mkdir()
    provenance = {"model_name": "resnet18", "curriculum": {"name": "baseline"}, "epochs": 20, "seed": 0}
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0)
    assert not checks.pretrain_is_done(work, "resnet18", "efficienttrain", 20, 0)
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 20, 1)
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="direct")  # mode not recorded
    provenance.update(lowfreq="direct", recipe={"hflip": 0.0, "betas": [0.9, 0.999]})
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="direct")
    assert checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0, recipe={"hflip": 0, "betas": (0.9, 0.999)})
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0, recipe={"hflip": 0.5})
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 20, 0, lowfreq="fft")
    provenance.update(epochs=454, budget_epochs=200)  # efficienttrain++: --epochs is the budget
    torch.save({"model": {}, "provenance": provenance}, work / "final.pth")
    assert checks.pretrain_is_done(work, "resnet18", "baseline", 200, 0)
    (work / "final.pth").write_bytes(b"truncated")
    assert not checks.pretrain_is_done(work, "resnet18", "baseline", 200, 0)


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
    assert checks.train_is_done(run, "iter_4.pth") and not checks.train_is_done(run, "iter_8.pth")
    assert max(verify_detections(run, REPO).values()) <= 5e-4
    assert checks.metrics_are_current(run)
    doc = json.loads((run / "coco_metrics.json").read_text())
    doc["metrics"]["bbox"]["AP"] = 0.5
    (run / "coco_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="bbox AP is 0.5 in coco_metrics.json but pycocotools gives 1.0000"):
        verify_detections(run, REPO)
    assert not checks.metrics_are_current(run)  # so a rerun evaluates again


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
    assert max(verify_seg_predictions(run, REPO).values()) <= 5e-5
    assert checks.seg_metrics_are_current(run, ["single_scale"])
    assert not checks.seg_metrics_are_current(run, ["single_scale", "ms_flip"])  # --tta not run yet
    doc = json.loads((run / "seg_metrics.json").read_text())
    doc["metrics"]["single_scale"]["mIoU"] = 0.5
    (run / "seg_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="single_scale mIoU is 0.5 in seg_metrics.json but the saved predictions"):
        verify_seg_predictions(run, REPO)
    assert not checks.seg_metrics_are_current(run, ["single_scale"])


def test_a_finetune_counts_as_done_only_for_the_backbone_file_it_was_trained_from(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, recorded_ap=1.0)
    backbone = tmp_path / "final.pth"
    backbone.write_bytes(b"the pretraining the fine-tune started from")
    assert not checks.finetune_is_done(run, "iter_4.pth", backbone)  # no provenance recorded
    (run / "pretrain_provenance.json").write_text(json.dumps({"sha256": file_sha256(backbone)}))
    assert checks.finetune_is_done(run, "iter_4.pth", backbone)
    assert not checks.finetune_is_done(run, "iter_8.pth", backbone)  # not at its last iteration
    backbone.write_bytes(b"a new pretraining, e.g. with other epochs")
    assert not checks.finetune_is_done(run, "iter_4.pth", backbone)  # trains again from the new weights
    backbone.unlink()
    assert not checks.finetune_is_done(run, "iter_4.pth", backbone)


def test_a_pending_pretraining_makes_its_finetunes_and_their_tests_pending(tmp_path: Path) -> None:
    study, graph = _smoke(tmp_path)
    pretraining = study.pretrainings[0]
    pretraining.work_dir.mkdir(parents=True)
    provenance = {"model_name": pretraining.model, "curriculum": {"name": pretraining.curriculum}, "epochs": 2}
    provenance.update(seed=0, lowfreq="direct", recipe=dict(pretraining.expect))
    torch.save({"model": {}, "provenance": provenance}, pretraining.checkpoint)
    finetune = next(f for f in study.finetunes if f.source == pretraining and f.entry == "retinanet")
    finetune.work_dir.parent.mkdir(parents=True)
    _run_dir(tmp_path, recorded_ap=1.0).rename(finetune.work_dir)
    (finetune.work_dir / "last_checkpoint").write_text(str(finetune.work_dir / "iter_4.pth"))
    (finetune.work_dir / "coco_metrics.json").touch()  # newer than the checkpoint
    (finetune.work_dir / "pretrain_provenance.json").write_text(
        json.dumps({"sha256": file_sha256(pretraining.checkpoint)})
    )
    steps = graph.by_id()
    train, test = steps[f"train/{finetune.work_dir.name}"], steps[f"test/{finetune.work_dir.name}"]
    assert steps[f"pretrain/{pretraining.id}"].is_done() and train.is_done() and test.is_done()
    old = load_checkpoint_file(pretraining.checkpoint)
    old["provenance"]["recipe"]["hflip"] = 0.5  # a pretraining from before the demo stopped flipping
    torch.save(old, pretraining.checkpoint)
    (finetune.work_dir / "pretrain_provenance.json").write_text(
        json.dumps({"sha256": file_sha256(pretraining.checkpoint)})
    )
    assert not steps[f"pretrain/{pretraining.id}"].is_done()
    assert not train.is_done() and not test.is_done()  # the pretraining step will run first, then these


PAPER_SPECS = sorted((REPO / "studies").glob("table1[78]_*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("spec", PAPER_SPECS, ids=lambda p: p.stem)
def test_each_paper_row_study_plans_the_rows_methods_and_prints_its_jobs(spec: Path, tmp_path: Path, capsys) -> None:
    """One spec per row of EfficientTrain++ Tables 17 and 18: it fine-tunes exactly the methods the paper's row
    reports, from pretrainings shared with the other rows, and ends with the table beside the paper's row."""
    from reporting.paper import PAPER_ROWS, backbone_family_size
    from study_runner import cli

    study = load_study(spec, root=tmp_path / "w")
    detectors = {run.entry for run in study.finetunes}
    assert len(detectors) == 1
    run = study.finetunes[0]
    benchmark = Config.fromfile(str(REPO / run.config)).benchmark
    label = backbone_family_size(run.source.model)
    rows = [
        row
        for row in PAPER_ROWS
        if (row.detector, row.backbone, row.schedule) == (run.entry, label, benchmark.schedule)
    ]
    assert rows and {r.source.curriculum for r in study.finetunes} == {row.method for row in rows}
    assert all(p.work_dir.parent == Path("work_dirs/pretrain") for p in study.pretrainings)  # shared
    assert study.report[:2] == ("tools/compare.py", str(tmp_path / "w")) and "--paper" in study.report
    assert cli.main(["plan", str(spec), "--root", str(tmp_path / "w"), "--executor", "slurm"]) == 0
    out = capsys.readouterr().out
    assert "--gres=gpu:8" in out and "--ntasks=8" in out and "--signal=B:USR1@120" in out and "--requeue" in out


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_smoke_frontier_runs_end_to_end(tmp_path: Path) -> None:
    """studies/demo_frontier_smoke.yaml through the local executor: 6 pretrainings (3 curricula, 2 seeds), a
    RetinaNet from each, and tools/compare.py --frontier's points, plots and matched-compute differences."""
    import os
    import subprocess
    import sys

    root = tmp_path / "w"
    ran = subprocess.run(
        [sys.executable, "tools/study.py", "run", "studies/demo_frontier_smoke.yaml", "--root", str(root)]
        + ["--var", f"data={tmp_path / 'd'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    text = (root / "frontier" / "frontier.md").read_text()
    for section in ("at matched compute", "at matched measured training time"):
        table = text.split(f"## Differences to the baseline {section}")[1].split("## ")[0]
        for curriculum in ("efficienttrain 2 ep", "efficienttrain++ 2 ep"):  # each paired with a baseline point
            rows = [line for line in table.splitlines() if line.startswith(f"| top-1 (%) | {curriculum} (")]
            assert len(rows) == 1 and "(n=2)" in rows[0] and "baseline" in rows[0]
    assert (root / "frontier" / "frontier_train_time_s.png").is_file()
    every_point = text.split("## Every point")[1]
    points = [line for line in every_point.splitlines() if line.startswith("| RetinaNet box AP50 | ")]
    assert len(points) == 3 and all("| 2 |" in line for line in points)  # 3 arms, 2 seeds each
