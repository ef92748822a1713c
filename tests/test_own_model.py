"""A timm model of your own (tests/tiny_registered_model.py): pretrained with `tools/pretrain.py --import`, tracked
in TensorBoard and timm's summary.csv, exported as a timm hub folder that timm loads, and fine-tuned as the tiny
RetinaNet's backbone through the config's `custom_imports`, with TensorBoard, drawn test predictions and the
model-zoo table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import backbones.convert as convert
from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import run_cli
from pretrain_fixtures import read_log, tiny_args, write_two_stage_curriculum
from pretraining.cli import main as pretrain
from pretraining.tracking import EPOCH_SCALARS
from reporting.cli import main as compare

ROOT = Path(__file__).resolve().parents[1]
MODULE = "tiny_registered_model"  # tests/ is on sys.path under pytest; subprocesses get it on PYTHONPATH
MODEL = "et_test_tinynet"
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files below `folder`, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    runs = sorted({p.parent for p in folder.rglob("events.out.tfevents.*")})
    assert runs, f"no event files below {folder}"
    for run in runs:
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return scalars


def run_tool(main, argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    return exit_info.value.code


@pytest.fixture(scope="module")
def pretrained(image_folder: Path, module_tmp: Path) -> Path:
    """et_test_tinynet pretrained for 2 epochs (32 then 64 px), TensorBoard on, loss logged every 5 updates."""
    root = module_tmp
    curriculum = write_two_stage_curriculum(root / "two.json")
    work_dir = root / "pretrain"
    argv = tiny_args(MODEL, image_folder, work_dir, curriculum, 2, vis="tensorboard", log_interval=5)
    assert pretrain(["--import", MODULE, *argv]) == 0
    return work_dir


def test_own_model_pretrains_with_import_and_records_it(pretrained: Path) -> None:
    provenance = load_checkpoint_file(pretrained / "final.pth")["provenance"]
    assert provenance["model_name"] == MODEL
    assert provenance["imports"] == [MODULE] and provenance["recipe"]["imports"] == [MODULE]
    data_config = provenance["data_config"]
    assert data_config["input_size"] == [3, 64, 64] and data_config["interpolation"] == "bicubic"
    assert data_config["mean"] == list(timm.data.IMAGENET_DEFAULT_MEAN)  # the model's default_cfg, as trained


def test_pretraining_writes_timm_summary_and_tensorboard_scalars(pretrained: Path) -> None:
    log = read_log(pretrained)
    with open(pretrained / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "train_loss", "eval_top1", "eval_top5", "lr"]  # timm's columns
    assert [int(r["epoch"]) for r in rows] == [r["epoch"] for r in log] == [0, 1]
    assert [float(r["eval_top1"]) for r in rows] == pytest.approx([r["top1"] for r in log])  # both epochs end a stage
    assert [float(r["train_loss"]) for r in rows] == pytest.approx([r["train_loss"] for r in log])

    scalars = tensorboard_scalars(pretrained / "tensorboard")
    updates = [r["updates"] for r in log]
    assert updates == [6, 12]  # 24 images, batch 4
    assert [step for step, _ in scalars["train/loss"]] == [5, 10]  # --log-interval 5
    assert {"train/lr", "train/images_per_s"} <= set(scalars)
    for name in EPOCH_SCALARS:  # one point per epoch, at the epoch's last update
        assert [step for step, _ in scalars[f"epoch/{name}"]] == updates, name
    assert [value for _, value in scalars["epoch/input_size"]] == [32, 64]
    assert [value for _, value in scalars["epoch/randaug_magnitude"]] == [2, 6]
    assert [value for _, value in scalars["epoch/stage"]] == [0, 1]
    assert [value for _, value in scalars["val/top1"]] == pytest.approx([r["top1"] for r in log])
    assert [value for _, value in scalars["epoch/train_loss"]] == pytest.approx([r["train_loss"] for r in log])


def test_unknown_import_and_unregistered_model_are_one_line(image_folder: Path, tmp_path: Path, capsys) -> None:
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    argv = tiny_args(MODEL, image_folder, tmp_path / "w", curriculum, 2)
    assert run_tool(pretrain, ["--import", "no_such_module_here", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--import no_such_module_here: no module named 'no_such_module_here'" in err
    assert run_tool(pretrain, ["--import", "tiny_registered_model.py", *argv]) == 2
    assert "is not a module name" in capsys.readouterr().err
    argv = tiny_args("resnet18", image_folder, tmp_path / "w", curriculum, 2)
    assert run_tool(pretrain, [*argv, "--model", "et_test_not_registered"]) == 2
    assert "pass --import MODULE" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing half-written


def test_hub_folder_loads_in_timm_with_the_features_of_final_pth(pretrained: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    assert run_tool(convert.main, [str(pretrained / "final.pth"), "--hub-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    provenance = load_checkpoint_file(pretrained / "final.pth")["provenance"]
    assert config["architecture"] == MODEL and config["num_classes"] == 3
    assert config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert config["pretrained_cfg"]["mean"] == provenance["data_config"]["mean"]
    assert config["pretrained_cfg"]["crop_pct"] == provenance["data_config"]["crop_pct"]
    assert config["provenance"] == json.loads(json.dumps(provenance)) and config["provenance"]["imports"] == [MODULE]
    assert config["converted_from"]["checkpoint"] == str(pretrained / "final.pth")

    reference = timm.create_model(MODEL, pretrained=False, **provenance["model_kwargs"]).eval()
    reference.load_state_dict(load_checkpoint_file(pretrained / "final.pth")["model"], strict=True)
    from_folder = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    from_file = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
        **config["model_args"],
    ).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference.forward_features(x)
        assert torch.equal(from_folder.forward_features(x), expected)
        assert torch.equal(from_file.forward_features(x), expected)
        assert torch.equal(from_folder(x), reference(x))
    assert tuple(from_folder.pretrained_cfg["input_size"]) == (3, 64, 64)

    # a second export replaces the folder; a folder holding anything else is refused, nothing written
    assert run_tool(convert.main, [str(pretrained / "final.pth"), "--hub-dir", str(out)]) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert run_tool(convert.main, [str(pretrained / "final.pth"), "--hub-dir", str(other)]) == 2
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_hub_export_refuses_a_checkpoint_without_the_whole_model(pretrained: Path, tmp_path: Path, capsys) -> None:
    state = load_checkpoint_file(pretrained / "final.pth")["model"]
    headless = tmp_path / "headless.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")}, headless)
    argv = [str(headless), "--hub-dir", str(tmp_path / "hub"), "--model", MODEL, "--model-kwargs", '{"num_classes": 3}']
    assert run_tool(convert.main, [*argv, "--allow-missing", "^head\\."]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks head.weight, head.bias" in err
    assert not list(tmp_path.glob("*hub*"))  # no folder, no staging left behind
    assert run_tool(convert.main, [str(headless)]) == 2
    assert "give DST" in capsys.readouterr().err


def _own_model_config(tmp_path: Path, checkpoint: Path) -> Path:
    """A user's config: the tiny RetinaNet with the own model as backbone, imported through custom_imports."""
    config = tmp_path / "retinanet_et-test-tinynet_fpn_tiny-demo.py"
    config.write_text(
        f"_base_ = '{RETINANET.as_posix()}'\n"
        f"custom_imports = dict(imports=['backbones', '{MODULE}'], allow_failed_imports=False)\n"
        f"model = dict(backbone=dict(model_name='{MODEL}', checkpoint='{checkpoint.as_posix()}'),\n"
        "             neck=dict(in_channels=[16, 24, 32]))\n"
        f"benchmark = dict(detector='retinanet', backbone='{MODEL}', schedule='tiny')\n"
        "default_hooks = dict(logger=dict(interval=1))\n"
    )
    return config


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.subprocess
def test_own_model_fine_tunes_as_retinanet_backbone_with_tensorboard_show_dir_and_zoo(
    pretrained: Path, coco_tiny: Path, tmp_path: Path
) -> None:
    config = _own_model_config(tmp_path, pretrained / "final.pth")
    work_dir = tmp_path / "retinanet"
    options = [
        "--cfg-options",
        f"data_root={coco_tiny}/",
        "train_cfg.max_iters=3",
        "default_hooks.checkpoint.interval=3",
    ]
    _run("tools/train.py", str(config), "--work-dir", str(work_dir), "--vis", "tensorboard", *options)
    record = json.loads((work_dir / "pretrain_provenance.json").read_text())
    assert record["provenance"]["model_name"] == MODEL and record["provenance"]["imports"] == [MODULE]
    scalars = tensorboard_scalars(work_dir)  # <work_dir>/<timestamp>/vis_data/events.out.tfevents.*
    assert [step for step, _ in scalars["loss"]] == [1, 2, 3] and [step for step, _ in scalars["lr"]] == [1, 2, 3]

    show = tmp_path / "drawn"
    test_options = ["--cfg-options", f"data_root={coco_tiny}/", "model.test_cfg.score_thr=0.0"]
    _run("tools/test.py", str(config), str(work_dir / "iter_3.pth"), "--work-dir", str(work_dir),
         "--show-dir", str(show), *test_options)  # fmt: skip
    val_images = sorted(p.name for p in (coco_tiny / "val").iterdir())
    assert sorted(p.name for p in show.iterdir()) == val_images  # one drawn image per test image, mmdet's names
    metrics = json.loads((work_dir / "coco_metrics.json").read_text())
    complexity = metrics["complexity"]
    assert complexity["params"] == _parameter_count(config) and complexity["flops"] > 0
    height, width = complexity["input_shape"]
    assert height % 32 == 0 and width % 32 == 0 and max(height, width) <= 192  # the padded test size
    assert Path(metrics["train_log"]).parent == work_dir and (Path(metrics["train_log"]) / "vis_data").is_dir()

    zoo = tmp_path / "zoo" / "README.md"
    assert compare([str(work_dir), "--format", "zoo", "--out", str(zoo)]) == 0
    text = zoo.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {MODEL} "))
    assert f"| {height}×{width} |" in row and f"| {complexity['params'] / 1e6:.2f} |" in row
    links = [part.split(")")[0] for part in row.split("](")[1:]]
    assert len(links) == 4  # config, log, json log, checkpoint
    assert all((zoo.parent / link).is_file() for link in links), links
    assert all(not Path(link).is_absolute() for link in links)


def _parameter_count(config: Path) -> int:
    """The detector's parameters, counted independently of mmengine.analysis."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    cfg = Config.fromfile(str(config))
    init_default_scope("mmdet")
    return sum(p.numel() for p in MODELS.build(cfg.model).parameters())
