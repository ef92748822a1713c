"""Experiment tracking: the pretraining Tracker (TensorBoard purge on resume, timm's summary.csv trim, the W&B
calls), the one-line errors for a backend that is not installed, and what `tools/train.py --vis` and
`tools/test.py --show-dir` put into an mmengine config."""

from __future__ import annotations

import csv
import importlib.machinery
import sys
import types
from pathlib import Path

import pytest
from mmengine.config import Config
from test_own_model import tensorboard_scalars

from etcore import tracking
from etcore.errors import UserInputError, run_cli
from etcore.tracking import require_vis_backends
from finetune.visualization import add_vis_backends, draw_test_predictions
from pretrain_fixtures import tiny_args, write_two_stage_curriculum
from pretraining.cli import main as pretrain
from pretraining.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"


def _epoch(epoch: int, updates: int) -> dict:
    return {
        "epoch": epoch,
        "updates": updates,
        "train_loss": 2.0 - epoch,
        "lr": 0.1,
        "images_per_s": 10.0,
        "stage": 0,
        "input_size": 32,
        "randaug_magnitude": 1.0,
        "epoch_time_s": 1.0,
        "wall_clock_s": 1.0 + epoch,
        "top1": None if epoch % 2 == 0 else 50.0,
        "top5": None if epoch % 2 == 0 else 90.0,
    }


def _train(tracker: Tracker, epochs: range, updates_per_epoch: int = 4) -> None:
    for epoch in epochs:
        for update in range(epoch * updates_per_epoch + 1, (epoch + 1) * updates_per_epoch + 1):
            tracker.batch(update, loss=float(update), images=8, lr=0.1)
        tracker.epoch(_epoch(epoch, (epoch + 1) * updates_per_epoch))


def test_a_resumed_run_replaces_what_the_killed_run_logged_after_its_checkpoint(tmp_path: Path) -> None:
    killed = Tracker(tmp_path, ["tensorboard"], interval=2)
    _train(killed, range(3))  # epochs 0-2 logged, but the last checkpoint was written after epoch 1
    killed.close()
    resumed = Tracker(tmp_path, ["tensorboard"], interval=2, start_epoch=2, start_update=8)
    _train(resumed, range(2, 4))
    resumed.close()
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == [2, 4, 6, 8, 10, 12, 14, 16]  # no step twice
    assert [value for _, value in scalars["train/loss"]] == [1.5, 3.5, 5.5, 7.5, 9.5, 11.5, 13.5, 15.5]
    assert [step for step, _ in scalars["epoch/train_loss"]] == [4, 8, 12, 16]
    assert [step for step, _ in scalars["val/top1"]] == [8, 16]  # only the epochs that validated
    with open(tmp_path / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]  # epoch 2 once: timm's trim_summary on resume
    assert [r["eval_top1"] for r in rows] == ["", "50.0", "", "50.0"]


def test_wandb_gets_the_same_scalars_at_the_same_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    run = types.SimpleNamespace(log=lambda values, step: calls.append(("log", step, sorted(values))))
    run.finish = lambda: calls.append(("finish",))
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or run
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_PROJECT", "my-project")
    (tmp_path / "run_a").mkdir()
    tracker = Tracker(tmp_path / "run_a", ["wandb"], interval=4, run_config={"model": "resnet18"})
    _train(tracker, range(2))
    tracker.close()
    init = calls[0][1]
    assert (init["project"], init["name"], init["config"]) == ("my-project", "run_a", {"model": "resnet18"})
    logged = [(call[1], call[2]) for call in calls if call[0] == "log"]
    assert [step for step, _ in logged] == [4, 4, 8, 8]  # every 4 updates, then the epoch's scalars
    assert logged[0][1] == ["train/images_per_s", "train/loss", "train/lr"]
    assert "val/top1" in logged[3][1] and "val/top1" not in logged[1][1]
    assert calls[-1] == ("finish",) and not (tmp_path / "run_a" / "tensorboard").exists()


def test_a_backend_that_is_not_installed_is_one_line_that_says_how(
    image_folder: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "_installed", lambda name: name != "wandb")  # as here: wandb not installed
    with pytest.raises(UserInputError, match=r"--vis wandb needs the wandb package.*pip install wandb"):
        require_vis_backends(["wandb"])
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    argv = tiny_args("resnet18", image_folder, tmp_path / "w", curriculum, 2, vis="wandb")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(pretrain, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install wandb" in err and not (tmp_path / "w").exists()
    cfg = Config.fromfile(str(RETINANET))
    with pytest.raises(UserInputError, match="pip install wandb"):
        add_vis_backends(cfg, ["wandb"], str(RETINANET))


@pytest.mark.parametrize("config", [RETINANET, UPERNET], ids=["mmdet", "mmseg"])
def test_vis_adds_mmengine_backends_beside_the_local_one(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config.fromfile(str(config))
    assert cfg.visualizer.vis_backends == [dict(type="LocalVisBackend")]  # default_runtime.py states it
    cfg.work_dir = "work_dirs/run_1"
    monkeypatch.setattr(tracking, "_installed", lambda name: True)  # as if wandb were installed
    backends = add_vis_backends(cfg, ["tensorboard", "wandb", "tensorboard"], str(config))
    assert [b["type"] for b in backends] == ["LocalVisBackend", "TensorboardVisBackend", "WandbVisBackend"]
    assert backends[2]["init_kwargs"]["name"] == "run_1"
    assert cfg.visualizer.vis_backends == backends


def test_show_dir_draws_every_test_image_the_way_each_library_does() -> None:
    det = Config.fromfile(str(RETINANET))
    draw_test_predictions(det, "drawn", segmentation=False, config=str(RETINANET))
    hook = det.default_hooks.visualization
    assert (hook.type, hook.draw, hook.test_out_dir) == ("DetVisualizationHook", True, "drawn")
    seg = Config.fromfile(str(UPERNET))
    draw_test_predictions(seg, "drawn", segmentation=True, config=str(UPERNET))
    hook = seg.default_hooks.visualization
    assert (hook.type, hook.draw, hook.interval, seg.visualizer.save_dir) == ("SegVisualizationHook", True, 1, "drawn")
