"""MMDetection backbones built from timm models, and the checkpoint bridge."""
import etcore  # noqa: F401  (safe-loading allowlist for mmengine checkpoints)

from backbones.timm_backbone import TimmBackbone
from backbones.timm_features import feature_channels, pyramid_spec

__all__ = ["TimmBackbone", "feature_channels", "pyramid_spec"]
