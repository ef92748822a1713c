"""The papers' published COCO numbers, and how a run's backbone name maps onto the papers' labels."""

from __future__ import annotations

import re
from typing import Any

from reporting.runs import BASELINE
from reporting.stats import Stat

# The paper's COCO results (box AP / mask AP, percent), baseline -> EfficientTrain (arXiv 2211.09703).
PAPER_RESULTS = {
    ("retinanet", "1x", "Swin-T"): {"baseline": {"bbox": 41.7}, "efficienttrain": {"bbox": 41.8}},
    ("cascade_mask_rcnn", "1x", "Swin-T"): {
        "baseline": {"bbox": 48.1, "segm": 41.5},
        "efficienttrain": {"bbox": 48.2, "segm": 41.8},
    },
    ("cascade_mask_rcnn", "1x", "Swin-S"): {
        "baseline": {"bbox": 50.0, "segm": 43.1},
        "efficienttrain": {"bbox": 50.6, "segm": 43.6},
    },
    ("cascade_mask_rcnn", "1x", "Swin-B"): {
        "baseline": {"bbox": 50.9, "segm": 44.0},
        "efficienttrain": {"bbox": 51.3, "segm": 44.2},
    },
}
_FAMILIES = {"swin": "Swin", "convnext": "ConvNeXt", "deit": "DeiT", "cswin": "CSWin"}
_SIZES = {"tiny": "T", "small": "S", "base": "B", "large": "L", "t": "T", "s": "S", "b": "B", "l": "L"}


def backbone_family_size(backbone: str) -> str | None:
    """'swin_tiny_patch4_window7_224' -> 'Swin-T' (family + size), None when it names no known family."""
    match = re.match(r"^(swin|convnext|deit|cswin)[_-]?(tiny|small|base|large|t|s|b|l)(?![a-z])", backbone.lower())
    return f"{_FAMILIES[match.group(1)]}-{_SIZES[match.group(2)]}" if match else None


def paper_rows(group: tuple[str, str, str]) -> list[dict[str, Any]]:
    """The paper's baseline, EfficientTrain and delta rows for a matching group (empty when none)."""
    detector, backbone, schedule = group
    reference = PAPER_RESULTS.get((detector, schedule, backbone_family_size(backbone) or ""))
    if reference is None:
        return []
    rows = []
    family = backbone_family_size(backbone)
    for arm in (BASELINE, "efficienttrain"):
        label = f"paper: {arm} ({family})"
        row = {"row": "paper", "detector": detector, "backbone": backbone, "schedule": schedule, "pretraining": label}
        for iou_type, value in reference[arm].items():
            row[f"{iou_type}_AP"] = Stat(value)
        rows.append(row)
    delta = {
        "row": "paper",
        "detector": detector,
        "backbone": backbone,
        "schedule": schedule,
        "pretraining": "paper: Δ efficienttrain − baseline",
    }
    for iou_type, value in reference["efficienttrain"].items():
        delta[f"{iou_type}_AP"] = Stat(round(value - reference[BASELINE][iou_type], 1), signed=True)
    return rows + [delta]
