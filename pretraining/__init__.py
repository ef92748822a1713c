"""Curriculum pretraining (baseline, EfficientTrain, EfficientTrain++) for timm models."""

import etcore.compat  # noqa: F401  (safe-loading allowlist for mmengine checkpoints)
