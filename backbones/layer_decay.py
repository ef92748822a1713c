"""Layer-wise learning-rate decay for detectors whose backbone is a TimmBackbone (timm parameter names).

    optim_wrapper = dict(type='OptimWrapper', constructor='TimmLayerDecayOptimizerConstructor',
                         optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
                         paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6))

mmdet's `LearningRateDecayOptimizerConstructor` only knows mmdet's ConvNeXt names (`downsample_layers`,
`stages.i.j`); this one assigns the same layer ids to timm's names, features_only (`stages_2.blocks.4`)
or not (`stages.2.blocks.4`). Which rule applies is the backbone family's `layer_decay` scheme in
`etcore.families` (looked up from the TimmBackbone's model name), never guessed from a parameter name:

* hierarchical, layer_wise (ConvNeXt detection recipe; also Swin, PVTv2, ResNet): stem 0, stage 0 -> 1,
  stage 1 -> 2, stage 2 block b -> 3 + b // 3 (at most num_layers - 1), stage 3 -> num_layers; a stage's
  downsample layer takes the id of its first block.
* vit_blocks (DeiT/ViT): embeddings 0, block i -> i + 1 (num_layers = depth); layer_wise only.
* mbconv_stages (EfficientNet, MobileNetV3): conv_stem/bn1 0, `blocks.<s>` -> s + 1 for either decay type
  (num_layers = the number of block stages, 7 for both), a classifier-side conv_head/bn2 num_layers.
* hierarchical, stage_wise: stem 0, stage s -> s + 1 (num_layers = number of stages, or more for a gentler decay of
  the stem). With `downsample_at_stem=True` every stage's downsampling layer takes the stem's id 0: the
  rule of the official ConvNeXt *segmentation* constructor (`semantic_segmentation/mmcv_custom/`, whose
  stage_wise puts every `downsample_layers.*` at 0) and of mmseg's `LearningRateDecayOptimizerConstructor`.
* everything outside the backbone (neck, heads), ViT's simple pyramid and the output norms `norm{i}`
  (`backbones.out_norms`) -> num_layers + 1. The output norms go with the new layers, not with the stage
  they follow: the official ConvNeXt detector's constructor and mmdet 3.3's
  `LearningRateDecayOptimizerConstructor` give every backbone key outside `downsample_layers`/`stages`
  (their `norm{i}`) num_layers + 1.

lr scale = decay_rate ** (num_layers + 1 - layer_id): the heads train at the base lr, as in mmdet.
No weight decay on 1-d tensors (norms, biases, layer scales), position embeddings, class/register tokens
and relative-position tables. Frozen parameters are skipped.
"""

from __future__ import annotations

import json
import re
from typing import List

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from etcore.errors import UserInputError
from etcore.families import HIERARCHICAL, MBCONV_STAGES, VIT_BLOCKS, require_family

STEM = re.compile(
    r"^(?:model\.)?(?:stem(?:_\d+)?|conv1|bn1|patch_embed|cls_token|reg_token|pos_embed|"
    r"absolute_pos_embed|norm_pre)(?:\.|$)"
)
STAGE = re.compile(r"^(?:stages|layers)[._](\d+)\.(.*)$")
RESNET_STAGE = re.compile(r"^layer([1-9])\.(.*)$")
VIT_BLOCK = re.compile(r"^(?:model\.)?blocks\.(\d+)\.")
MBCONV_STEM = re.compile(r"^(?:conv_stem|bn1)\.")
MBCONV_STAGE = re.compile(r"^blocks\.(\d+)\.")
MBCONV_HEAD = re.compile(r"^(?:conv_head|bn2)\.")
BLOCK_INDEX = re.compile(r"(?:^|\.)blocks\.(\d+)\.|^(\d+)\.")
OUT_NORM = re.compile(r"^norm\d+\.")
NO_DECAY_NAMES = (
    "pos_embed",
    "cls_token",
    "reg_token",
    "mask_token",
    "relative_position_bias_table",
    "absolute_pos_embed",
)


def backbone_layer_id(
    name: str, num_layers: int, decay_type: str, scheme: str, downsample_at_stem: bool = False
) -> int | None:
    """Layer id of a parameter *inside* the backbone (name without `backbone.`/`body.`) under the family's
    `scheme` (`etcore.families`); None if the scheme places no such name."""
    top = num_layers + 1
    if name.startswith("pyramid.") or OUT_NORM.match(name):
        return top
    if scheme == VIT_BLOCKS:
        return _vit_layer_id(name, decay_type)
    if scheme == MBCONV_STAGES:
        return _mbconv_layer_id(name, num_layers)
    if scheme != HIERARCHICAL:
        raise ValueError(f"unknown layer-decay scheme {scheme!r}")
    return _hierarchical_layer_id(name, num_layers, decay_type, downsample_at_stem)


def _vit_layer_id(name: str, decay_type: str) -> int | None:
    if decay_type == "stage_wise":
        raise UserInputError(
            "paramwise_cfg decay_type='stage_wise' is undefined for a plain ViT (one stage): "
            "use decay_type='layer_wise' with num_layers=<depth>"
        )
    if STEM.match(name):
        return 0
    block = VIT_BLOCK.match(name)
    return int(block.group(1)) + 1 if block else None


def _mbconv_layer_id(name: str, num_layers: int) -> int | None:
    if MBCONV_STEM.match(name):
        return 0
    stage = MBCONV_STAGE.match(name)
    if stage:
        return int(stage.group(1)) + 1
    return num_layers if MBCONV_HEAD.match(name) else None


def _hierarchical_layer_id(name: str, num_layers: int, decay_type: str, downsample_at_stem: bool) -> int | None:
    if STEM.match(name):
        return 0
    stage = STAGE.match(name)
    if stage:
        stage_id, rest = int(stage.group(1)), stage.group(2)
    else:
        resnet = RESNET_STAGE.match(name)
        if not resnet:
            return None
        stage_id, rest = int(resnet.group(1)) - 1, resnet.group(2)
    if decay_type == "stage_wise":
        return 0 if downsample_at_stem and rest.startswith("downsample") else stage_id + 1
    block = BLOCK_INDEX.search(rest)
    block_id = int(block.group(1) or block.group(2)) if block else 0  # downsample: the stage's first block
    if rest.startswith("norm"):  # a stage-level norm after the blocks (PVTv2)
        block_id = 10**6
    if stage_id <= 1:
        return stage_id + 1
    if stage_id == 2:
        return min(3 + block_id // 3, num_layers - 1)
    return num_layers


def param_layer_id(name: str, num_layers: int, decay_type: str, scheme: str, downsample_at_stem: bool = False) -> int:
    """Layer id of any detector parameter (`backbone.body.stages_2.blocks.4.mlp.fc1.weight`, `neck...`)."""
    if not name.startswith("backbone."):
        return num_layers + 1
    inner = name[len("backbone.") :]
    inner = inner[len("body.") :] if inner.startswith("body.") else inner
    layer_id = backbone_layer_id(inner, num_layers, decay_type, scheme, downsample_at_stem)
    if layer_id is None:
        raise UserInputError(
            f"TimmLayerDecayOptimizerConstructor: the {scheme} layer-decay scheme cannot place backbone "
            f"parameter {name}: use the default optimizer constructor for this backbone, or give its family "
            "another scheme in etcore/families.py"
        )
    if layer_id > num_layers + 1:
        raise UserInputError(
            f"paramwise_cfg num_layers={num_layers} is too small for {name} (layer id "
            f"{layer_id}): set num_layers to the model's depth"
        )
    return layer_id


def layer_decay_scheme(model: nn.Module) -> str:
    """The layer-decay scheme of the model's backbone family (`etcore.families`), from its timm model name."""
    model_name = getattr(getattr(model, "backbone", None), "model_name", None)
    if not isinstance(model_name, str):
        raise UserInputError(
            "TimmLayerDecayOptimizerConstructor needs a TimmBackbone (model.backbone.model_name): use the "
            "default optimizer constructor for other backbones"
        )
    return require_family(model_name, "layer-wise lr decay").layer_decay


def no_weight_decay(name: str, ndim: int) -> bool:
    return ndim <= 1 or name.endswith(".bias") or any(n in name for n in NO_DECAY_NAMES)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TimmLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Param groups with layer-wise lr decay for timm backbones (rules in the module docstring)."""

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        cfg = self.paramwise_cfg
        decay_type = cfg.get("decay_type", "layer_wise")
        if decay_type not in ("layer_wise", "stage_wise"):
            raise UserInputError(f"paramwise_cfg decay_type={decay_type!r}: use 'layer_wise' or 'stage_wise'")
        if "num_layers" not in cfg or "decay_rate" not in cfg:
            raise UserInputError(
                "paramwise_cfg needs decay_rate and num_layers, e.g. "
                "dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6)"
            )
        num_layers, decay_rate = int(cfg["num_layers"]), float(cfg["decay_rate"])
        downsample_at_stem = bool(cfg.get("downsample_at_stem", False))
        if downsample_at_stem and decay_type != "stage_wise":
            raise UserInputError(
                "paramwise_cfg downsample_at_stem=True is a stage_wise rule (the ConvNeXt segmentation recipe): "
                "use it with decay_type='stage_wise', or drop it"
            )
        scheme = layer_decay_scheme(module)
        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = param_layer_id(name, num_layers, decay_type, scheme, downsample_at_stem)
            decay = not no_weight_decay(name, param.ndim)
            key = f"layer_{layer_id}_{'decay' if decay else 'no_decay'}"
            if key not in groups:
                scale = decay_rate ** (num_layers + 1 - layer_id)
                groups[key] = {
                    "params": [],
                    "param_names": [],
                    "lr_scale": scale,
                    "group_name": key,
                    "lr": scale * self.base_lr,
                    "weight_decay": self.base_wd if decay else 0.0,
                }
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        if get_dist_info()[0] == 0:
            summary = {
                k: {"lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"], "params": len(g["params"])}
                for k, g in sorted(groups.items())
            }
            MMLogger.get_current_instance().info(
                f"layer-wise lr decay ({scheme}, {decay_type}, rate {decay_rate}, {num_layers} layers): "
                f"{json.dumps(summary)}"
            )
        params.extend(groups.values())
