"""GPU check, Tier 2: the real Cascade Mask R-CNN Swin-T 1x and RetinaNet Swin-T 1x configs train on the device.

Each runs tools/train.py for `det_iters` iterations (20 on the GPU: AMP, full size, as configured) on generated
COCO data renamed to the config's own 80 classes, then tools/test.py on the validation images. The backbone
starts from random weights: the check is that the detectors' CUDA path (mmcv's ops inside the heads) trains
and evaluates, not what it detects. Needs mmcv with compiled ops (skips and says so under mmcv-lite).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from gpu_fixtures import (
    CASCADE_CONFIG,
    REPO,
    RETINANET_CONFIG,
    Profile,
    active_profile,
    detection_config,
    read_jsonl,
    record,
)

from det_fixtures import write_coco_instances
from etcore.process import python_command, run_process

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.subprocess]
CONFIGS = {"cascade": CASCADE_CONFIG, "retinanet": RETINANET_CONFIG}


@pytest.fixture(scope="module")
def profile() -> Profile:
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as err:
        pytest.skip(f"mmcv has no compiled ops ({' '.join(str(err).split())[:80]}): Tier 2 builds them")
    return active_profile()


@pytest.fixture(scope="module")
def coco(module_tmp: Path, profile: Profile) -> Path:
    root = module_tmp / "gpu_coco"
    return write_coco_instances(
        root,
        train_images=profile.det_iters * profile.det_batch,
        val_images=profile.det_test_images,
        size=profile.coco_sizes,
        object_scale=(0.1, 0.3),
    )


@pytest.mark.parametrize("name", list(CONFIGS))
def test_detector_trains_and_tests_on_the_device(name: str, profile: Profile, coco: Path, tmp_path: Path) -> None:
    config, overrides = detection_config(CONFIGS[name], coco, tmp_path, profile, None)
    train = run_process(
        python_command(["tools/train.py", str(config), "--work-dir", str(tmp_path / "train")]),
        cwd=REPO,
        log=tmp_path / "train.log",
        timeout=profile.timeout_s,
        threads=profile.threads,
    )
    scalars = sorted((tmp_path / "train").glob("*/vis_data/scalars.json"))
    rows = [r for r in read_jsonl(scalars[-1]) if "iter" in r and "loss" in r] if scalars else []
    checkpoint = tmp_path / "train" / "epoch_1.pth"
    test = None
    if train.ok and checkpoint.is_file():
        test = run_process(
            python_command(["tools/test.py", str(config), str(checkpoint), "--work-dir", str(tmp_path / "test")]),
            cwd=REPO,
            log=tmp_path / "test.log",
            timeout=profile.timeout_s,
            threads=profile.threads,
        )
    metrics_file = tmp_path / "test" / "coco_metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    times = [r["time"] for r in rows[min(5, len(rows) // 2) :] if "time" in r]  # after the warm-up iterations
    losses = [r["loss"] for r in rows]
    record(
        f"detector_{name}",
        {
            "config": CONFIGS[name],
            "overrides": overrides,
            "rc": {"train": train.rc, "test": None if test is None else test.rc},
            "seconds": {"train": train.seconds, "test": None if test is None else test.seconds},
            "iterations": len(rows),
            "loss_first_last": [losses[0], losses[-1]] if losses else None,
            "s_per_iter": round(sum(times) / len(times), 3) if times else None,
            "max_memory_mb": max((r.get("memory", 0) for r in rows), default=None),
            "metrics": metrics,
        },
    )
    assert train.ok, train.tail()
    assert test is not None and test.ok, "no epoch_1.pth" if test is None else test.tail()
    assert len(rows) == profile.det_iters and all(math.isfinite(x) for x in losses), losses
    assert metrics is not None
