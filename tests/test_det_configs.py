"""Every detection config under det_configs/ loads, builds and states the recipe it is named after."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import backbones  # noqa: F401  (registers TimmBackbone, the layer-decay constructor and the hook)
import embedded_demo.data as demo_data
from finetune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "det_configs"
RUNNABLE = sorted(p for d in ("retinanet", "cascade_mask_rcnn", "tiny") for p in (CONFIG_DIR / d).glob("*.py"))
REAL = [p for p in RUNNABLE if p.parent.name != "tiny"]
REAL_BACKBONES = {"swin-t", "swin-s", "swin-b", "convnext-t", "convnext-s", "convnext-b", "r50", "pvtv2-b2", "deit-s"}
CURRICULA = ("baseline", "efficienttrain")
# Configs whose backbones the paper reports with EfficientTrain++ (Table 17) also have an ++ sibling.
PLUS_PLUS = sorted(p for p in RUNNABLE if p.stem.endswith("_efficienttrain++"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> Config:
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    """Each file is parsed once per session (parsing dominates these tests); callers get a copy."""
    return copy.deepcopy(_parsed(path))


def flatten(value, prefix=()):
    """{('model', 'backbone', 'checkpoint'): ..., ...} of a config dict (lists indexed)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(flatten(item, prefix + (key,)))
    return flat or {prefix: value}


def test_every_recipe_and_backbone_has_a_pair():
    stems = {p.stem.rsplit("_", 1)[0] for p in RUNNABLE}
    for stem in stems:
        assert {f"{stem}_{c}" for c in CURRICULA} <= {p.stem for p in RUNNABLE}, stem
    assert all(p.stem.endswith(CURRICULA + ("efficienttrain++",)) for p in RUNNABLE)
    assert {p.stem.rsplit("_", 1)[0] for p in PLUS_PLUS} == {
        f"cascade-mask-rcnn_{b}_fpn_4conv1fc-giou_amp-1x_coco" for b in ("swin-t", "swin-s", "swin-b")
    } | {"retinanet_resnet18_fpn_tiny-demo", "cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo"}  # the frontier
    expected = {f"retinanet_{b}_fpn_1x_coco" for b in REAL_BACKBONES}
    expected |= {f"cascade-mask-rcnn_{b}_fpn_4conv1fc-giou_amp-1x_coco" for b in REAL_BACKBONES}
    expected |= {f"cascade-mask-rcnn_{b}_fpn_4conv1fc-giou_amp-ms-crop-3x_coco" for b in REAL_BACKBONES}
    expected |= {
        f"{d}_{b}_fpn{h}_tiny-demo"
        for b in ("convnext-atto", "resnet18")
        for d, h in (("retinanet", ""), ("cascade-mask-rcnn", "_4conv1fc-giou"))
    }
    assert stems == expected


@pytest.mark.slow
@pytest.mark.parametrize("twin", [p for p in RUNNABLE if not p.stem.endswith("_baseline")], ids=lambda p: p.stem)
def test_pair_differs_only_in_the_pretrained_checkpoint(twin: Path):
    stem, curriculum = twin.stem.rsplit("_", 1)
    baseline = twin.with_name(f"{stem}_baseline.py")
    a, b = flatten(load(baseline).to_dict()), flatten(load(twin).to_dict())
    differing = {key for key in a.keys() | b.keys() if a.get(key, object()) != b.get(key, object())}
    assert differing == {("model", "backbone", "checkpoint")}
    name = a[("model", "backbone", "model_name")]
    assert a[("model", "backbone", "checkpoint")] == f"work_dirs/pretrain/{name}_baseline/final.pth"
    assert b[("model", "backbone", "checkpoint")] == f"work_dirs/pretrain/{name}_{curriculum}/final.pth"


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in RUNNABLE if p.stem.endswith("_baseline")], ids=lambda p: p.stem)
def test_config_builds_and_neck_matches_backbone(path: Path):
    """Each recipe's baseline config; its curriculum twins differ only in the checkpoint path (test above)."""
    cfg = load(path)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    from mmdet.registry import MODELS

    model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert list(cfg.model.neck.in_channels) == backbone.out_channels
    assert backbone.out_channels == backbones.feature_channels(
        cfg.model.backbone.model_name, cfg.model.backbone.out_indices
    )
    if cfg.benchmark.detector == "retinanet":
        assert backbone.strides == [8, 16, 32]
        assert list(cfg.model.bbox_head.anchor_generator.strides) == [8, 16, 32, 64, 128]
    else:
        assert backbone.strides == [4, 8, 16, 32]
        assert list(cfg.model.roi_head.bbox_roi_extractor.featmap_strides) == [4, 8, 16, 32]
    # the optimizer (layer-wise decay for Cascade) can place every parameter of the detector
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = "OptimWrapper"  # AmpOptimWrapper needs CUDA; the param groups are the same
    optim_cfg.pop("loss_scale", None)
    wrapper = build_optim_wrapper(model, optim_cfg)
    # (mmengine's default constructor also lists frozen parameters, e.g. ResNet-50's frozen stem and stage 1)
    grouped = sum(p.numel() for g in wrapper.optimizer.param_groups for p in g["params"] if p.requires_grad)
    assert grouped == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # out_norms='auto': per-output LayerNorms exactly where the recipes' backbones have them, never decayed
    family = cfg.model.backbone.model_name.split("_")[0]
    assert backbone.out_norms == (family in ("swin", "convnext"))
    norms = {id(p) for name, p in backbone.named_parameters() if name.startswith("norm")}
    assert len(norms) == 2 * len(backbone.out_channels) * backbone.out_norms
    norm_groups = [g for g in wrapper.optimizer.param_groups if any(id(p) in norms for p in g["params"])]
    assert all(g["weight_decay"] == 0 for g in norm_groups)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_configs_read_coco_and_name_their_schedule(path: Path):
    """What every real config shares; each recipe's own values are checked against det_configs/recipes.yaml
    by tests/test_det_recipes.py (the values once pinned here, e.g. layer decay 0.7 for every Cascade
    config, were not the official recipes)."""
    cfg = load(path)
    assert cfg.data_root == "data/coco/"
    assert cfg.train_dataloader.dataset.data_root == "data/coco/"
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16
    schedule = "3x" if "3x" in path.stem else "1x"
    assert cfg.benchmark.schedule == schedule
    assert cfg.train_cfg.max_epochs == {"1x": 12, "3x": 36}[schedule]
    if cfg.benchmark.detector == "retinanet":
        assert tuple(cfg.model.backbone.out_indices) == (1, 2, 3)
    else:
        assert tuple(cfg.model.backbone.out_indices) == (0, 1, 2, 3)


@pytest.mark.parametrize("path", [p for p in RUNNABLE if p.parent.name == "tiny"], ids=lambda p: p.stem)
def test_tiny_configs_fit_a_cpu(path: Path):
    cfg = load(path)
    assert cfg.data_root == "data/demo/coco/" and cfg.benchmark.schedule == "tiny"
    assert cfg.optim_wrapper.type == "OptimWrapper"  # no AMP on CPU
    assert cfg.train_dataloader.batch_size <= 4 and cfg.train_dataloader.num_workers == 0
    assert cfg.auto_scale_lr.base_batch_size == cfg.train_dataloader.batch_size  # one process: lr as written
    assert cfg.train_cfg.type == "IterBasedTrainLoop"
    resize = [s for s in cfg.train_dataloader.dataset.pipeline if s.type == "Resize"][0]
    assert max(resize.scale) <= 192
    assert "SyncBN" not in cfg.pretty_text  # SyncBN needs CUDA, also under gloo
    # the demo generator's classes, in its category-id order
    assert list(cfg.classes) == demo_data.class_names(demo_data.DemoParams().classes)
    heads = cfg.model.roi_head.bbox_head if "roi_head" in cfg.model else [cfg.model.bbox_head]
    assert {h.num_classes for h in heads} == {len(cfg.classes)}


def test_data_root_is_the_one_place_to_point_at_the_data(tmp_path):
    path = CONFIG_DIR / "cascade_mask_rcnn" / "cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-1x_coco_baseline.py"
    cfg = load_config(str(path), {"data_root": f"{tmp_path}/coco/"})
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.data_root == f"{tmp_path}/coco/"
    for key in ("val_evaluator", "test_evaluator"):
        assert cfg[key].ann_file == f"{tmp_path}/coco/annotations/instances_val2017.json"
    untouched = load(path)
    assert untouched.val_evaluator.ann_file == "data/coco/annotations/instances_val2017.json"


def test_configs_do_not_download_or_name_machine_paths():
    for path in CONFIG_DIR.rglob("*.py"):
        text = path.read_text()
        assert "http" not in text and "/work/" not in text and "/tmp/" not in text, rel(path)
        assert "pretrained=True" not in text, rel(path)


def test_timm_backbone_runs_on_a_detection_sized_input():
    """A tiny config's backbone + neck take a non-square 160x192 batch (sides multiples of 32)."""
    cfg = load(CONFIG_DIR / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py")
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        features = model.extract_feat(torch.zeros(1, 3, 160, 192))
    assert [tuple(f.shape[-2:]) for f in features] == [(20, 24), (10, 12), (5, 6), (3, 3), (2, 2)]
