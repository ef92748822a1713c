"""One check of the whole GPU path, driven through the project's command lines (tools/gpu_check.sh).

    bash tools/gpu_check.sh [--out DIR]              # one CUDA GPU, real sizes (budget: 10 minutes)
    bash tools/gpu_check.sh --dry-run [--out DIR]    # CPU, tiny sizes: the same steps, commands and checks

Steps (each a subprocess of a stable command line, except `ops`, which calls mmcv and torch directly):
  ops         mmcv's nms, RoIAlign (forward and backward) and sigmoid focal loss on the device against their
              CPU results (mmcv's CPU kernels; focal loss, which has none, against the formula in torch)
  data        tools/make_demo_data.py: synthetic ImageNet-style folders and a COCO instance set
  pretrain    tools/pretrain.py, Swin-T, a 2-stage curriculum with the FFT crop on the device and AMP; killed
              (SIGKILL) a few steps after the stage switch, then resumed with --resume to the end
  cascade     tools/train.py, the real Cascade Mask R-CNN Swin-T 1x config (AMP, full size), 20 iterations from
              the pretrain step's checkpoint; then tools/test.py on the validation images
  retinanet   the same with the RetinaNet Swin-T 1x config
  benchmarks  tools/gpu_benchmarks.py (--smoke in the dry run) with what is left of the time budget
Writes DIR/gpu_check.json (machine, versions, every step's command, exit code, seconds and numbers) and
prints a short table. The dry run differs only in the `Profile` below (device, sizes, AMP off on the CPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from etcore.process import run_process

if TYPE_CHECKING:
    import torch

# mmengine imports pkg_resources, whose deprecation notice would otherwise land in the middle of the table
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CASCADE_CONFIG = "det_configs/cascade_mask_rcnn/cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-1x_coco_baseline.py"
RETINANET_CONFIG = "det_configs/retinanet/retinanet_swin-t_fpn_1x_coco_baseline.py"
PRETRAIN_MODEL = "swin_tiny_patch4_window7_224"  # the backbone of both detector configs
STEPS = ("ops", "data", "pretrain", "cascade", "retinanet", "benchmarks")
NEEDS_DATA = {"pretrain", "cascade", "retinanet"}
SIZE_KEYS = ("scale", "scales", "crop_size", "img_scale")  # image sizes in mmdet pipelines
COUNT_KEYS = ("num", "max_per_img", "nms_pre")  # proposals, sampled RoIs, detections in train_cfg / test_cfg


@dataclass(frozen=True)
class Profile:
    """Everything that differs between the GPU run and the CPU dry run."""

    name: str
    device: str
    amp: bool
    budget_s: float | None  # start nothing after this; None: no limit (dry run)
    # ops
    nms_boxes: int
    roi_input: tuple[int, int, int, int]  # N, C, H, W of the feature map
    rois: int
    focal_samples: int
    # data (tools/make_demo_data.py) and pretraining (tools/pretrain.py)
    image_size: int  # ImageNet-style images
    train_per_class: int
    val_per_class: int
    first_size: int  # curriculum stage 1 input size (low-frequency crop)
    final_size: int  # stage 2 = final size
    pretrain_batch: int
    pretrain_workers: int
    # detection (tools/train.py, tools/test.py)
    det_iters: int
    det_batch: int  # the configs' images per GPU (train_dataloader.batch_size)
    det_test_images: int
    coco_sizes: tuple[int, int]  # min / max side of the generated COCO images
    det_scale: float  # factor on the configs' pipeline image sizes (1.0: as configured)
    det_rois: int | None  # cap on proposals / sampled RoIs / detections per image (None: as configured)
    det_workers: int
    limits: dict = field(default_factory=dict)  # seconds per step (a step's subprocesses together)

    @property
    def classes(self) -> int:
        return 10

    @property
    def pretrain_steps_per_epoch(self) -> int:
        return self.classes * self.train_per_class // self.pretrain_batch


GPU = Profile(
    name="gpu",
    device="cuda",
    amp=True,
    budget_s=570.0,
    nms_boxes=20000,
    roi_input=(2, 256, 100, 168),
    rois=1000,
    focal_samples=100000,
    image_size=224,
    train_per_class=64,
    val_per_class=8,
    first_size=160,
    final_size=224,
    pretrain_batch=64,
    pretrain_workers=6,
    det_iters=20,
    det_batch=2,
    det_test_images=8,
    coco_sizes=(480, 640),
    det_scale=1.0,
    det_rois=None,
    det_workers=4,
    limits={"ops": 90, "data": 90, "pretrain": 150, "cascade": 180, "retinanet": 120},
)
DRY_RUN = Profile(
    name="dry-run",
    device="cpu",
    amp=False,
    budget_s=None,
    nms_boxes=500,
    roi_input=(2, 16, 24, 32),
    rois=64,
    focal_samples=512,
    image_size=64,
    train_per_class=4,
    val_per_class=1,
    first_size=32,
    final_size=64,
    pretrain_batch=8,
    pretrain_workers=0,
    det_iters=2,
    det_batch=2,
    det_test_images=2,
    coco_sizes=(128, 192),
    det_scale=0.125,
    det_rois=16,
    det_workers=0,
)


def fail(message: str) -> NoReturn:
    print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
    raise SystemExit(2)


# ------------------------------------------------------------------------------------------- running


@dataclass
class Context:
    """Where the check writes, its profile and its clock."""

    out: Path
    profile: Profile
    started: float = field(default_factory=time.perf_counter)
    pretrained: Path | None = None  # final.pth of the pretrain step, used by the detectors

    def remaining(self) -> float | None:
        if self.profile.budget_s is None:
            return None
        return self.profile.budget_s - (time.perf_counter() - self.started)

    def timeout(self, step: str) -> float | None:
        """The step's own limit, cut to what is left of the budget (None: no limit)."""
        limit = self.profile.limits.get(step)
        left = self.remaining()
        if left is None:
            return limit
        return max(1.0, min(limit, left) if limit else left)


def run(
    ctx: Context, name: str, command: Sequence[str], timeout: float | None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one command in the repository root, output to OUT/logs/NAME.log; returns command, rc, seconds."""
    result = run_process(command, cwd=ROOT, log=ctx.out / "logs" / f"{name}.log", timeout=timeout, env=env)
    shown = ["python" if c == PY else str(c).replace(str(ROOT) + os.sep, "") for c in command]
    return {"command": " ".join(shown), "rc": result.rc, "seconds": result.seconds, "log": str(result.log)}


def last_error_line(log: str) -> str:
    """The line that says what went wrong: the last `error:` line, else the last non-empty one."""
    lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line]
    return (errors or lines or ["(empty log)"])[-1][:300]


# ----------------------------------------------------------------------------------------------- ops


def mmcv_build_info() -> dict[str, Any]:
    """mmcv's version, the CUDA it was compiled with ('not available' for CPU ops) and its wheel build tag."""
    from importlib.metadata import PackageNotFoundError, distribution

    import mmcv
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version

    build_tag = None
    try:
        wheel = distribution("mmcv").read_text("WHEEL") or ""
        build_tag = next(
            (line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Build:")), None
        )
    except PackageNotFoundError:
        pass
    return {
        "version": mmcv.__version__,
        "compiling_cuda": get_compiling_cuda_version(),
        "compiler": get_compiler_version(),
        "wheel_build_tag": build_tag,
    }


def focal_loss_reference(
    logits: "torch.Tensor", labels: "torch.Tensor", gamma: float = 2.0, alpha: float = 0.25
) -> "torch.Tensor":
    """Sigmoid focal loss per element in plain torch (mmdet's py_sigmoid_focal_loss); label C is background."""
    import torch.nn.functional as F

    num_classes = logits.shape[1]
    target = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    prob = logits.sigmoid()
    pt = (1 - prob) * target + prob * (1 - target)
    weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def _max_diff(a: "torch.Tensor", b: "torch.Tensor") -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def check_ops(device: str, profile: Profile) -> dict[str, Any]:
    """Each op on `device` against the CPU; the tolerances are float32 summation-order noise."""
    import torch
    from mmcv.ops import nms, roi_align, sigmoid_focal_loss

    gen = torch.Generator().manual_seed(0)
    result: dict[str, Any] = {"device": device}

    # nms: random boxes, distinct scores; the kept indices must be identical
    n = profile.nms_boxes
    xy = torch.rand(n, 2, generator=gen) * 800
    wh = torch.rand(n, 2, generator=gen) * 120 + 4
    boxes, scores = torch.cat([xy, xy + wh], 1), torch.rand(n, generator=gen)
    _, keep_cpu = nms(boxes, scores, iou_threshold=0.5)
    _, keep_dev = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)
    same = torch.equal(keep_cpu.cpu(), keep_dev.cpu())
    result["nms"] = {"boxes": n, "kept": int(keep_dev.numel()), "identical": same, "ok": same}

    # RoIAlign (aligned, 7x7, sampling 2, stride 8): forward and input gradient
    bn, c, h, w = profile.roi_input
    feat = torch.randn(bn, c, h, w, generator=gen)
    k = profile.rois
    corner = torch.rand(k, 2, generator=gen) * torch.tensor([w * 8.0, h * 8.0]) * 0.8
    size = torch.rand(k, 2, generator=gen) * 200 + 8
    rois = torch.cat([torch.randint(0, bn, (k, 1), generator=gen).float(), corner, corner + size], 1)
    grad_out = torch.randn(k, c, 7, 7, generator=gen)
    outs = {}
    for where in ("cpu", device):
        x = feat.to(where).requires_grad_(True)
        y = roi_align(x, rois.to(where), (7, 7), 1 / 8, 2, "avg", True)
        y.backward(grad_out.to(where))
        outs[where] = (y, x.grad)
    fwd, bwd = _max_diff(outs["cpu"][0], outs[device][0]), _max_diff(outs["cpu"][1], outs[device][1])
    result["roi_align"] = {
        "rois": k,
        "input": list(profile.roi_input),
        "max_abs_diff_forward": fwd,
        "max_abs_diff_backward": bwd,
        "ok": fwd < 1e-4 and bwd < 1e-4,
    }

    # sigmoid focal loss (80 classes, label 80 = background): mmcv's kernel against the torch formula
    m = profile.focal_samples
    logits = torch.randn(m, 80, generator=gen) * 3
    labels = torch.randint(0, 81, (m,), generator=gen)
    x_ref = logits.clone().requires_grad_(True)
    ref = focal_loss_reference(x_ref, labels)
    ref.sum().backward()
    from torchvision.ops import sigmoid_focal_loss as tv_focal  # an independent check of the reference itself

    one_hot = torch.nn.functional.one_hot(labels, 81)[:, :80].float()
    ref_check = _max_diff(ref, tv_focal(logits, one_hot, alpha=0.25, gamma=2.0, reduction="none"))
    x = logits.to(device).requires_grad_(True)
    try:
        loss = sigmoid_focal_loss(x, labels.to(device), 2.0, 0.25, None, "none")
    except (RuntimeError, NotImplementedError) as err:
        if device != "cpu":
            raise
        result["sigmoid_focal_loss"] = {
            "skipped": f"mmcv has no CPU kernel ({' '.join(str(err).split())[:120]})",
            "reference_vs_torchvision": ref_check,
            "ok": ref_check < 1e-5,
        }
    else:
        loss.sum().backward()
        fwd, bwd = _max_diff(ref, loss), _max_diff(x_ref.grad, x.grad)
        result["sigmoid_focal_loss"] = {
            "samples": m,
            "max_abs_diff_forward": fwd,
            "max_abs_diff_backward": bwd,
            "reference_vs_torchvision": ref_check,
            "ok": fwd < 1e-4 and bwd < 1e-4 and ref_check < 1e-5,
        }
    result["ok"] = all(v["ok"] for v in result.values() if isinstance(v, dict))
    return result


def step_ops(ctx: Context) -> dict[str, Any]:
    info = mmcv_build_info()
    device = ctx.profile.device
    if device == "cuda" and info["compiling_cuda"] in (None, "", "not available"):
        return {
            "ok": False,
            "mmcv": info,
            "error": "the installed mmcv has CPU ops only: build the CUDA ops with "
            "FORCE_CUDA=1 make setup (README: Installing on a GPU machine)",
        }
    if device == "cuda" and info["wheel_build_tag"]:  # e.g. '1cu130_sm80_sm90': no kernels for another GPU
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        built = info["wheel_build_tag"].split("_")[1:]
        if f"sm{major}{minor}" not in [a.rstrip("af") for a in built] and not any(a.endswith("ptx") for a in built):
            return {
                "ok": False,
                "mmcv": info,
                "error": f"mmcv's CUDA ops were built for {', '.join(built)}, this GPU "
                f"is sm{major}{minor}: rebuild them for it (TORCH_CUDA_ARCH_LIST={major}.{minor} FORCE_CUDA=1 "
                "make setup)",
            }
    t0 = time.perf_counter()
    try:
        result = check_ops(device, ctx.profile)
    except Exception as err:  # a kernel that fails on the device is the finding, not a crash of the check
        return {"ok": False, "mmcv": info, "error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return {"mmcv": info, **result}


# ---------------------------------------------------------------------------------------------- data


def step_data(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    out = ctx.out / "data"
    command = [
        PY,
        "tools/make_demo_data.py",
        "--out",
        str(out),
        "--classes",
        str(p.classes),
        "--image-size",
        str(p.image_size),
        "--train-per-class",
        str(p.train_per_class),
        "--val-per-class",
        str(p.val_per_class),
        "--coco-train",
        str(p.det_iters * p.det_batch),
        "--coco-val",
        str(p.det_test_images),
        "--coco-min-size",
        str(p.coco_sizes[0]),
        "--coco-max-size",
        str(p.coco_sizes[1]),
    ]
    result = run(ctx, "data", command, ctx.timeout("data"))
    result["ok"] = result["rc"] == 0
    if not result["ok"]:
        result["error"] = last_error_line(result["log"])
    return result


# ------------------------------------------------------------------------------------------ pretrain


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_pretrain(ctx: Context) -> dict[str, Any]:
    """Two stages (first_size, then final_size), killed in stage 2, resumed to the end."""
    p = ctx.profile
    work = ctx.out / "pretrain"
    run_dir = work / "run"
    work.mkdir(parents=True, exist_ok=True)
    curriculum = work / "curriculum.json"
    curriculum.write_text(
        json.dumps(
            {
                "name": "gpu-check-2-stage",
                "final_size": p.final_size,
                "total_epochs": 2,
                "stages": [
                    {"epochs": 1, "input_size": p.first_size, "randaug_magnitude": 1},
                    {"epochs": 1, "input_size": p.final_size, "randaug_magnitude": 9},
                ],
            },
            indent=1,
        )
        + "\n"
    )
    command = [
        PY,
        "tools/pretrain.py",
        "--model",
        PRETRAIN_MODEL,
        "--data",
        str(ctx.out / "data" / "imagenet"),
        "--work-dir",
        str(run_dir),
        "--curriculum",
        str(curriculum),
        "--epochs",
        "2",
        "--final-size",
        str(p.final_size),
        "--batch-size",
        str(p.pretrain_batch),
        "--workers",
        str(p.pretrain_workers),
        "--device",
        p.device,
        "--lowfreq",
        "fft",
        "--amp" if p.amp else "--no-amp",
        "--warmup-epochs",
        "0.5",
        "--seed",
        "0",
    ]
    kill_at = p.pretrain_steps_per_epoch + 3  # 3 optimiser steps into stage 2
    deadline = ctx.timeout("pretrain")
    # the reliability tests' fault callbacks kill it (the engine has no fault code of its own)
    killed_command = [PY, "tests/fault_callbacks.py", f"sigkill@iter={kill_at}", "--", *command[2:]]
    first = run(ctx, "pretrain_killed", killed_command, deadline)
    killed = first["rc"] == -signal.SIGKILL
    left = None if deadline is None else max(1.0, deadline - first["seconds"])
    second = run(ctx, "pretrain_resumed", [*command, "--resume"], left)
    epochs = read_jsonl(run_dir / "log.jsonl")
    final = run_dir / "final.pth"
    stages = [e.get("stage") for e in epochs]
    sizes = [e.get("input_size") for e in epochs]
    losses = [e.get("train_loss") for e in epochs]
    ok = (
        killed
        and second["rc"] == 0
        and final.is_file()
        and stages == [0, 1]
        and sizes == [p.first_size, p.final_size]
        and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)
    )
    result = {
        "ok": ok,
        "killed_at_step": kill_at,
        "killed_run": first,
        "resumed_run": second,
        "stages": stages,
        "input_sizes": sizes,
        "train_loss": losses,
        "images_per_s": [e.get("images_per_s") for e in epochs],
        "epoch_time_s": [e.get("epoch_time_s") for e in epochs],
        "top1": [e.get("top1") for e in epochs],
        "final": str(final) if final.is_file() else None,
        "seconds": round(first["seconds"] + second["seconds"], 1),
    }
    if not killed:
        result["error"] = (
            f"the first run was to be killed at step {kill_at} (tests/fault_callbacks.py) but ended with rc "
            f"{first['rc']}: {last_error_line(first['log'])}"
        )
    elif second["rc"] != 0:
        result["error"] = f"resume failed (rc {second['rc']}): {last_error_line(second['log'])}"
    elif not ok:
        result["error"] = f"log.jsonl shows stages {stages} at sizes {sizes}, losses {losses}"
    else:
        ctx.pretrained = final
    return result


# ----------------------------------------------------------------------------------------- detection


def scale_sizes(value: Any, factor: float) -> Any:
    """An mmdet image size (int, (w, h), or a list of them) times `factor`, at least 32 px a side."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return max(32, int(round(value * factor)))
    if isinstance(value, (list, tuple)):
        return type(value)(scale_sizes(v, factor) for v in value)
    return value


def scale_pipeline(node: Any, factor: float) -> None:
    """Multiply every image size in a pipeline (nested transforms included) by `factor`, in place."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            if key in SIZE_KEYS:
                node[key] = scale_sizes(node[key], factor)
            else:
                scale_pipeline(node[key], factor)
    elif isinstance(node, (list, tuple)):
        for item in node:
            scale_pipeline(item, factor)


def cap_counts(node: Any, cap: int) -> None:
    """Cap every proposal / RoI-sampler / detection count in a model's train_cfg or test_cfg at `cap`, in place."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            if key in COUNT_KEYS and isinstance(node[key], int) and not isinstance(node[key], bool):
                node[key] = min(node[key], cap)
            else:
                cap_counts(node[key], cap)
    elif isinstance(node, (list, tuple)):
        for item in node:
            cap_counts(item, cap)


def coco_named_annotations(source: Path, dest: Path, class_names: Sequence[str]) -> Path:
    """A copy of a generated COCO file whose categories carry the config's class names, all of them.

    The demo's categories, in id order, take the first names; the other names are added as categories with
    no annotations (as COCO lists all 80). So the real config reads the file with its own classes and heads
    (the class check before a run wants every class of the config in the file)."""
    doc = json.loads(source.read_text())
    ours = sorted(doc["categories"], key=lambda c: c["id"])
    if len(ours) > len(class_names):
        raise ValueError(f"{source}: {len(ours)} categories, more than the config's {len(class_names)} classes")
    next_id = max((c["id"] for c in ours), default=0) + 1
    categories = [{**c, "name": name} for c, name in zip(ours, class_names)]
    categories += [{"id": next_id + i, "name": name} for i, name in enumerate(class_names[len(ours) :])]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({**doc, "categories": categories}))
    return dest


def detection_config(
    config: str, coco: Path, out: Path, profile: Profile, checkpoint: Path | None
) -> tuple[Path, dict[str, Any]]:
    """Write the real `config` with the check's data (`coco`), length and (dry run) sizes as OUT/config.py.

    Returns the file and the overrides, which go into the report."""
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / config), import_custom_modules=False)
    class_names = cfg.get("classes") or CocoDataset.METAINFO["classes"]  # the config's (COCO's 80 when unset)
    root = str(coco) + os.sep
    annotations = {
        split: coco_named_annotations(
            coco / "annotations" / f"instances_{split}.json", out / f"instances_{split}.json", class_names
        )
        for split in ("train", "val")
    }
    overrides: dict[str, Any] = {
        "data_root": root,
        "train_cfg.max_epochs": 1,
        "val": "off (tools/test.py runs after training)",
        "default_hooks.logger.interval": 1,
        "model.backbone.checkpoint": str(checkpoint) if checkpoint else None,
        "classes": f"the config's {len(class_names)}; the demo's categories renamed to the first of them",
        "num_workers": profile.det_workers,
    }
    cfg.data_root = root
    for key, split in (("train_dataloader", "train"), ("test_dataloader", "val")):
        loader = cfg[key]
        loader.num_workers = profile.det_workers
        loader.persistent_workers = profile.det_workers > 0
        dataset = loader.dataset
        while "dataset" in dataset:  # RepeatDataset & co.
            dataset = dataset.dataset
        dataset.data_root = root
        dataset.ann_file = str(annotations[split])
        dataset.data_prefix = dict(img=f"{split}/")
        if profile.det_scale != 1.0:
            scale_pipeline(dataset.pipeline, profile.det_scale)
    if profile.det_scale != 1.0:
        overrides["pipeline image sizes"] = f"x{profile.det_scale}"
    if profile.det_rois is not None:
        cap_counts(cfg.model.get("train_cfg"), profile.det_rois)
        cap_counts(cfg.model.get("test_cfg"), profile.det_rois)
        overrides["proposals, sampled RoIs, detections per image"] = f"at most {profile.det_rois}"
    cfg.test_evaluator.ann_file = str(annotations["val"])
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.model.backbone.checkpoint = str(checkpoint) if checkpoint else None
    cfg.load_from = None
    if not profile.amp and cfg.optim_wrapper.get("type") == "AmpOptimWrapper":
        cfg.optim_wrapper.type = "OptimWrapper"
        cfg.optim_wrapper.pop("loss_scale", None)
        overrides["optim_wrapper.type"] = "OptimWrapper (AMP needs a GPU)"
    path = out / "config.py"
    cfg.dump(str(path))
    return path, overrides


def train_log(work_dir: Path) -> list[dict[str, Any]]:
    """mmengine's per-iteration scalars of the newest run in `work_dir`."""
    found = sorted(work_dir.glob("*/vis_data/scalars.json"))
    return [row for row in read_jsonl(found[-1]) if "iter" in row and "loss" in row] if found else []


def step_detector(ctx: Context, name: str, config: str) -> dict[str, Any]:
    p = ctx.profile
    work = ctx.out / name
    config_path, overrides = detection_config(config, ctx.out / "data" / "coco", work, p, ctx.pretrained)
    deadline = ctx.timeout(name)
    train = run(
        ctx, f"{name}_train", [PY, "tools/train.py", str(config_path), "--work-dir", str(work / "train")], deadline
    )
    rows = train_log(work / "train")
    checkpoint = work / "train" / "epoch_1.pth"
    test: dict[str, Any] = {"rc": None}
    if train["rc"] == 0 and checkpoint.is_file():
        left = None if deadline is None else max(1.0, deadline - train["seconds"])
        test = run(
            ctx,
            f"{name}_test",
            [PY, "tools/test.py", str(config_path), str(checkpoint), "--work-dir", str(work / "test")],
            left,
        )
    metrics_file = work / "test" / "coco_metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    times = [r["time"] for r in rows[min(5, len(rows) // 2) :] if "time" in r]  # after the first warm-up iterations
    losses = [r["loss"] for r in rows]
    result = {
        "config": config,
        "overrides": overrides,
        "train": train,
        "test": test,
        "iterations": len(rows),
        "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "s_per_iter": round(sum(times) / len(times), 3) if times else None,
        "max_memory_mb": max((r.get("memory", 0) for r in rows), default=None),
        "metrics": metrics,
        "backbone_checkpoint": str(ctx.pretrained) if ctx.pretrained else "random init",
        "seconds": round(train["seconds"] + (test.get("seconds") or 0), 1),
    }
    result["ok"] = (
        train["rc"] == 0
        and test.get("rc") == 0
        and len(rows) == p.det_iters
        and metrics is not None
        and all(math.isfinite(x) for x in losses)
    )
    if train["rc"] != 0:
        result["error"] = f"train rc {train['rc']}: {last_error_line(train['log'])}"
    elif test.get("rc") != 0:
        result["error"] = f"test rc {test.get('rc')}: " + (
            last_error_line(test["log"]) if "log" in test else "no epoch_1.pth"
        )
    elif not result["ok"]:
        result["error"] = f"{len(rows)} iterations logged (expected {p.det_iters}), losses {losses[-3:]}"
    return result


# ---------------------------------------------------------------------------------------- benchmarks

BENCH_STEP_LIMIT_S = 150  # the longest per-step limit in tools/gpu_benchmarks.py


def step_benchmarks(ctx: Context) -> dict[str, Any]:
    out = ctx.out / "benchmarks"
    command = [PY, "tools/gpu_benchmarks.py", str(out)]
    left = ctx.remaining()
    if left is None:
        command.append("--smoke")
    else:
        budget = left - BENCH_STEP_LIMIT_S
        if budget <= 0:
            return {"ok": True, "skipped": f"{left:.0f} s of the budget left, less than one benchmark step needs"}
        command += ["--budget-s", f"{budget:.0f}"]
    result = run(ctx, "benchmarks", command, None if left is None else left + 30)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    steps = summary.get("steps", [])
    result["steps"] = [{k: s.get(k) for k in ("step", "rc", "seconds", "skipped") if k in s} for s in steps]
    result["ok"] = result["rc"] == 0 and bool(steps)
    if not result["ok"]:
        result["error"] = last_error_line(result["log"])
    return result


# ---------------------------------------------------------------------------------------------- main


def machine_info(profile: Profile) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    if profile.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            driver_cuda=getattr(torch._C, "_cuda_getDriverVersion", lambda: None)(),
        )
    from importlib.metadata import PackageNotFoundError, version

    for package in ("mmcv", "mmdet", "mmengine", "timm"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info


def summarize(step: str, r: dict[str, Any]) -> str:
    """One short line of the step's numbers for the table."""
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    if r.get("error"):
        return r["error"][:110]
    if step == "ops":
        parts = [
            f"nms {r['nms']['kept']}/{r['nms']['boxes']} kept, identical={r['nms']['identical']}",
            f"roi_align diff {r['roi_align']['max_abs_diff_forward']:.1e}"
            f"/{r['roi_align']['max_abs_diff_backward']:.1e}",
        ]
        focal = r["sigmoid_focal_loss"]
        parts.append(
            "focal "
            + (
                "no CPU kernel"
                if "skipped" in focal
                else f"diff {focal['max_abs_diff_forward']:.1e}/{focal['max_abs_diff_backward']:.1e}"
            )
        )
        return "; ".join(parts)
    if step == "data":
        return "demo ImageNet + COCO written"
    if step == "pretrain":
        ips = ", ".join(f"{x:.3g}" for x in r["images_per_s"] if isinstance(x, (int, float)))
        return f"sizes {r['input_sizes']}, killed at step {r['killed_at_step']}, resumed; img/s {ips}"
    if step in ("cascade", "retinanet"):
        kinds = (r.get("metrics") or {}).get("metrics") or {}
        ap_text = ", ".join(
            f"{kind} AP {v['AP']:.3f}" for kind, v in kinds.items() if isinstance(v, dict) and "AP" in v
        )
        mem = f", {r['max_memory_mb']} MB" if r.get("max_memory_mb") else ""
        return f"{r['iterations']} iters, {r['s_per_iter']} s/iter{mem}; test {ap_text or 'ran'}"
    if step == "benchmarks":
        done = [s["step"] for s in r["steps"] if s.get("rc") == 0]
        skipped = [s["step"] for s in r["steps"] if s.get("skipped")]
        return f"{len(done)}/{len(r['steps'])} ok" + (f"; skipped {', '.join(skipped)}" if skipped else "")
    return ""


def print_table(results: list[dict[str, Any]], total_s: float, mode: str) -> None:
    print(f"\nGPU check ({mode}): {total_s:.0f} s")
    print(f"{'step':<11} {'result':<6} {'seconds':>8}  numbers")
    for r in results:
        status = "skip" if r.get("skipped") and r.get("ok") else ("ok" if r.get("ok") else "FAIL")
        print(f"{r['step']:<11} {status:<6} {r.get('seconds', 0):>8.1f}  {summarize(r['step'], r)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tools/gpu_check.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="work_dirs/gpu_check", help="output folder (default: work_dirs/gpu_check)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check every step's code path")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps (data runs when needed)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help=f"start nothing after this many seconds (GPU default {GPU.budget_s:.0f}; dry run: none)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = DRY_RUN if args.dry_run else GPU
    if args.budget_s is not None:
        if args.budget_s <= 0:
            fail(f"--budget-s {args.budget_s:g} must be positive")
        profile = Profile(**{**asdict(profile), "budget_s": args.budget_s})
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        fail(f"--out {args.out} is a file: give a folder")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        fail(
            "no CUDA device is visible (torch.cuda.is_available() is False): run on a GPU machine after "
            "FORCE_CUDA=1 make setup, or pass --dry-run for the CPU check of every step"
        )
    selected = [s for s in STEPS if not args.only or s in args.only or (s == "data" and NEEDS_DATA & set(args.only))]
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, profile=profile)
    steps: dict[str, Callable[[Context], dict[str, Any]]] = {
        "ops": step_ops,
        "data": step_data,
        "pretrain": step_pretrain,
        "cascade": lambda c: step_detector(c, "cascade", CASCADE_CONFIG),
        "retinanet": lambda c: step_detector(c, "retinanet", RETINANET_CONFIG),
        "benchmarks": step_benchmarks,
    }
    report: dict[str, Any] = {
        "mode": profile.name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(profile),
        "profile": asdict(profile),
        "steps": [],
    }
    for name in selected:
        left = ctx.remaining()
        if left is not None and left <= 0:
            result = {"ok": False, "skipped": f"time budget of {profile.budget_s:.0f} s spent"}
        elif name in NEEDS_DATA and any(r["step"] == "data" and not r["ok"] for r in report["steps"]):
            result = {"ok": False, "skipped": "no data (the data step failed)"}
        else:
            print(f"[{time.perf_counter() - ctx.started:6.1f}s] {name} ...", flush=True)
            t0 = time.perf_counter()
            result = steps[name](ctx)
            result.setdefault("seconds", round(time.perf_counter() - t0, 1))
        report["steps"].append({"step": name, **result})
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    total = time.perf_counter() - ctx.started
    report["total_s"] = round(total, 1)
    report["ok"] = all(r["ok"] for r in report["steps"])
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print_table(report["steps"], total, profile.name)
    print(f"{'all steps ok' if report['ok'] else 'FAILED'}; details: {out / 'gpu_check.json'}, logs: {out / 'logs'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
