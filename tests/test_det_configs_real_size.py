"""Real configs train at their real input size: a member of each recipe runs two iterations through
tools/train.py on CPU on generated COCO-format images of COCO's size, and tools/test.py writes its metrics.

What the command lines override, and why (none of it touches the input size or the pipelines):
  data        data_root=<generated set>, no worker processes, no validation during training (tools/test.py
              evaluates), batch 1 (two iterations = two images; 2 x 20-40 s a backbone pass on a shared
              2-core machine);
  CPU         optim_wrapper.type=OptimWrapper (tools/train.py refuses AmpOptimWrapper without a GPU) and BN
              for the SyncBN box heads (SyncBN needs CUDA; same parameters and buffers);
  cost        64 sampled RoIs per Cascade stage, 300 training and 100 test proposals (the 4conv heads cost
              scales with the RoIs, not the image), checkpoint=None (no pretrained file here).

Two members run in `make test` (the Swin Cascade recipe with its multi-scale crop, and mmdet's SGD R-50
RetinaNet: about 3 minutes on a 2-core machine); ETDET_REAL_SIZE_RECIPES=1 runs one member of each
optimizer/pipeline recipe (five, about 8 minutes), ETDET_REAL_SIZE_ALL=1 one member of every family of
det_configs/recipes.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import recipe_table

ROOT = recipe_table.ROOT
TABLE = recipe_table.load_table()
# One member per recipe; together they cover every backbone family (Swin, DeiT, ConvNeXt, PVTv2, ResNet).
EACH_RECIPE = {
    "cascade-swin-1x": "swin-t",  # Swin recipe: AdamW 1e-4, name-based no-decay keys, multi-scale crop
    "cascade-deit-1x": "deit-s",  # ConvNeXt recipe: layer-wise decay; the ViT simple pyramid at COCO size
    "retinanet-convnext-1x": "convnext-t",  # DAT recipe: AdamW 0.05, single scale 1333x800
    "retinanet-pvtv2-1x": "pvtv2-b2",  # PVT's recipe: AdamW wd 1e-4
    "retinanet-r50-1x": "r50",  # mmdet's R-50 recipe: SGD, frozen stem + stage 1, norm_eval
}
# make test's share (the suite's time budget): the two that differ most (optimizer, pipeline, detector)
PER_RECIPE = {k: v for k, v in EACH_RECIPE.items() if k in ("cascade-swin-1x", "retinanet-r50-1x")}
if os.environ.get("ETDET_REAL_SIZE_RECIPES") == "1":
    PER_RECIPE = EACH_RECIPE
if os.environ.get("ETDET_REAL_SIZE_ALL") == "1":
    PER_RECIPE = {
        family_id: next(iter(family["backbones"]))
        for family_id, family in TABLE["families"].items()
        if not family_id.startswith("tiny-")
    }


def write_coco_sized_set(root: Path, train_images: int = 2, val_images: int = 1, seed: int = 0) -> Path:
    """COCO-layout data (train2017/, val2017/, annotations/instances_*2017.json) of landscape images about
    1000x760 (COCO's typical 640x480 is upscaled to 1333x800 anyway), two large boxes each with polygon masks,
    in COCO categories (person, car); the files list all 80 COCO categories, as COCO's do, so the 80-class
    configs read them unchanged (the class check before a run wants the config's classes in the file)."""
    from mmdet.datasets import CocoDataset

    rng = np.random.default_rng(seed)
    every = [dict(id=i + 1, name=name) for i, name in enumerate(CocoDataset.METAINFO["classes"])]
    categories = [every[0], every[2]]  # person (1) and car (3), as in COCO
    assert [c["name"] for c in categories] == ["person", "car"]
    ann_id = 1
    for split, count in (("train2017", train_images), ("val2017", val_images)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            width, height = int(rng.integers(960, 1067)), int(rng.integers(720, 801))
            canvas = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
            for k, category in enumerate(categories):
                box_w, box_h = int(rng.integers(width // 3, width // 2)), int(rng.integers(height // 3, height // 2))
                x0, y0 = int(rng.integers(0, width - box_w)), int(rng.integers(0, height - box_h))
                canvas[y0 : y0 + box_h, x0 : x0 + box_w] = (200, 80 + 100 * k, 40)
                polygon = [x0, y0, x0 + box_w, y0, x0 + box_w, y0 + box_h, x0, y0 + box_h]
                annotations.append(
                    dict(
                        id=ann_id,
                        image_id=image_id,
                        category_id=category["id"],
                        iscrowd=0,
                        segmentation=[[float(v) for v in polygon]],
                        area=float(box_w * box_h),
                        bbox=[float(x0), float(y0), float(box_w), float(box_h)],
                    )
                )
                ann_id += 1
            name = f"{image_id:012d}.jpg"
            cv2.imwrite(str(root / split / name), canvas)
            images.append(dict(id=image_id, file_name=name, width=width, height=height))
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps(
                dict(
                    info=dict(description=f"generated {split}"),
                    licenses=[],
                    images=images,
                    annotations=annotations,
                    categories=every,
                )
            )
        )
    return root


@pytest.fixture(scope="module")
def coco_sized(module_tmp: Path) -> Path:
    return write_coco_sized_set(module_tmp / "coco")


def cpu_overrides(cfg_detector: str, train: bool) -> list[str]:
    options = ["model.backbone.checkpoint=None"]
    if cfg_detector == "cascade_mask_rcnn":
        options += [f"model.roi_head.bbox_head.{i}.norm_cfg.type=BN" for i in range(3)]
        options += ["model.test_cfg.rpn.max_per_img=100"]
        if train:
            options += [f"model.train_cfg.rcnn.{i}.sampler.num=64" for i in range(3)]
            options += ["model.train_cfg.rpn_proposal.max_per_img=300"]
    if train:
        options += [
            "optim_wrapper.type=OptimWrapper",
            "train_cfg.max_epochs=1",
            "train_dataloader.batch_size=1",
            "train_dataloader.num_workers=0",
            "train_dataloader.persistent_workers=False",
            "val_cfg=None",
            "val_dataloader=None",
            "val_evaluator=None",
        ]
    else:
        options += ["test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False"]
    return options


def run_tool(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_generated_images_reach_the_real_input_sizes(coco_sized: Path):
    """The recipes' train pipelines turn the generated images into COCO-sized inputs (not a toy scale)."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import backbones  # noqa: F401

    init_default_scope("mmdet")
    configs = {"ms-crop": "cascade-swin-1x", "1333x800": "retinanet-r50-1x"}
    for pipeline, family_id in configs.items():
        family = TABLE["families"][family_id]
        path = (
            recipe_table.CONFIG_DIR / f"{family['config'].format(backbone=next(iter(family['backbones'])))}_baseline.py"
        )
        cfg = Config.fromfile(str(path))
        dataset_cfg = cfg.train_dataloader.dataset
        dataset_cfg.data_root = f"{coco_sized}/"
        dataset = DATASETS.build(dataset_cfg)
        for _ in range(6):  # the multi-scale pipeline draws a scale (and maybe a crop) each time
            for index in range(len(dataset)):
                height, width = dataset[index]["inputs"].shape[-2:]
                if pipeline == "1333x800":
                    assert min(height, width) == 800 and max(height, width) <= 1333
                else:  # a short side of 480..800, or a 384..600 crop resized to 480..800
                    assert 480 <= min(height, width) <= 800 and max(height, width) <= 1333


@pytest.mark.slow
@pytest.mark.parametrize("family_id", sorted(PER_RECIPE), ids=str)
def test_real_config_trains_two_iterations_and_tests_on_cpu(family_id: str, coco_sized: Path, tmp_path: Path):
    family = TABLE["families"][family_id]
    backbone = PER_RECIPE[family_id]
    config = recipe_table.CONFIG_DIR / f"{family['config'].format(backbone=backbone)}_baseline.py"
    detector = "cascade_mask_rcnn" if family_id.startswith("cascade") else "retinanet"
    work_dir = tmp_path / "work"
    data = [f"data_root={coco_sized}/"]
    check(
        run_tool(
            "tools/train.py",
            str(config),
            "--work-dir",
            str(work_dir),
            "--cfg-options",
            *data,
            *cpu_overrides(detector, train=True),
        )
    )
    log = next(work_dir.glob("*/*.log")).read_text()
    assert "Epoch(train) [1][2/2]" in log  # two iterations, one image each
    checkpoint = work_dir / "epoch_1.pth"
    assert checkpoint.is_file()
    test_dir = tmp_path / "test"
    check(
        run_tool(
            "tools/test.py",
            str(config),
            str(checkpoint),
            "--work-dir",
            str(test_dir),
            "--no-complexity",  # a third backbone pass at full size; tests/test_own_model.py checks the measurement
            "--cfg-options",
            *data,
            *cpu_overrides(detector, train=False),
        )
    )
    record = json.loads((test_dir / "coco_metrics.json").read_text())
    assert (record["detector"], record["backbone"]) == (detector, family["backbones"][backbone])
    assert set(record["metrics"]) == ({"bbox", "segm"} if detector == "cascade_mask_rcnn" else {"bbox"})
