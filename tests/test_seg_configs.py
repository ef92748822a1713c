"""Every segmentation config under seg_configs/ loads, builds, and states the recipe it is named after."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

import backbones  # noqa: F401  (registers TimmBackbone & co. in mmseg's registries)
import embedded_demo.data as demo_data
from etcore.families import timm_name
from finetune.config import load_config
from finetune.segmentation import use_test_time_augmentation

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "seg_configs"
RUNNABLE = sorted(p for d in ("upernet", "tiny") for p in (CONFIG_DIR / d).glob("*.py"))
BASELINES = [p for p in RUNNABLE if p.stem.endswith("_baseline")]
REAL = [p for p in RUNNABLE if p.parent.name == "upernet"]
CURRICULA = ("baseline", "efficienttrain", "efficienttrain++")
# (schedule, backbone) of the rows of EfficientTrain++ Table 18: these have an _efficienttrain++.py config too
TABLE_18 = {
    ("80k", "deit-s"),
    ("80k", "swin-t"),
    ("80k", "swin-s"),
    ("160k", "deit-s"),
    ("160k", "swin-t"),
    ("160k", "swin-s"),
    ("160k", "swin-b"),
}


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> Config:
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    return copy.deepcopy(_parsed(path))


def flatten(value, prefix=()):
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


def split(path: Path) -> tuple[str, str]:
    """(recipe stem, curriculum) of a runnable config name."""
    for curriculum in sorted(CURRICULA, key=len, reverse=True):
        if path.stem.endswith("_" + curriculum):
            return path.stem[: -len(curriculum) - 1], curriculum
    raise AssertionError(path)


def test_every_recipe_has_its_pair_or_triple():
    stems: dict[str, set[str]] = {}
    for path in RUNNABLE:
        stem, curriculum = split(path)
        stems.setdefault(stem, set()).add(curriculum)
    expected = {}
    for backbone in ("swin-t", "swin-s", "swin-b", "deit-s"):
        for schedule in ("80k", "160k"):
            curricula = set(CURRICULA) if (schedule, backbone) in TABLE_18 else set(CURRICULA[:2])
            expected[f"upernet_{backbone}_8xb2-{schedule}_ade20k-512x512"] = curricula
    for backbone in ("convnext-t", "convnext-s", "convnext-b"):
        expected[f"upernet_{backbone}_8xb2-amp-160k_ade20k-512x512"] = set(CURRICULA[:2])
    expected["upernet_convnext-atto_tiny-demo"] = set(CURRICULA[:2])
    expected["upernet_resnet18_tiny-demo"] = set(CURRICULA)  # the demo frontier trains EfficientTrain++ too
    assert stems == expected


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda p: p.stem)
def test_configs_of_a_recipe_differ_only_in_the_pretrained_checkpoint(baseline: Path):
    stem, _ = split(baseline)
    base = flatten(load(baseline).to_dict())
    name = base[("model", "backbone", "model_name")]
    assert name == timm_name(stem.split("_")[1])  # the config-name stem of the family registry
    assert base[("model", "backbone", "checkpoint")] == f"work_dirs/pretrain/{name}_baseline/final.pth"
    for curriculum in CURRICULA[1:]:
        twin_path = baseline.with_name(f"{stem}_{curriculum}.py")
        if not twin_path.exists():
            continue
        twin = flatten(load(twin_path).to_dict())
        differing = {key for key in base.keys() | twin.keys() if base.get(key, object()) != twin.get(key, object())}
        assert differing == {("model", "backbone", "checkpoint")}, twin_path.name
        assert twin[("model", "backbone", "checkpoint")] == f"work_dirs/pretrain/{name}_{curriculum}/final.pth"


@pytest.mark.slow
@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.stem)
def test_config_builds_and_heads_match_backbone(path: Path):
    cfg = load(path)
    assert cfg.default_scope == "mmseg"
    init_default_scope("mmseg")
    from mmseg.registry import MODELS

    cfg.model.backbone.checkpoint = None
    model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert list(cfg.model.decode_head.in_channels) == backbone.out_channels
    assert cfg.model.auxiliary_head.in_channels == backbone.out_channels[cfg.model.auxiliary_head.in_index]
    assert backbone.out_channels == backbones.feature_channels(
        cfg.model.backbone.model_name, **{k: v for k, v in cfg.model.backbone.items() if k == "vit_blocks"}
    )
    family = cfg.model.backbone.model_name.split("_")[0]
    assert backbone.out_norms == (family in ("swin", "convnext"))
    if family == "deit":
        assert backbone.strides == [16] * 4 and backbone.pyramid is None
    else:
        assert backbone.strides == [4, 8, 16, 32]
    # the optimizer places every trainable parameter; norms and position tables are never decayed
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = "OptimWrapper"  # AmpOptimWrapper needs CUDA; the param groups are the same
    optim_cfg.pop("loss_scale", None)
    wrapper = build_optim_wrapper(model, optim_cfg)
    groups = wrapper.optimizer.param_groups
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )
    by_param = {id(p): g for g in groups for p in g["params"]}
    # DeiT: the official run decays its LayerNorms (test_deit_upernet_decays_what_mmsegs_own_vit_decays)
    exempt = ("relative_position_bias_table",) if family == "deit" else ("norm", "relative_position_bias_table")
    for name, param in model.named_parameters():
        if name.startswith("backbone.") and any(k in name for k in exempt):
            assert by_param[id(param)]["weight_decay"] == 0.0, name


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_configs_state_their_recipe(path: Path):
    cfg = load(path)
    stem, _ = split(path)
    backbone, schedule = stem.split("_")[1], stem.split("_")[2].split("-")[-1]
    family = backbone.split("-")[0]
    assert cfg.data_root == "data/ade/ADEChallengeData2016/"
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == "ADE20KDataset" and dataset.data_root == cfg.data_root
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    # 16 images per iteration: 8 GPUs x 2
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16
    crop = [s for s in dataset.pipeline if s.type == "RandomCrop"][0]
    assert tuple(crop.crop_size) == (512, 512) and tuple(cfg.model.data_preprocessor.size) == (512, 512)
    resize = [s for s in dataset.pipeline if s.type == "RandomResize"][0]
    assert (tuple(resize.scale), tuple(resize.ratio_range)) == ((2048, 512), (0.5, 2.0))
    # heads: UPerHead 512 channels, PPM (1, 2, 3, 6); FCN auxiliary head, 256 channels, loss weight 0.4
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert (head.type, head.channels, tuple(head.pool_scales)) == ("UPerHead", 512, (1, 2, 3, 6))
    assert head.dropout_ratio == aux.dropout_ratio == 0.1
    assert (aux.type, aux.channels, aux.num_convs, aux.loss_decode.loss_weight) == ("FCNHead", 256, 1, 0.4)
    # schedule: linear warm-up 1500 iterations from 1e-6, poly power 1 to 0 over the whole run
    iters = {"80k": 80000, "160k": 160000}[schedule]
    assert cfg.train_cfg.max_iters == iters and cfg.benchmark.schedule == schedule
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.begin, warmup.end) == ("LinearLR", 1e-6, 0, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ("PolyLR", 1.0, 0.0, 0, iters)
    assert cfg.benchmark.segmentor == "upernet"
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == "AdamW" and tuple(optimizer.betas) == (0.9, 0.999)
    if family in ("swin", "deit"):
        assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
        assert cfg.model.backbone.drop_path_rate == (0.3 if family == "swin" else 0.1)
        keys = set(cfg.optim_wrapper.paramwise_cfg.custom_keys)
        assert keys == (
            {"absolute_pos_embed", "relative_position_bias_table", "norm"}
            if family == "swin"
            else {"pos_embed", "cls_token"}  # the official `norm` key matches nothing in mmseg's ViT (ln1/ln2)
        )
        assert cfg.model.test_cfg.mode == "whole" and "tta_test_cfg" not in cfg
        assert cfg.model.auxiliary_head.in_index == (2 if family == "swin" else 3)
    if family == "deit":  # mmseg's vit_deit-s16_upernet: blocks 2, 5, 8, 11 at stride 16, no neck
        assert tuple(cfg.model.backbone.vit_blocks) == (2, 5, 8, 11) and "neck" not in cfg.model
        assert cfg.model.backbone.img_size == 512
    if family == "convnext":
        size = backbone.split("-")[1]
        assert (optimizer.lr, optimizer.weight_decay) == (1e-4, 0.05)
        assert cfg.optim_wrapper.type == "AmpOptimWrapper"
        assert cfg.optim_wrapper.constructor == "TimmLayerDecayOptimizerConstructor"
        decay = cfg.optim_wrapper.paramwise_cfg
        assert (decay.decay_rate, decay.decay_type, decay.downsample_at_stem) == (0.9, "stage_wise", True)
        assert decay.num_layers == {"t": 6, "s": 12, "b": 12}[size]
        assert cfg.model.backbone.drop_path_rate == {"t": 0.4, "s": 0.3, "b": 0.4}[size]
        assert cfg.model.test_cfg == dict(mode="slide", crop_size=(512, 512), stride=(341, 341))
        assert cfg.tta_test_cfg == dict(mode="whole")  # the official *_ms.py files test whole images
    # MS+flip: the single-scale test scale (2048, 512) x 0.5 .. 1.75, each without and with a horizontal flip
    augment = cfg.tta_pipeline[1]
    assert augment.type == "TestTimeAug" and cfg.tta_model.type == "SegTTAModel"
    scales = [tuple(t.scale) for t in augment.transforms[0]]
    assert scales == [(int(2048 * r), int(512 * r)) for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)]
    assert [(t.prob, t.direction) for t in augment.transforms[1]] == [(0.0, "horizontal"), (1.0, "horizontal")]
    test_resize = [s for s in cfg.test_dataloader.dataset.pipeline if s.type == "Resize"][0]
    assert tuple(test_resize.scale) == (2048, 512)
    assert cfg.test_evaluator.type == "IoUMetric" and list(cfg.test_evaluator.iou_metrics) == ["mIoU"]


def test_warmup_and_poly_multiply_like_the_official_schedule():
    """mmengine chains LinearLR and PolyLR; together they give mmcv 0.x's poly with linear warm-up."""
    from mmengine.optim.scheduler import LinearLR, PolyLR

    cfg = load(REAL[0])
    total, base = 16000, 6e-5  # the real schedule's shape over a shorter run, to keep the test fast
    warmup, poly = (dict(s) for s in cfg.param_scheduler)
    poly["end"] = total
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=base)
    schedulers = [
        LinearLR(optimizer, **{k: v for k, v in warmup.items() if k != "type"}),
        PolyLR(optimizer, **{k: v for k, v in poly.items() if k != "type"}),
    ]
    for step in range(total):
        official = base * (1 - step / total)
        if step < 1500:
            official *= 1e-6 + (1 - 1e-6) * step / 1500
        assert optimizer.param_groups[0]["lr"] == pytest.approx(official, abs=1e-3 * base), step
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()


@pytest.mark.parametrize("path", [p for p in RUNNABLE if p.parent.name == "tiny"], ids=lambda p: p.stem)
def test_tiny_configs_fit_a_cpu_and_the_demo_data(path: Path):
    cfg = load(path)
    assert cfg.default_scope == "mmseg"
    assert cfg.data_root == "data/demo/ade/" and cfg.benchmark.schedule == "tiny"
    assert cfg.optim_wrapper.type == "OptimWrapper" and "SyncBN" not in cfg.pretty_text
    assert cfg.train_dataloader.num_workers == 0 and cfg.train_cfg.max_iters <= 200
    dataset = cfg.train_dataloader.dataset
    assert (dataset.type, dataset.img_suffix, dataset.reduce_zero_label) == ("BaseSegDataset", ".png", True)
    assert list(cfg.classes) == demo_data.class_names(demo_data.DemoParams().classes)
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == len(cfg.classes)
    resize = [s for s in dataset.pipeline if s.type == "RandomResize"][0]
    assert min(resize.ratio_range) >= 1.0  # never shrink: the textures that name the classes would alias
    # no flip, in training or in --tta: two demo classes are mirror images (tests/test_demo_data.py)
    assert "RandomFlip" not in str(cfg.train_pipeline) + str(cfg.tta_pipeline)


def test_data_root_is_the_one_place_to_point_at_the_data(tmp_path):
    path = REAL[0]
    cfg = load_config(str(path), {"data_root": f"{tmp_path}/ade/"})
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.data_root == f"{tmp_path}/ade/"


def test_configs_do_not_download_or_name_machine_paths():
    for path in CONFIG_DIR.rglob("*.py"):
        text = path.read_text()
        assert "http" not in text and "/work/" not in text and "/tmp/" not in text, path.name
        assert "pretrained=True" not in text, path.name


def _decay_of(cfg: Config) -> tuple[nn.Module, dict[str, float]]:
    """The built segmentor (heads with BatchNorm, no weights) and every parameter's weight decay."""
    init_default_scope("mmseg")
    from mmseg.registry import MODELS

    for head in ("decode_head", "auxiliary_head"):
        cfg.model[head].norm_cfg = dict(type="BN", requires_grad=True)  # SyncBN needs a process group
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    return model, {name: decay[id(p)] for name, p in model.named_parameters()}


@pytest.mark.slow
def test_deit_upernet_decays_what_mmsegs_own_vit_decays():
    """The official recipe's effective rule: mmseg's ViT names its LayerNorms ln1/ln2, so the file's `norm` key
    matches nothing and only pos_embed and cls_token go undecayed. Our config (timm names: norm1/norm2) must
    decay the same tensors: counted on mmseg's own model built from its installed config."""
    import mmseg

    official_cfg = Config.fromfile(
        str(Path(mmseg.__file__).parent / ".mim/configs/vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py")
    )
    official_cfg.model.pretrained = None
    official, official_decay = _decay_of(official_cfg)
    ours_cfg = load(CONFIG_DIR / "upernet" / "upernet_deit-s_8xb2-80k_ade20k-512x512_baseline.py")
    ours_cfg.model.backbone.checkpoint = None
    ours, ours_decay = _decay_of(ours_cfg)

    def exempt(decay: dict[str, float]) -> set[str]:
        return {name.rsplit(".", 1)[-1] for name, value in decay.items() if value == 0}

    assert exempt(official_decay) == exempt(ours_decay) == {"cls_token", "pos_embed"}
    assert official_cfg.optim_wrapper.paramwise_cfg.custom_keys.keys() >= {"norm"}  # the key is there, and idle

    def decayed_layer_norms(model: nn.Module, decay: dict[str, float]) -> int:
        return sum(
            decay[f"{name}.{p}"] > 0
            for name, module in model.named_modules()
            if isinstance(module, nn.LayerNorm)
            for p, _ in module.named_parameters(recurse=False)
        )

    assert decayed_layer_norms(official, official_decay) == decayed_layer_norms(ours, ours_decay) == 12 * 2 * 2
    # every other tensor decays in both: the same count, but for timm's patch-embedding bias (mmseg's ViT has
    # patch_bias=False)
    decayed = [sum(v > 0 for v in d.values()) for d in (official_decay, ours_decay)]
    assert decayed[1] == decayed[0] + 1 and ours_decay["backbone.body.model.patch_embed.proj.bias"] > 0


@pytest.mark.parametrize("family", ["convnext-t", "swin-t", "deit-s"])
def test_tta_tests_whole_images_where_the_official_multiscale_files_do(family: str):
    """ConvNeXt slides 512x512 windows single-scale but its *_ms.py files test whole images: --tta switches the
    wrapped model to whole-image mode. Swin and DeiT test whole images in both modes."""
    path = next(p for p in REAL if f"_{family}_" in p.name and p.stem.endswith("_baseline"))
    cfg = load(path)
    single = copy.deepcopy(cfg.model.test_cfg)
    use_test_time_augmentation(cfg, str(path))
    assert cfg.model.type == "SegTTAModel"
    assert cfg.model.module.test_cfg.mode == "whole"
    assert single.mode == ("slide" if family.startswith("convnext") else "whole")
