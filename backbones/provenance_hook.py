"""`PretrainProvenanceHook`: record which pretraining checkpoint a detection run starts from.

Writes `<work_dir>/pretrain_provenance.json` (docs/FORMATS.md) at `before_run`, on rank 0, atomically.
mmengine calls `before_run` before `init_weights()` in training and never calls `init_weights()` in
testing, so the record is built from the backbone's configured `checkpoint` file (the same reader and
the same `weights` choice as the backbone's loader) unless the backbone already holds `.provenance`.
A test run whose pretraining file is gone still writes the record (sha256 and provenance null) and warns.
"""

from __future__ import annotations

import json
import logging
import os

from mmdet.registry import HOOKS
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log

from backbones.checkpoint_bridge import read_source_checkpoint
from etcore.checkpoint_io import write_text_atomic
from etcore.errors import UserInputError
from etcore.formats import PROVENANCE_FILE


def _configured_checkpoint(backbone) -> tuple[str | None, str]:
    """(checkpoint path, weights choice) a backbone is configured with; mmdet backbones via init_cfg."""
    if hasattr(backbone, "checkpoint"):
        return backbone.checkpoint, getattr(backbone, "weights", "auto")
    init_cfg = getattr(backbone, "init_cfg", None) or {}
    if isinstance(init_cfg, dict) and init_cfg.get("type") == "Pretrained":
        return init_cfg.get("checkpoint"), "auto"
    return None, "auto"


def provenance_record(backbone) -> dict:
    """The FORMATS.md record for `backbone` (reads its configured checkpoint when it is not loaded yet)."""
    if getattr(backbone, "provenance", None):
        return backbone.provenance
    path, weights = _configured_checkpoint(backbone)
    if path is None:
        return {"checkpoint": None, "sha256": None, "weights": None, "layout": None, "provenance": None}
    if not os.path.isfile(path):
        print_log(
            f"PretrainProvenanceHook: pretraining checkpoint {path} not found; provenance recorded as null",
            logger="current",
            level=logging.WARNING,
        )
        return {"checkpoint": str(path), "sha256": None, "weights": None, "layout": None, "provenance": None}
    return read_source_checkpoint(path, weights).record()


@HOOKS.register_module()
class PretrainProvenanceHook(Hook):
    """Write `pretrain_provenance.json` into the run's work dir before the run starts."""

    priority = "VERY_HIGH"

    @master_only
    def before_run(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            raise UserInputError(
                "PretrainProvenanceHook: the model has no .backbone; remove the hook from custom_hooks for this model"
            )
        record = provenance_record(backbone)
        path = os.path.join(runner.work_dir, PROVENANCE_FILE)
        write_text_atomic(json.dumps(record, indent=2, sort_keys=True) + "\n", path)
        runner.logger.info(f"pretraining provenance -> {path} (checkpoint: {record['checkpoint']})")
