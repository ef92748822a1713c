"""Curriculum stages switch inside one run for ConvNets, Swin and DeiT; the work dir follows docs/FORMATS.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from etcore.checkpoint_io import load_checkpoint_file
from pretrain_fixtures import TINY_MODELS, read_log, tiny_args, write_two_stage_curriculum
from pretraining.cli import main, resolve_config
from pretraining.model import build_model, resize_model_input
from pretraining.optim import CurriculumLRSchedule, build_optimizer

PROVENANCE_KEYS = {
    "model_name",
    "model_kwargs",
    "curriculum",
    "lowfreq",
    "epochs",
    "equivalent_epochs",
    "wall_clock_s",
    "device_hours",
    "devices",
    "images_seen",
    "seed",
    "best_top1",
    "final_top1",
    "ema_top1",
    "versions",
    "git_commit",
}
LOG_KEYS = {
    "epoch",
    "stage",
    "input_size",
    "randaug_magnitude",
    "lr",
    "train_loss",
    "images_per_s",
    "epoch_time_s",
    "wall_clock_s",
    "top1",
    "top5",
    "ema_top1",
}


@pytest.fixture(scope="module")
def data(image_folder: Path) -> Path:
    return image_folder


@pytest.mark.slow
@pytest.mark.parametrize("model", ["convnext_atto", "swin_tiny_patch4_window7_224", "deit_tiny_patch16_224"])
def test_two_stage_run_switches_size_and_writes_documented_files(model: str, data: Path, tmp_path: Path) -> None:
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    work = tmp_path / "run"
    assert main(tiny_args(model, data, work, curriculum, epochs=2, ema=True)) == 0

    log = read_log(work)
    assert [row["input_size"] for row in log] == [32, 64]
    assert [row["randaug_magnitude"] for row in log] == [2.0, 6.0]
    assert LOG_KEYS <= set(log[0])
    assert all(row["top1"] is not None and row["ema_top1"] is not None for row in log)

    final = load_checkpoint_file(work / "final.pth")
    assert final["format"] == "efficienttrain-det/pretrain-v1"
    prov = final["provenance"]
    assert PROVENANCE_KEYS <= set(prov)
    assert prov["model_name"] == model and prov["epochs"] == 2 and prov["devices"] == 1
    assert prov["curriculum"]["stages"][0]["input_size"] == 32
    assert prov["equivalent_epochs"] == pytest.approx((32 / 64) ** 2 + 1)
    assert prov["images_seen"] == 2 * 24  # 24 train images, batch 4 divides them
    assert prov["final_top1"] == log[-1]["top1"] and prov["ema_top1"] == log[-1]["ema_top1"]
    # the wall clock splits into training (the cost column's) and evaluation; checkpoints are apart
    assert prov["train_time_s"] > 0 and prov["eval_time_s"] > 0
    assert prov["train_time_s"] + prov["eval_time_s"] <= prov["wall_clock_s"] + 1e-3
    assert prov["train_time_s"] == pytest.approx(sum(r["stage_switch_s"] + r["train_s"] for r in log), abs=0.01)
    assert json.loads((work / "curriculum.json").read_text()) == prov["curriculum"]
    # The final weights are those of the model at the final size: a fresh timm model takes every key.
    fresh = timm.create_model(model, pretrained=False, **prov["model_kwargs"])
    fresh.load_state_dict(final["model"], strict=True)
    fresh.load_state_dict(final["model_ema"], strict=True)
    assert fresh(torch.randn(1, 3, 64, 64)).shape == (1, 3)


@pytest.mark.slow
def test_finished_run_is_reported_not_retrained(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    args = tiny_args("resnet18", data, tmp_path / "run", curriculum, epochs=2, mixup=0.0, cutmix=0.0)
    assert main(args) == 0
    before = (tmp_path / "run" / "final.pth").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "already holds this run" in capsys.readouterr().out
    assert (tmp_path / "run" / "final.pth").stat().st_mtime_ns == before
    assert len(read_log(tmp_path / "run")) == 2


@pytest.mark.slow
def test_resize_mode_with_batch_scaling_and_accumulation(data: Path, tmp_path: Path) -> None:
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    work = tmp_path / "run"
    args = tiny_args(
        "convnext_atto",
        data,
        work,
        curriculum,
        epochs=2,
        lowfreq="resize",
        scale_batch_with_size=True,
        accum_steps=2,
        batch_size=2,
    )
    assert main(args) == 0
    log = read_log(work)
    # Small stage: double batch, half the accumulation; effective batch 4 throughout.
    assert [(r["batch_size"], r["accum_steps"]) for r in log] == [(4, 1), (2, 2)]
    assert [r["updates"] for r in log] == [6, 12]
    assert load_checkpoint_file(work / "final.pth")["provenance"]["lowfreq"] == "resize"


@pytest.mark.parametrize("model", ["swin_tiny_patch4_window7_224", "deit_tiny_patch16_224"])
def test_resize_swaps_parameters_into_optimizer_and_resamples_moments(model: str) -> None:
    net, _ = build_model(model, 3, 64, TINY_MODELS[model], None)
    config, *_ = resolve_config(["--model", model, "--data", "d", "--work-dir", "w"])
    optimizer = build_optimizer(net, config, 1e-3)
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    replaced = resize_model_input(net, 32, optimizer)
    assert replaced
    params = dict(net.named_parameters())
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in net.parameters()} == in_optimizer
    for name in replaced:
        state = optimizer.state[params[name]]
        assert state["exp_avg"].shape == params[name].shape
        assert (state["exp_avg_sq"] >= 0).all()
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # the resized moments are usable
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_lr_is_continuous_over_stages_and_follows_compute_with_lr_progress_compute() -> None:
    """`--lr-progress compute`: one cosine over compute done (not the official per-stage cosines, which are the
    default of efficienttrain++ and are checked in test_pretraining_fidelity.py)."""
    config, _, curriculum, _ = resolve_config(
        [
            "--model",
            "convnext_tiny",
            "--data",
            "d",
            "--work-dir",
            "w",
            "--curriculum",
            "efficienttrain++",
            "--epochs",
            "100",
            "--warmup-epochs",
            "0",
            "--lr",
            "1.0",
            "--min-lr",
            "0",
            "--lr-progress",
            "compute",
        ]
    )
    assert curriculum.total_epochs > 100  # budget in equivalent epochs; early stages are cheap
    net = torch.nn.Linear(2, 2)
    schedule = CurriculumLRSchedule(build_optimizer(net, config, 1.0), curriculum, config)
    assert schedule.by_compute
    boundary = curriculum.stages[6].start_epoch  # 160 -> 224 px
    lrs = []
    for epoch in (boundary - 1e-6, boundary, curriculum.total_epochs / 2):
        schedule.step(epoch)
        lrs.append(schedule.optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(lrs[1], abs=1e-5)  # no jump at the stage switch
    half = curriculum.compute_progress(curriculum.total_epochs / 2)
    assert lrs[2] == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(torch.pi * half)).item()), abs=1e-6)
    assert half < 0.5  # cheaper early epochs: half the passes are less than half the compute


def test_family_recipe_defaults_and_overrides(tmp_path: Path) -> None:
    config, sources, *_ = resolve_config(["--model", "convnext_tiny", "--data", "d", "--work-dir", "w"])
    assert config.ema and not config.amp and config.model_kwargs == {"ls_init_value": 1e-6}
    assert config.drop_path == 0.1 and config.clip_grad is None and sources["ema"].startswith("recipe")
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("clip-grad: 1.0\nmodel_kwargs: {depths: [1, 1, 1, 1]}\nema: false\n")
    config, sources, *_ = resolve_config(
        [
            "--model",
            "swin_tiny_patch4_window7_224",
            "--data",
            "d",
            "--work-dir",
            "w",
            "--config",
            str(yaml_file),
            "--clip-grad",
            "2.0",
        ]
    )
    assert config.clip_grad == 2.0 and sources["clip_grad"] == "command line"
    assert config.ema is False and sources["ema"] == "config file"
    assert config.model_kwargs == {"depths": [1, 1, 1, 1]} and config.drop_path == 0.2


def test_dry_run_prints_the_recipe_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "w"
    assert (
        main(
            [
                "--model",
                "swin_tiny_patch4_window7_224",
                "--data",
                str(tmp_path),
                "--work-dir",
                str(work),
                "--curriculum",
                "efficienttrain",
                "--epochs",
                "300",
                "--batch-size",
                "256",
                "--accum-steps",
                "2",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "clip_grad              = 5.0" in out and "(recipe: swin: gradient clipping 5)" in out
    assert "peak_lr                = 0.0005" in out  # 4e-3 * 512 / 4096
    assert "size  160  randaug m=1" in out and "size  224  randaug m=9" in out
    assert not work.exists()


def test_size_multiple_sets_the_curriculum_rounding(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = [
        "--model",
        "convnext_atto",
        "--data",
        str(tmp_path),
        "--work-dir",
        str(tmp_path / "w"),
        "--curriculum",
        "efficienttrain",
        "--epochs",
        "10",
        "--final-size",
        "64",
        "--dry-run",
    ]
    assert main(common) == 0  # the model's own multiple (32): 160/224*64 = 45.7 rounds to 32
    assert "size   32  randaug m=1" in capsys.readouterr().out
    assert main([*common, "--size-multiple", "16"]) == 0  # 45.7 -> 48, keeping the paper's ~0.65 compute ratio
    out = capsys.readouterr().out
    assert "size   48  randaug m=1" in out and "(ratio 0.650)" in out


@pytest.mark.parametrize(
    "curriculum, eval_every, evaluated",
    [
        ("efficienttrain", None, [1, 3, 5, 7, 9]),  # 5 stages of 2 epochs: the end of every stage
        ("efficienttrain", 3, [2, 5, 8, 9]),  # every 3 epochs, and always the last
        ("baseline", None, [9]),  # one stage: only the end
    ],
)
def test_validation_runs_at_stage_ends_by_default_and_always_last(curriculum, eval_every, evaluated) -> None:
    from pretraining.distributed import DistContext
    from pretraining.engine import Pretrainer

    argv = ["--model", "resnet18", "--data", "d", "--work-dir", "w", "--curriculum", curriculum, "--epochs", "10"]
    config, _, resolved, _ = resolve_config(argv + ([] if eval_every is None else ["--eval-every", str(eval_every)]))
    trainer = Pretrainer(config, resolved, DistContext())
    assert [epoch for epoch in range(10) if trainer.evaluates_after(epoch)] == evaluated


@pytest.mark.parametrize("opt", ["adamw", "adam"])
def test_fused_adam_takes_the_same_steps_as_the_loop(opt: str) -> None:
    config, *_ = resolve_config(["--model", "resnet18", "--data", "d", "--work-dir", "w", "--opt", opt])
    nets = [timm.create_model("resnet18", pretrained=False, num_classes=3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    start = [p.detach().clone() for p in nets[0].parameters()]
    fused, loop = (build_optimizer(net, config, 1e-2) for net in nets)
    assert all(group["fused"] for group in fused.param_groups)
    for group in loop.param_groups:
        group["fused"] = False  # torch's per-tensor loop, the reference
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # the same gradients for both, so only the update rule can differ
        grads = [torch.randn(p.shape, generator=generator) for p in start]
        for net, optimizer in ((nets[0], fused), (nets[1], loop)):
            for param, grad in zip(net.parameters(), grads):
                param.grad = grad.clone()
            optimizer.step()
    for a, b, before in zip(nets[0].parameters(), nets[1].parameters(), start):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, before)


def test_only_adam_and_adamw_are_built_with_the_fused_kernel() -> None:
    config, *_ = resolve_config(["--model", "resnet18", "--data", "d", "--work-dir", "w", "--opt", "sgd"])
    optimizer = build_optimizer(timm.create_model("resnet18", pretrained=False, num_classes=3), config, 1e-2)
    assert isinstance(optimizer, torch.optim.SGD) and not optimizer.defaults.get("fused")
