"""The same classes in MMSegmentation's registries: one class, two registrations.

mmengine registries are per library (mmdet's and mmseg's are siblings under mmengine's root), and a config
with `default_scope='mmseg'` looks names up in mmseg's tree only. So `TimmBackbone` (MODELS),
`TimmLayerDecayOptimizerConstructor` (OPTIM_WRAPPER_CONSTRUCTORS) and `PretrainProvenanceHook` (HOOKS),
registered in mmdet's registries where they are defined, are registered here in mmseg's as well: seg
configs use them through the same `custom_imports=dict(imports=['backbones'])`.

mmseg's own `LearningRateDecayOptimizerConstructor` knows mmseg's ConvNeXt/BEiT parameter names, not
timm's, hence ours in its registry too. Importing `mmseg.registry` runs mmseg's version check (mmcv
>= 2.0.0rc4, < 2.2.0; mmengine < 1.0), which the pinned stack passes unpatched.
"""

from __future__ import annotations

from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from backbones.layer_decay import TimmLayerDecayOptimizerConstructor
from backbones.provenance_hook import PretrainProvenanceHook
from backbones.timm_backbone import TimmBackbone

MODELS.register_module(module=TimmBackbone)
OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=TimmLayerDecayOptimizerConstructor)
HOOKS.register_module(module=PretrainProvenanceHook)
