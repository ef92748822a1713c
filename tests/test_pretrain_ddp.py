"""Two gloo processes under torchrun train the same model as one process at the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from etcore.checkpoint_io import load_checkpoint_file
from pretrain_fixtures import make_image_folder, read_log, tiny_args, write_two_stage_curriculum
from pretraining.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
MODEL = "swin_tiny_patch4_window7_224"  # DDP must be re-wrapped around the resized window tables


def test_two_processes_match_one_process_at_the_same_global_batch(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "data")
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")
    # Mixup and stochastic depth draw per process, so they are off; augmentation is seeded per sample.
    common = dict(mixup=0.0, cutmix=0.0, drop_path=0.0, ema=True, deterministic=True)
    single = tmp_path / "single"
    assert main(tiny_args(MODEL, data, single, curriculum, epochs=2, batch_size=8, **common)) == 0

    double = tmp_path / "double"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(REPO / "tools" / "pretrain.py"),
            *tiny_args(MODEL, data, double, curriculum, epochs=2, batch_size=4, **common),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("resolved recipe:") == 1  # only rank 0 prints

    one, two = load_checkpoint_file(single / "final.pth"), load_checkpoint_file(double / "final.pth")
    assert two["provenance"]["devices"] == 2 and two["provenance"]["effective_batch"] == 8
    assert one["provenance"]["images_seen"] == two["provenance"]["images_seen"] == 48
    for key in ("model", "model_ema"):
        assert one[key].keys() == two[key].keys()
        for name, tensor in one[key].items():
            torch.testing.assert_close(two[key][name], tensor, rtol=1e-4, atol=1e-5, msg=f"{key}.{name}")
    losses_one = [row["train_loss"] for row in read_log(single)]
    losses_two = [row["train_loss"] for row in read_log(double)]
    assert [row["input_size"] for row in read_log(double)] == [32, 64]
    assert len(losses_two) == 2
    for a, b in zip(losses_one, losses_two):
        assert abs(a - b) < 1e-4
