"""Pretraining fidelity: `efficienttrain++` and `efficienttrain` reproduce the official scripts value by value.

The official curves are computed here independently, from the official code written out in the test
(LeapLabTHU/EfficientTrain: `utils_buffer.cosine_scheduler`, the stage loop of `_ET_pp_main_<model>.py`
and the start-epoch rescaling of `utils_buffer.auto_load_model`; the ICCV `ET_training.py`), and compared
with ours at every epoch start, for an effective batch of 4096 on ImageNet-1k (312 updates per epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from etcore.errors import UserInputError
from pretraining.cli import main, resolve_config
from pretraining.curriculum import build_curriculum, curriculum_from_dict, save_curriculum_file, stage_batch
from pretraining.data import randaug_string
from pretraining.optim import IMAGENET_TRAIN_IMAGES, CurriculumLRSchedule, build_optimizer, peak_lr, updates_per_epoch
from pretraining.recipes import family_defaults, paper_differences

NITER = 1281167 // 4096  # main_buffer.py: num_training_steps_per_epoch = len(dataset_train) // total_batch_size
SWIN_T_RES = [96] * 2 + [160] * 4 + [224] * 4  # _ET_pp_main_swinT.py res_list
DEIT_S_RES = [96] * 2 + [160] * 4 + [192] * 2 + [224] * 2  # _ET_pp_main_deitS.py res_list


def official_cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """utils_buffer.cosine_scheduler (same in the ICCV utils.py), per iteration."""
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def official_etpp_epochs(epoch, res_list, warmup):
    """(input size, RandAugment magnitude, LR at the epoch's first update) of every epoch the official
    _ET_pp_main_<model>.py trains, in order: stage k runs main_buffer.py with --epochs rp, --end_epoch
    int(rp / 10 * (k + 1)), resuming from the previous stage's last checkpoint at
    round((ckpt_epoch + 1) * old_size**2 / new_size**2)."""
    trained, checkpoint = [], None  # checkpoint: (epoch, input_size) of the latest checkpoint-<epoch>.pth
    for k in range(10):
        size = res_list[k]
        ratio = (224 * 224) / (size * size)
        rp_epoch = int(epoch * ratio / 1)
        end_epoch = int(rp_epoch / 10 * (k + 1))
        start_epoch = 0 if checkpoint is None else round((checkpoint[0] + 1) * (checkpoint[1] ** 2) / (size**2))
        schedule = official_cosine_scheduler(4e-3, 1e-6, rp_epoch, NITER, warmup_epochs=warmup(epoch, ratio))
        for e in range(start_epoch, end_epoch):
            trained.append((size, k, schedule[e * NITER]))
            checkpoint = (e, size)
    return trained


def official_iccv_epochs(epochs):
    """ET_training.py: five runs of main.py with --epochs E --warmup_epochs 20 --end_epoch int(E / 5 * (k + 1)),
    sizes 160, 160, 160, 192, 224 and rand-m{2k+1}; main.py resumes at the checkpoint's epoch + 1."""
    sizes = [160] * 3 + [192] + [224]
    schedule = official_cosine_scheduler(4e-3, 1e-6, epochs, NITER, warmup_epochs=20)
    trained, start = [], 0
    for k in range(5):
        end = int(epochs / 5 * (k + 1))
        trained += [(sizes[k], 2 * k + 1, schedule[e * NITER]) for e in range(start, end)]
        start = max(start, end)
    return trained


def ours(model, curriculum, epochs, batch_size=256, accum_steps=16):
    """Our resolved run on one process with an effective batch of 4096: config, curriculum, per-epoch rows."""
    argv = ["--model", model, "--data", "d", "--work-dir", "w", "--curriculum", curriculum, "--epochs", str(epochs)]
    argv += ["--batch-size", str(batch_size), "--accum-steps", str(accum_steps), "--device", "cpu"]
    config, _, resolved, _ = resolve_config(argv)
    effective = config.batch_size * config.accum_steps
    assert effective == 4096 and updates_per_epoch(IMAGENET_TRAIN_IMAGES, effective) == NITER == 312
    import torch

    optimizer = build_optimizer(torch.nn.Linear(2, 2), config, peak_lr(config, effective))
    schedule = CurriculumLRSchedule(optimizer, resolved, config, NITER)
    rows = []
    for e in range(resolved.total_epochs):
        stage = resolved.stage_at(e)
        rows.append((stage.input_size, stage.randaug_magnitude, schedule.lr_at(e)))
    return config, resolved, schedule, rows


def assert_same_rows(official, mine):
    assert len(mine) == len(official)
    assert [(s, m) for s, m, _ in mine] == [(s, m) for s, m, _ in official]
    lr_official = np.array([lr for *_, lr in official])
    lr_mine = np.array([lr for *_, lr in mine])
    assert lr_mine[0] == lr_official[0] == 0.0  # linspace starts at start_warmup_value 0
    np.testing.assert_allclose(lr_mine[1:], lr_official[1:], rtol=1e-6, atol=0)


def test_efficienttrain_pp_swin_t_200_matches_the_official_lr_at_every_epoch():
    official = official_etpp_epochs(200, SWIN_T_RES, lambda epoch, ratio: int(20 / 1))
    config, curriculum, schedule, mine = ours("swin_tiny_patch4_window7_224", "efficienttrain++", 200)
    assert_same_rows(official, mine)
    assert len(mine) == 454 and curriculum.lr_axis == "stages"
    # warm-up: 20 epochs of stage 0's 1088-epoch cosine = 3.67 equivalent epochs, 1.8% of the compute
    assert schedule.warmup_end() == 20.0
    assert curriculum.compute_progress(20) == pytest.approx(20 * (96 / 224) ** 2 / curriculum.equivalent_epochs())
    assert 0.0183 < curriculum.compute_progress(20) < 0.0184
    # the rest of the official command line
    assert config.lowfreq == "resize" and config.drop_path == pytest.approx(0.2 * 200 / 200)
    assert config.clip_grad == 5.0
    assert family_defaults(config.model, curriculum, on_gpu=True)["amp"][0] is True
    assert [randaug_string(config.randaug, s.randaug_magnitude) for s in curriculum.stages] == [
        f"rand-m{k}-mstd0.5-inc1" for k in range(10)
    ]
    # 8 GPUs x --batch-size 256 x --accum-steps 2: bs_list 512 x1 below 224, 256 x2 at 224 (effective 4096)
    eight_gpus = [stage_batch(s, 224, 256, 2, True) for s in curriculum.stages]
    assert eight_gpus == [(512, 1)] * 6 + [(256, 2)] * 4


def test_efficienttrain_pp_deit_s_100_matches_the_official_lr_at_every_epoch():
    official = official_etpp_epochs(100, DEIT_S_RES, lambda epoch, ratio: int(0.2 * epoch * ratio / 1))
    config, curriculum, schedule, mine = ours("deit_small_patch16_224", "efficienttrain++", 100)
    assert_same_rows(official, mine)
    # DeiT's warm-up is 20% of every stage's own cosine: it ends where the 160 stages begin (epoch 108)
    assert schedule.warmup_end() == curriculum.stages[2].start_epoch == 108
    assert config.drop_path == pytest.approx(0.1 * 100 / 200) and config.clip_grad == 5.0
    assert config.lowfreq == "resize"
    # _ET_pp_main_deitS.py: 512 x1 at 96 and 160, 256 x2 at 192 and 224
    assert [stage_batch(s, 224, 256, 2, True) for s in curriculum.stages] == [(512, 1)] * 6 + [(256, 2)] * 4


def test_efficienttrain_iccv_convnext_t_300_matches_the_official_lr_at_every_epoch():
    official = official_iccv_epochs(300)
    config, curriculum, schedule, mine = ours("convnext_tiny", "efficienttrain", 300)
    assert_same_rows(official, mine)
    assert schedule.warmup_end() == 20.0 and curriculum.lr_axis == "epochs"
    assert config.lowfreq == "fft" and config.drop_path == 0.1 and config.ema and not config.amp
    assert config.model_kwargs == {"ls_init_value": 1e-6}
    # ET_training.py with --final_bs 128 on 8 GPUs: 256 x2 in the four stages below 224, 128 x4 at 224
    assert [stage_batch(s, 224, 128, 4, True) for s in curriculum.stages] == [(256, 2)] * 4 + [(128, 4)]


@pytest.mark.parametrize("epochs", [1, 2, 3, 7, 50, 99, 100, 150, 201, 300, 301])
def test_efficienttrain_stage_ends_are_the_official_int_of_e_over_5(epochs):
    curriculum = build_curriculum("efficienttrain", epochs)
    official_ends = sorted({int(epochs / 5 * (k + 1)) for k in range(5)} - {0})
    assert [s.end_epoch for s in curriculum.stages] == official_ends


@pytest.mark.parametrize("epochs", [37, 50, 150, 300])
def test_efficienttrain_pp_layout_matches_the_official_loop_at_other_budgets(epochs):
    official = official_etpp_epochs(epochs, SWIN_T_RES, lambda epoch, ratio: 20)
    *_, mine = ours("swin_tiny_patch4_window7_224", "efficienttrain++", epochs)
    assert_same_rows(official, mine)


def test_mid_epoch_updates_follow_the_official_per_update_schedule():
    _, curriculum, schedule, _ = ours("swin_tiny_patch4_window7_224", "efficienttrain++", 200)
    stage = curriculum.stages[2]  # 160 px: epochs 78.. of a 392-epoch cosine, warm-up 20
    official = official_cosine_scheduler(4e-3, 1e-6, 392, NITER, warmup_epochs=20)
    for epoch in (stage.start_epoch, stage.start_epoch + 5):
        for update in (1, 155, NITER - 1):
            position = stage.lr_start_epoch + epoch - stage.start_epoch
            assert schedule.lr_at(epoch, update) == pytest.approx(official[position * NITER + update], rel=1e-6)
    warm = official_cosine_scheduler(4e-3, 1e-6, 1088, NITER, warmup_epochs=20)
    assert schedule.lr_at(19, NITER - 1) == pytest.approx(warm[20 * NITER - 1], rel=1e-9) == pytest.approx(4e-3)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_the_official_schedule_round_trips_through_a_curriculum_file(tmp_path, suffix):
    named = build_curriculum("efficienttrain++", 100, model_name="deit_small_patch16_224")
    path = save_curriculum_file(named, tmp_path / f"etpp{suffix}")
    reread = build_curriculum(str(path), None)
    assert reread == named and curriculum_from_dict(json.loads(json.dumps(named.to_dict()))) == named
    config, *_ = resolve_config(["--model", "deit_small_patch16_224", "--data", "d", "--work-dir", "w"])
    import torch

    def lrs(curriculum):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=4e-3)
        schedule = CurriculumLRSchedule(optimizer, curriculum, config, NITER)
        return [schedule.lr_at(e, u) for e in range(curriculum.total_epochs) for u in (0, 100)]

    assert lrs(reread) == lrs(named)


def test_shipped_efficienttrain_pp_example_spells_out_the_named_curriculum():
    import pretraining

    example = Path(pretraining.__file__).parent / "curricula" / "efficienttrain_pp_swin_tiny_200.yaml"
    from_file = build_curriculum(str(example), None)
    named = build_curriculum("efficienttrain++", 200, model_name="swin_tiny_patch4_window7_224")
    assert from_file.stages == named.stages
    fields = ("lr_axis", "lowfreq", "budget_epochs", "drop_path_scale", "warmup_epochs", "total_epochs")
    assert all(getattr(from_file, f) == getattr(named, f) for f in fields)


def test_batch_scales_follow_the_official_scripts_per_model():
    def scales(model):
        return [s.batch_scale for s in build_curriculum("efficienttrain++", 200, model_name=model).stages]

    assert scales("swin_small_patch4_window7_224") == [4] * 2 + [2] * 4 + [1] * 4  # _ET_pp_main_swinS.py
    assert scales("swin_base_patch4_window7_224") == [4] * 2 + [2] * 4 + [1] * 4
    assert scales("convnext_small") == [2] * 6 + [1] * 4  # 128 x4, then 64 x8
    assert scales("resnet50") == [1] * 10  # _ET_pp_main_res50.py: 512 x1 throughout
    assert [s.batch_scale for s in build_curriculum("efficienttrain", 300).stages] == [2, 2, 2, 2, 1]


def test_stage_batch_keeps_the_effective_batch_and_needs_accumulation_to_trade():
    curriculum = build_curriculum("efficienttrain++", 200, model_name="swin_base_patch4_window7_224")
    first, last = curriculum.stages[0], curriculum.stages[-1]
    assert stage_batch(first, 224, 128, 4, True) == (512, 1)  # the official 8-GPU Swin-B layout
    assert stage_batch(first, 224, 128, 2, True) == (256, 1)  # only x2 is possible
    assert stage_batch(first, 224, 128, 1, True) == (128, 1)  # --accum-steps 1: nothing to trade
    assert stage_batch(first, 224, 128, 4, False) == (128, 4)
    assert stage_batch(last, 224, 128, 4, True) == (128, 4)
    for accum in (1, 2, 3, 4, 6, 8):
        for stage in curriculum.stages:
            batch, steps = stage_batch(stage, 224, 64, accum, True)
            assert batch * steps == 64 * accum


def test_paper_differences_name_what_is_not_official():
    argv = ["--model", "swin_tiny_patch4_window7_224", "--data", "d", "--work-dir", "w"]
    argv += ["--curriculum", "efficienttrain++", "--epochs", "200", "--batch-size", "256", "--accum-steps", "16"]
    config, _, curriculum, _ = resolve_config([*argv, "--device", "cpu"])
    config.amp = True  # as on a GPU
    assert paper_differences(config, curriculum, world_size=1) == []
    config, _, curriculum, _ = resolve_config([*argv, "--lowfreq", "fft", "--warmup-epochs", "5", "--accum-steps", "1"])
    config.amp = True
    differences = "\n".join(paper_differences(config, curriculum, world_size=1))
    assert "lowfreq = 'fft' (official: 'resize')" in differences
    assert "warmup_epochs = 5.0 (official: None)" in differences
    assert "effective batch 256 (official: 4096" in differences
    assert "stages 0-5: per-device batch not scaled" in differences


def test_warmup_that_does_not_fit_a_stage_cosine_is_shortened_and_said(capsys):
    # At a budget of 10, the 160 stages' own cosine is int(10 * 1.96) = 19 epochs: 20 warm-up epochs leave no
    # cosine (the official cosine_scheduler would fail its assert); 20/300 of it is used, and the plan says so.
    argv = ["--model", "swin_tiny_patch4_window7_224", "--data", "d", "--work-dir", "w", "--curriculum"]
    assert main([*argv, "efficienttrain++", "--epochs", "10", "--dry-run", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "note: warm-up 20 does not fit stage 2's cosine of 19 epochs" in out


def test_dry_run_prints_every_stage_warmup_end_lowfreq_and_differences(tmp_path, capsys):
    argv = ["--model", "swin_tiny_patch4_window7_224", "--curriculum", "efficienttrain++", "--epochs", "200"]
    argv += ["--data", str(tmp_path / "D"), "--work-dir", str(tmp_path / "W"), "--dry-run", "--device", "cpu"]
    assert main([*argv, "--batch-size", "256", "--accum-steps", "16"]) == 0
    out = capsys.readouterr().out
    assert "312 updates per epoch = 1281167 train images // 4096 (ImageNet-1k assumed" in out
    assert (
        "stage 0: epochs    0-107  (108)  size   96  randaug m=0 (rand-m0-mstd0.5-inc1)  batch 512/device x accum 8"
        "  lr 0 -> 0.003935  [its cosine: epochs 0-107 of 1088, warm-up 20]"
    ) in out
    assert "stage 9: epochs  434-453  ( 20)  size  224  randaug m=9 (rand-m9-mstd0.5-inc1)  batch 256/device" in out
    assert "warm-up ends at epoch 20 of 454 (3.67 equivalent full-size epochs, 1.8% of the compute)" in out
    assert "low-frequency operation: resize: LANCZOS" in out
    assert "lowfreq                = 'resize'                         (curriculum efficienttrain++'s own)" in out
    assert "  - amp = False (official: True)" in out  # this is not a GPU
    assert not (tmp_path / "W").exists()


def test_the_curriculum_line_states_the_resolved_run_not_the_curriculum_defaults(tmp_path, capsys):
    """The demo's ET run trains with a 1-epoch warm-up and --lowfreq direct: its printed line must say so (it
    used to print the curriculum's own 20 warm-up epochs and fft)."""
    argv = ["--model", "resnet18", "--curriculum", "efficienttrain", "--epochs", "12", "--final-size", "64"]
    argv += ["--data", str(tmp_path / "D"), "--work-dir", str(tmp_path / "W"), "--dry-run", "--device", "cpu"]
    assert main([*argv, "--warmup-epochs", "1", "--lowfreq", "direct", "--drop-path", "0.05"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("curriculum efficienttrain:"))
    assert "LR over epochs, warm-up 1, drop path 0.05, low frequencies by direct" in line, line
    assert main(argv) == 0  # without overrides: the curriculum's own values, resolved
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("curriculum efficienttrain:"))
    # the recipe's 20 warm-up epochs do not fit 12 epochs: 20 per 300 of them is what runs
    assert "warm-up 0.8, drop path timm's default, low frequencies by fft" in line, line


@pytest.mark.parametrize(
    "extra, stage, message",
    [
        ({}, {"lr_epochs": 10, "lr_start_epoch": 0}, "only apply with lr_axis: stages"),
        ({"lr_axis": "stages"}, {"lr_epochs": 10}, "'lr_start_epoch' is missing"),
        ({"lr_axis": "stages"}, {"lr_epochs": 10, "lr_start_epoch": 8}, "run past the end of its cosine"),
        ({}, {"batch_scale": 0}, "batch_scale must be a whole number >= 1"),
        ({"lowfreq": "bilinear"}, {}, "lowfreq 'bilinear' is unknown"),
        ({"warmup_epochs": -1}, {}, "warmup_epochs must be a number >= 0"),
    ],
)
def test_malformed_schedule_fields_in_files_are_refused(tmp_path, extra, stage, message):
    path = tmp_path / "c.json"
    stages = [{"epochs": 4, "input_size": 224, "randaug_magnitude": 9, **stage}]
    path.write_text(json.dumps({"final_size": 224, **extra, "stages": stages}))
    with pytest.raises(UserInputError, match=message) as info:
        build_curriculum(str(path), None)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_engine_trains_the_official_updates_and_lr_of_a_stage_schedule(image_folder, tmp_path):
    """A tiny run of a two-stage `lr_axis: stages` file: per-stage batch, leftover micro-batches skipped,
    and the LR of the last update of every epoch equal to the official per-update formula."""
    from pretrain_fixtures import read_log, tiny_args

    first = {"epochs": 2, "input_size": 32, "randaug_magnitude": 2, "batch_scale": 3}
    first.update(lr_epochs=8, lr_start_epoch=0, lr_warmup_epochs=1)
    second = {"epochs": 1, "input_size": 64, "randaug_magnitude": 6, "lr_epochs": 4, "lr_start_epoch": 2}
    second["lr_warmup_epochs"] = 0
    path = tmp_path / "stages.json"
    path.write_text(json.dumps({"final_size": 64, "lr_axis": "stages", "stages": [first, second]}))
    work = tmp_path / "run"
    args = tiny_args("convnext_atto", image_folder, work, path, 3, batch_size=1, accum_steps=9, mixup=0, cutmix=0)
    at = args.index("--warmup-epochs")
    del args[at : at + 2]  # the file's own warm-ups
    assert main([*args, "--min-lr", "1e-5"]) == 0
    log = read_log(work)
    # 24 images // effective 9 = 2 updates per epoch: 18 images; the 6 left over are skipped, as officially
    assert [(r["batch_size"], r["accum_steps"]) for r in log] == [(3, 3), (3, 3), (1, 9)]
    assert [r["updates"] for r in log] == [2, 4, 6] and log[-1]["images_seen"] == 3 * 18
    n = 2  # the logged LR is that of each epoch's last update (index 1)
    stage0 = official_cosine_scheduler(1e-3, 1e-5, 8, n, warmup_epochs=1)
    stage1 = official_cosine_scheduler(1e-3, 1e-5, 4, n, warmup_epochs=0)
    expected = [stage0[0 * n + 1], stage0[1 * n + 1], stage1[2 * n + 1]]
    assert [r["lr"] for r in log] == pytest.approx(expected, rel=1e-9)
