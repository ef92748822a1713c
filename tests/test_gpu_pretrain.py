"""GPU check, Tier 1: curriculum pretraining on the device, killed inside its last stage and resumed, ends with
the same weights, bit for bit, as the same run left alone.

Swin-T with the FFT crop on the device (EfficientTrain's operation) over its three EfficientTrain++ sizes, and
ConvNeXt-T with the LANCZOS resize in the loader workers (EfficientTrain++'s) over its two; one epoch per size,
the rising RandAugment magnitude and batch factors of EfficientTrain++, the LR over compute, AMP on the GPU,
--deterministic, batch x2 (accumulation /2) below the final size. Needs no mmcv ops.
"""

from __future__ import annotations

import json
import math
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gpu_fixtures import REPO, Profile, active_profile, read_jsonl, record

from bench.lowfreq import make_image_folder
from etcore.process import python_command, run_process
from fault_callbacks import fault_command
from pretrain_fixtures import load_weights
from pretraining.curriculum import build_curriculum

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.subprocess]

CASES = {  # model -> the low-frequency operation it is checked with
    "swin_tiny_patch4_window7_224": "fft",
    "convnext_tiny": "resize",
}
ACCUM = 2


@pytest.fixture(scope="module")
def profile() -> Profile:
    return active_profile()


@pytest.fixture(scope="module")
def images(module_tmp: Path, profile: Profile) -> Path:
    """ImageNet-style JPEGs (500x375 on the GPU, written by every core)."""
    import os

    root = module_tmp / "gpu_images"
    return make_image_folder(root, profile.train_images, *profile.image_size, workers=os.cpu_count() or 1)


def condensed_etpp(model: str, final_size: int, lowfreq: str) -> dict:
    """EfficientTrain++'s curriculum for `model` with one epoch per input size (its last magnitude there)."""
    full = build_curriculum("efficienttrain++", 200, final_size=final_size, model_name=model)
    sizes = sorted({s.input_size for s in full.stages})
    stages = []
    for size in sizes:
        at = [s for s in full.stages if s.input_size == size]
        stages.append(
            {
                "epochs": 1,
                "input_size": size,
                "randaug_magnitude": at[-1].randaug_magnitude,
                "batch_scale": at[-1].batch_scale,
            }
        )
    return {
        "name": f"etpp-{len(sizes)}-stage-check",
        "final_size": final_size,
        "lr_axis": "compute",
        "warmup_epochs": 0.5,
        "lowfreq": lowfreq,
        "stages": stages,
    }


def pretrain_args(model: str, data: Path, work: Path, curriculum: Path, profile: Profile, lowfreq: str) -> list[str]:
    args = ["--model", model, "--data", str(data), "--work-dir", str(work), "--curriculum", str(curriculum)]
    args += [
        "--epochs",
        str(len(json.loads(curriculum.read_text())["stages"])),
        "--final-size",
        str(profile.final_size),
    ]
    args += ["--batch-size", str(profile.batch_size), "--accum-steps", str(ACCUM), "--workers", str(profile.workers)]
    args += ["--device", profile.device, "--lowfreq", lowfreq, "--amp" if profile.amp else "--no-amp"]
    args += ["--deterministic", "--seed", "0"]
    if model in profile.model_kwargs:
        args += ["--model-kwargs", json.dumps(profile.model_kwargs[model])]
    return args


def compare(reference: Path, resumed: Path) -> dict:
    """Per state dict in both checkpoints: tensors compared, how many differ, the largest difference."""
    import torch

    out = {}
    for key in ("model", "model_ema"):
        try:
            a, b = load_weights(reference, key), load_weights(resumed, key)
        except KeyError:
            continue
        if a is None or b is None:
            continue
        differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        largest = max((float((a[k].float() - b[k].float()).abs().max()) for k in differ if k in b), default=0.0)
        out[key] = {"tensors": len(a), "differ": len(differ), "max_abs_diff": largest, "first": differ[:3]}
    return out


@pytest.mark.parametrize("model", list(CASES))
def test_killed_run_resumes_to_the_uninterrupted_weights(model: str, profile: Profile, images: Path, tmp_path: Path):
    lowfreq = CASES[model]
    plan = condensed_etpp(model, profile.final_size, lowfreq)
    curriculum = tmp_path / "curriculum.json"
    curriculum.write_text(json.dumps(plan, indent=1) + "\n")
    updates = profile.train_images // (profile.batch_size * ACCUM)  # per epoch, every stage (official count)
    assert updates >= 3, "the last stage needs a few updates before the kill"
    kill_at = updates * (len(plan["stages"]) - 1) + 2  # two updates into the last stage
    work = {name: tmp_path / name for name in ("reference", "killed")}
    args = {name: pretrain_args(model, images, path, curriculum, profile, lowfreq) for name, path in work.items()}
    logs = tmp_path / "logs"
    with ThreadPoolExecutor(2) as pool:  # independent runs: side by side on the device
        reference = pool.submit(
            run_process,
            python_command(["tools/pretrain.py", *args["reference"]]),
            cwd=REPO,
            log=logs / "reference.log",
            timeout=profile.timeout_s,
            threads=profile.threads,
        )
        killed = pool.submit(
            run_process,
            fault_command(f"sigkill@iter={kill_at}", args["killed"]),
            cwd=REPO,
            log=logs / "killed.log",
            timeout=profile.timeout_s,
            threads=profile.threads,
        )
        reference, killed = reference.result(), killed.result()
    resumed = run_process(
        python_command(["tools/pretrain.py", *args["killed"], "--resume"]),
        cwd=REPO,
        log=logs / "resumed.log",
        timeout=profile.timeout_s,
        threads=profile.threads,
    )
    epochs = read_jsonl(work["killed"] / "log.jsonl")
    numbers = {
        "model": model,
        "lowfreq": lowfreq,
        "profile": profile.name,
        "sizes": [s["input_size"] for s in plan["stages"]],
        "killed_at_update": kill_at,
        "rc": {"reference": reference.rc, "killed": killed.rc, "resumed": resumed.rc},
        "seconds": {"reference": reference.seconds, "killed": killed.seconds, "resumed": resumed.seconds},
        "images_per_s": [e.get("images_per_s") for e in epochs],
        "train_loss": [e.get("train_loss") for e in epochs],
    }
    finals = (work["reference"] / "final.pth", work["killed"] / "final.pth")
    if all(p.is_file() for p in finals):
        numbers["weights"] = compare(*finals)
    record(f"pretrain_{model}", numbers)
    assert reference.rc == 0, reference.tail()
    assert killed.rc == -signal.SIGKILL, (
        f"the run was to be killed at update {kill_at}: rc {killed.rc}, {killed.tail()}"
    )
    assert resumed.rc == 0, resumed.tail()
    assert [e["stage"] for e in epochs] == list(range(len(plan["stages"])))
    assert [e["input_size"] for e in epochs] == numbers["sizes"]
    assert all(isinstance(x, float) and math.isfinite(x) for x in numbers["train_loss"])
    assert numbers["weights"] and all(v["differ"] == 0 for v in numbers["weights"].values()), numbers["weights"]
