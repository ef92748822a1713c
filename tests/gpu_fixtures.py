"""Shared pieces of the GPU tests (`pytest -m gpu`, run by tools/gpu_check.sh): sizes, numbers, configs.

A gpu-marked test runs at real sizes on a CUDA GPU (`GPU` profile). Without one it is skipped (tests/conftest.py),
unless `ETDET_GPU_TESTS=cpu` asks for the same test on the CPU at tiny sizes (`TINY`): that is how
`tools/gpu_check.sh --dry-run` exercises the check's own code here. Each test can `record()` its numbers; with
`ETDET_GPU_REPORT=DIR` they land in DIR/<name>.json for the check's report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.gpu_report import GPU_REPORT_ENV
from pretrain_fixtures import TINY_MODELS

REPO = Path(__file__).resolve().parents[1]
CASCADE_CONFIG = "det_configs/cascade_mask_rcnn/cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-1x_coco_baseline.py"
RETINANET_CONFIG = "det_configs/retinanet/retinanet_swin-t_fpn_1x_coco_baseline.py"
SIZE_KEYS = ("scale", "scales", "crop_size", "img_scale")  # image sizes in mmdet pipelines
COUNT_KEYS = ("num", "max_per_img", "nms_pre")  # proposals, sampled RoIs, detections in train_cfg / test_cfg


@dataclass(frozen=True)
class Profile:
    """Everything that differs between the GPU run and the CPU dry run of the GPU tests."""

    name: str
    device: str
    amp: bool
    timeout_s: float | None  # per subprocess (None: none)
    threads: int | None  # CPU threads per subprocess (tiny CPU runs: 1, since several share the cores)
    # pretraining: an ImageNet-style folder of JPEGs, ET++ stage sizes scaled to final_size
    final_size: int
    train_images: int
    image_size: tuple[int, int]  # width, height of the generated JPEGs
    batch_size: int  # per step at the final size; accumulation 2 (so small stages double the batch)
    workers: int
    model_kwargs: dict[str, dict] = field(default_factory=dict)  # per model (tiny stand-ins on the CPU)
    # mmcv ops
    nms_boxes: int = 20000
    roi_input: tuple[int, int, int, int] = (2, 256, 100, 168)  # N, C, H, W of the feature map
    rois: int = 1000
    focal_samples: int = 100000
    # detectors (tools/train.py, tools/test.py)
    det_iters: int = 20
    det_batch: int = 2  # the configs' images per GPU
    det_test_images: int = 8
    coco_sizes: tuple[int, int] = (480, 640)  # min / max side of the generated COCO images
    det_scale: float = 1.0  # factor on the configs' pipeline image sizes (1.0: as configured)
    det_rois: int | None = None  # cap on proposals / sampled RoIs / detections per image (None: as configured)
    det_workers: int = 4


GPU = Profile(
    name="gpu",
    device="cuda",
    amp=True,
    timeout_s=240.0,
    threads=None,
    final_size=224,
    train_images=320,
    image_size=(500, 375),
    batch_size=32,
    workers=4,
)
TINY = Profile(
    name="tiny-cpu",
    device="cpu",
    amp=False,
    timeout_s=None,
    threads=1,
    final_size=96,
    train_images=24,
    image_size=(80, 60),
    batch_size=2,
    workers=0,
    model_kwargs={
        "swin_tiny_patch4_window7_224": TINY_MODELS["swin_tiny_patch4_window7_224"],
        "convnext_tiny": TINY_MODELS["convnext_atto"],  # the same ConvNeXt constructor with Atto-sized stages
    },
    nms_boxes=500,
    roi_input=(2, 16, 24, 32),
    rois=64,
    focal_samples=512,
    det_iters=2,
    det_test_images=2,
    coco_sizes=(128, 192),
    det_scale=0.125,
    det_rois=16,
    det_workers=0,
)


def active_profile() -> Profile:
    """GPU on a machine with CUDA, else the tiny CPU profile (the conftest skips gpu tests unless asked)."""
    import torch

    return GPU if torch.cuda.is_available() else TINY


def focal_loss_reference(logits: Any, labels: Any, gamma: float = 2.0, alpha: float = 0.25) -> Any:
    """Sigmoid focal loss per element in plain torch (mmdet's py_sigmoid_focal_loss); label C is background."""
    import torch.nn.functional as F

    num_classes = logits.shape[1]
    target = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    prob = logits.sigmoid()
    pt = (1 - prob) * target + prob * (1 - target)
    weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def record(name: str, numbers: dict[str, Any]) -> None:
    """Write a test's numbers to $ETDET_GPU_REPORT/<name>.json (nothing without the variable)."""
    folder = os.environ.get(GPU_REPORT_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(numbers, indent=1, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------ detection config rewriting


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

    The generated categories, in id order, take the first names; the other names are added as categories with
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
    """Write the real `config` with the test's data (`coco`), length and (tiny profile) sizes as OUT/config.py.

    Returns the file and the overrides, which go into the report."""
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / config), import_custom_modules=False)
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
        "classes": f"the config's {len(class_names)}; the generated categories renamed to the first of them",
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
