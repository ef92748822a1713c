"""MMDetection and MMSegmentation backbones built from timm models, and the checkpoint bridge.

Importing registers `TimmBackbone` (MODELS), `TimmLayerDecayOptimizerConstructor`
(OPTIM_WRAPPER_CONSTRUCTORS) and `PretrainProvenanceHook` (HOOKS) in mmdet's and in mmseg's registries
(`backbones.mmseg_registry`); use it from configs with
`custom_imports=dict(imports=['backbones'], allow_failed_imports=False)`.
"""

import backbones.mmseg_registry  # noqa: F401  (the same classes in mmseg's registries)
import etcore.compat  # noqa: F401  (safe-loading allowlist for mmengine checkpoints)
from backbones.checkpoint_bridge import CheckedWeights, SourceCheckpoint, read_backbone_weights, read_source_checkpoint
from backbones.layer_decay import TimmLayerDecayOptimizerConstructor
from backbones.provenance_hook import PretrainProvenanceHook, provenance_record
from backbones.timm_backbone import TimmBackbone
from backbones.timm_features import feature_channels, pyramid_spec

__all__ = [
    "TimmBackbone",
    "feature_channels",
    "pyramid_spec",
    "TimmLayerDecayOptimizerConstructor",
    "PretrainProvenanceHook",
    "provenance_record",
    "SourceCheckpoint",
    "read_source_checkpoint",
    "read_backbone_weights",
    "CheckedWeights",
]
