"""Curriculum pretraining (baseline, EfficientTrain, EfficientTrain++) for timm models."""
import etcore  # noqa: F401  (safe-loading allowlist for mmengine checkpoints)
