"""MMDetection backbones built from timm models, and the checkpoint bridge."""
import etcore  # noqa: F401  (safe-loading allowlist for mmengine checkpoints)
