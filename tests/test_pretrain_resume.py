"""Reliability: a run killed (SIGKILL) inside a stage, at a stage boundary or while writing a checkpoint
resumes to bit-for-bit the same weights, EMA and log as an uninterrupted --deterministic run."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from etcore.checkpoint_io import load_checkpoint_file
from fault_callbacks import fault_command
from pretrain_fixtures import (
    assert_same_run,
    assert_same_weights,
    load_weights,
    tiny_args,
    write_two_stage_curriculum,
)
from pretraining.checkpoint import signature_differences
from pretraining.cli import main
from pretraining.config import PretrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
MODEL = "swin_tiny_patch4_window7_224"  # size-bound tables and their AdamW moments are resampled at the switch
# 24 train images / batch 4 = 6 steps per epoch; epochs 0-1 at 32 px (stage 0), epoch 2 at 64 px (stage 1).


@pytest.fixture(scope="module")
def setup(module_tmp: Path, image_folder: Path) -> dict:
    root = module_tmp
    data = image_folder
    curriculum = write_two_stage_curriculum(root / "two.json", small_epochs=2, final_epochs=1)
    reference = root / "reference"

    def args(work: Path) -> list[str]:
        return tiny_args(MODEL, data, work, curriculum, epochs=3, ema=True, deterministic=True, drop_path=0.1)

    assert main(args(reference)) == 0
    return {"root": root, "args": args, "reference": reference}


def _run_killed(args: list[str], fault: str) -> subprocess.CompletedProcess:
    # the killed run must use the in-process reference run's thread count: float sums differ across counts
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.run(fault_command(fault, args), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_second_run_in_the_same_process_is_bit_identical(setup: dict) -> None:
    again = setup["root"] / "again"
    assert main(setup["args"](again)) == 0
    for key in ("model", "model_ema"):
        assert_same_weights(load_weights(setup["reference"] / "final.pth", key), load_weights(again / "final.pth", key))


@pytest.mark.parametrize(
    "fault, resumes_at",
    [
        ("sigkill@iter=9", 1),  # step 3 of epoch 1: inside stage 0, last.pth is from the end of epoch 0
        ("sigkill@stage=1", 2),  # just after switching to stage 1 (64 px): last.pth is the end of stage 0
        ("sigkill@save=2", 1),  # while writing the checkpoint of epoch 1: the one of epoch 0 survives
        ("sigkill@save=4", 3),  # while writing final.pth: training is complete, the resume only writes it
    ],
)
def test_killed_run_resumes_to_the_same_weights(setup: dict, fault: str, resumes_at: int) -> None:
    work = setup["root"] / fault.replace("@", "_").replace("=", "")
    killed = _run_killed(setup["args"](work), fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (work / "final.pth").exists()
    last = load_checkpoint_file(work / "last.pth")
    assert last["resume"]["epoch"] == resumes_at
    if fault.startswith("sigkill@save"):
        assert list(work.glob(".*.pth.*.tmp")), "the kill should leave the temporary file behind"

    assert main(setup["args"](work) + ["--resume"]) == 0
    assert not list(work.glob(".*.tmp"))
    assert_same_run(setup["reference"], work, epochs=3, images_per_epoch=24)


def test_result_does_not_depend_on_the_number_of_workers(setup: dict) -> None:
    work = setup["root"] / "workers"
    assert main(setup["args"](work) + ["--workers", "2"]) == 0  # the last flag wins
    assert_same_weights(load_weights(setup["reference"] / "final.pth"), load_weights(work / "final.pth"))


def test_a_run_saved_before_a_setting_existed_resumes_as_that_settings_default() -> None:
    current = dataclasses.asdict(PretrainConfig())
    saved = {k: v for k, v in current.items() if k != "hflip"}  # a checkpoint from before --hflip
    assert signature_differences(saved, current) == []
    assert signature_differences(saved, {**current, "hflip": 0.0}) == ["hflip: 0.5 -> 0.0"]
