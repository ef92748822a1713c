"""Every detection config is the recipe det_configs/recipes.yaml says, value by value, with the document
rendered from the same table; layer-wise decay leaves no layer id empty; the optimizer's param groups
decay what the official recipes decay; the paper rows are complete; Swin-T's Cascade Mask R-CNN has
exactly the parameters of mmdet's own Swin detector."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch.nn import GroupNorm, LayerNorm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

import backbones  # noqa: F401  (registers TimmBackbone and the layer-decay constructor)
import recipe_table as rt
from backbones.layer_decay import param_layer_id
from etcore.families import family_of
from reporting.paper import COCO_ROWS, backbone_family_size

TABLE = rt.load_table()
MEMBERS = rt.members(TABLE)
RUNNABLE = sorted(p for d in ("retinanet", "cascade_mask_rcnn", "tiny") for p in (rt.CONFIG_DIR / d).glob("*.py"))
# one built model per family: its first (smallest) backbone, baseline weights
FAMILY_HEADS = {family_id: next(m for m in MEMBERS if m.family == family_id) for family_id in TABLE["families"]}
LAYER_DECAY = [
    m
    for m in MEMBERS
    if m.curriculum == "baseline" and rt.expected(TABLE["families"][m.family], "layer_decay", m.backbone) is not None
]


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> Config:
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    return copy.deepcopy(_parsed(path))


def build_detector(cfg: Config):
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    if cfg.model.backbone.type == "TimmBackbone":
        cfg.model.backbone.checkpoint = None  # random init: no pretrained file here
    return MODELS.build(cfg.model)


def build_optimizer(model, cfg: Config):
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = "OptimWrapper"  # AmpOptimWrapper needs CUDA; the param groups are the same
    return build_optim_wrapper(model, optim_cfg).optimizer


# ------------------------------------------------------------------------------------------ the table


def test_table_is_complete_and_cites_every_value():
    sources, inferences = set(TABLE["sources"]), set(TABLE["inferences"])
    for family_id, family in TABLE["families"].items():
        assert set(family["settings"]) == set(rt.SETTINGS), family_id
        assert set(family["curricula"]) <= {"baseline", "efficienttrain", "efficienttrain++"}
        assert family["curricula"][:2] == ["baseline", "efficienttrain"], family_id
        assert family.get("inferred") in inferences | {None}
        for setting, entry in family["settings"].items():
            where = f"{family_id}.{setting}"
            assert ("value" in entry) != ("by_backbone" in entry), where
            if "by_backbone" in entry:
                assert set(entry["by_backbone"]) == set(family["backbones"]), where
            assert entry.get("src") or entry.get("inferred"), f"{where}: no source and not marked inferred"
            assert set(entry.get("src", [])) <= sources, where
            assert entry.get("inferred") in inferences | {None}, where
            for backbone in family["backbones"]:
                value = rt.expected(family, setting, backbone)
                if setting in ("lr", "weight_decay", "drop_path"):
                    assert isinstance(value, float), f"{where}: {value!r} is not a float (YAML reads 1e-4 as text)"
                rt.value_text(setting, value)  # every value has a rendering
    for key, source in TABLE["sources"].items():
        assert source.get("ref") or (source.get("repo") and source.get("path")), key


def test_table_describes_exactly_the_runnable_configs():
    described = [m.path for m in MEMBERS]
    assert len(described) == len(set(described))
    assert set(described) == set(RUNNABLE)


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.path.stem)
def test_config_is_the_recipe_of_its_family(member: rt.Member):
    cfg = load(member.path)
    family = TABLE["families"][member.family]
    assert cfg.model.backbone.model_name == cfg.benchmark.backbone == member.timm_name
    got = rt.config_settings(cfg)
    differing = {
        s: (got[s], rt.expected(family, s, member.backbone))
        for s in rt.SETTINGS
        if got[s] != rt.expected(family, s, member.backbone)
    }
    assert not differing, f"{member.rel} is not recipe {member.family} in (config, table): {differing}"


def test_recipes_document_holds_the_rendered_table():
    document = rt.DOCUMENT.read_text(encoding="utf-8")
    assert rt.render_document(document, TABLE) == document, "run python tests/recipe_table.py --write"


# ----------------------------------------------------------------------------- param groups, layer ids


def _is_norm(module) -> bool:  # mmengine's is_norm
    return isinstance(module, (_BatchNorm, _InstanceNorm, GroupNorm, LayerNorm))


def exempt_from_decay(rule: dict, name: str, param: torch.Tensor, owner) -> bool:
    """What the table's no-decay rule means, written from the official constructors' definitions."""
    if rule.get("rule") == "timm-layer-decay":  # ConvNeXt's rule, plus the position tables of other families
        tokens = ("pos_embed", "cls_token", "reg_token", "mask_token", "relative_position_bias_table")
        return param.ndim <= 1 or name.endswith(".bias") or any(t in name for t in tokens)
    by_name = any(key in name for key in rule.get("custom_keys", []))  # a substring of the full name
    by_module = rule.get("norm_decay_mult") == 0 and _is_norm(owner)
    return by_name or by_module


@pytest.mark.parametrize("family_id", list(TABLE["families"]), ids=str)
def test_optimizer_param_groups_decay_what_the_recipe_decays(family_id: str):
    member = FAMILY_HEADS[family_id]
    family = TABLE["families"][family_id]
    cfg = load(member.path)
    model = build_detector(cfg)
    optimizer = build_optimizer(model, cfg)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    owners = {
        f"{module_name}.{name}".lstrip("."): module
        for module_name, module in model.named_modules()
        for name, _ in module.named_parameters(recurse=False)
    }
    rule = rt.expected(family, "no_decay", member.backbone)
    layer_decay = rt.expected(family, "layer_decay", member.backbone)
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    exempt = decayed = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = group_of[id(param)]
        want_wd = 0.0 if exempt_from_decay(rule, name, param, owners[name]) else base_wd
        assert group["weight_decay"] == pytest.approx(want_wd), name
        exempt, decayed = exempt + (want_wd == 0), decayed + (want_wd != 0)
        scale = 1.0
        if layer_decay:
            num_layers = layer_decay["num_layers"]
            scheme = family_of(member.timm_name).layer_decay
            scale = layer_decay["rate"] ** (num_layers + 1 - param_layer_id(name, num_layers, "layer_wise", scheme))
        assert group.get("lr", base_lr) == pytest.approx(base_lr * scale), name
    assert decayed
    if member.timm_name == "resnet50" and "custom_keys" in rule:
        assert exempt == 0  # Swin's keys name no ResNet parameter: all decay, as in Swin's code (r50-swin-settings)
    else:
        assert exempt or not rule
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert bool(frozen) == (rt.expected(family, "frozen_stages", member.backbone) >= 0)


def convnext_official_layer_id(name: str, num_layers: int) -> int:
    """ConvNeXt's get_num_layer_layer_wise (object_detection/mmcv_custom/layer_decay_optimizer_constructor.py)
    on TimmBackbone's names: its `downsample_layers.k` are timm's stem (k = 0) and `stages_k.downsample`, its
    `stages.k.j` timm's `stages_k.blocks.j`; anything else is num_layers + 1."""
    if re.match(r"body\.stem_\d+\.", name):
        return 0
    downsample = re.match(r"body\.stages_(\d)\.downsample\.", name)
    if downsample:
        return {0: 0, 1: 2, 2: 3, 3: num_layers}[int(downsample.group(1))]
    block = re.match(r"body\.stages_(\d)\.blocks\.(\d+)\.", name)
    if block:
        stage, index = int(block.group(1)), int(block.group(2))
        return {0: 1, 1: 2, 2: 3 + index // 3, 3: num_layers}[stage]
    return num_layers + 1


def vit_layer_id(name: str, num_layers: int) -> int:
    """Per-block decay of a plain ViT (BEiT-style): embeddings 0, block i -> i + 1, the rest on top."""
    if re.match(r"body\.model\.(patch_embed|cls_token|reg_token|pos_embed)", name):
        return 0
    block = re.match(r"body\.model\.blocks\.(\d+)\.", name)
    return int(block.group(1)) + 1 if block else num_layers + 1


@pytest.mark.parametrize("member", LAYER_DECAY, ids=lambda m: m.path.stem)
def test_layer_decay_fills_every_layer_id(member: rt.Member):
    """Ids 0..num_layers+1 all hold parameters (an empty id would make the layers below it train at the
    next lower rate for nothing: Swin-S/B under ConvNeXt's 12 layers left 9-11 empty), and for ConvNeXt and
    DeiT they are the official rule's ids."""
    cfg = load(member.path)
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.checkpoint = None
    backbone = MODELS.build(backbone_cfg)
    layer_decay = rt.expected(TABLE["families"][member.family], "layer_decay", member.backbone)
    num_layers = layer_decay["num_layers"]
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == num_layers
    # every parameter, frozen ones too: a frozen stem/stage (the CPU demo's frozen_stages=1) holds its ids
    scheme = family_of(member.timm_name).layer_decay
    ids = {
        name: param_layer_id(f"backbone.{name}", num_layers, "layer_wise", scheme)
        for name, _ in backbone.named_parameters()
    }
    # the neck and heads (always present) take num_layers + 1
    assert set(ids.values()) | {num_layers + 1} == set(range(num_layers + 2))
    official = {"convnext": convnext_official_layer_id, "deit": vit_layer_id}.get(member.timm_name.split("_")[0])
    if official is not None:
        assert {n: official(n, num_layers) for n in ids} == ids


# ------------------------------------------------------------------------------------------- the paper


def test_paper_rows_are_table_17_with_six_numbers_and_a_config_each():
    """reporting/paper.py is the one copy of Table 17; every row has the runnable config of its method."""
    rows = COCO_ROWS
    assert len(rows) == 9
    by_method = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
        assert set(row.metrics["bbox"]) == {"AP", "AP50", "AP75"}
        assert set(row.metrics) == ({"bbox"} if row.detector == "retinanet" else {"bbox", "segm"})
        assert row.speedup == (1.0 if row.method == "baseline" else 1.5) and row.schedule == "1x"
        configs = [
            path
            for path in RUNNABLE
            if path.stem.endswith(f"_{row.method}")
            and (load(path).benchmark.detector, load(path).benchmark.schedule) == (row.detector, row.schedule)
            and backbone_family_size(load(path).benchmark.backbone) == row.backbone
        ]
        assert len(configs) == 1, f"no single config for the paper row {row}: {configs}"
    assert {k: len(v) for k, v in by_method.items()} == {"baseline": 4, "efficienttrain": 2, "efficienttrain++": 3}
    swin_t_cascade = {r.method: r for r in rows if r.detector == "cascade_mask_rcnn" and r.backbone == "Swin-T"}
    assert swin_t_cascade["efficienttrain++"].metrics["bbox"] == {"AP": 48.4, "AP50": 67.6, "AP75": 52.6}
    assert swin_t_cascade["baseline"].metrics["segm"] == {"AP": 41.5, "AP50": 64.2, "AP75": 44.9}


# ------------------------------------------------------------------------------- parameters vs mmdet

SWIN_T_OFFICIAL = dict(  # Swin's official Swin-T detection backbone, in mmdet 3.x's SwinTransformer
    type="SwinTransformer",
    embed_dims=96,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24],
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.0,
    attn_drop_rate=0.0,
    drop_path_rate=0.0,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    convert_weights=True,
)


def test_swin_t_cascade_has_the_parameters_of_mmdet_swin_cascade():
    """The whole Cascade Mask R-CNN 1x with TimmBackbone('swin_tiny_patch4_window7_224') and with mmdet's
    SwinTransformer as the official config defines it: the same learnable parameters, tensor for tensor
    (85,629,804; Swin's README rounds it to 86M)."""
    cfg = load(
        rt.CONFIG_DIR / "cascade_mask_rcnn" / "cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-1x_coco_baseline.py"
    )
    ours = build_detector(cfg)
    official_cfg = copy.deepcopy(cfg)
    official_cfg.model.backbone = dict(SWIN_T_OFFICIAL)
    official = build_detector(official_cfg)

    def shapes(module) -> list:
        return sorted(tuple(p.shape) for p in module.parameters() if p.requires_grad)

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    assert count(ours) == count(official) == 85_629_804
    assert count(ours.backbone) == count(official.backbone) == 27_520_698
    assert shapes(ours.backbone) == shapes(official.backbone)
