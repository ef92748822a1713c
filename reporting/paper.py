"""The papers' published numbers, as data, and how a run's backbone name maps onto the papers' labels.

COCO rows: EfficientTrain++ (arXiv 2405.08768) Table 17, 1x schedule, box and mask AP / AP50 / AP75 in
percent, for the ordinary baseline and the backbones pretrained with EfficientTrain or EfficientTrain++
(each with a 1.5x pretraining speedup). A method is named by the curriculum that produces it
(`baseline`, `efficienttrain`, `efficienttrain++`), so a run meets the row of its own curriculum.

ADE20K rows: EfficientTrain++ Table 18, UperNet at 80k and 160k iterations, mIoU single-scale and with
multi-scale + flip test in percent, baseline and EfficientTrain++ (speedup 1.6x for DeiT-S, 1.5x for Swin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etcore.families import paper_label
from reporting.runs import BASELINE


@dataclass(frozen=True)
class PaperRow:
    """One published result: what was trained, by which method, its speedup and its numbers (percent)."""

    source: str  # paper and table
    detector: str  # as in coco_metrics.json: retinanet | cascade_mask_rcnn; seg_metrics.json's segmentor: upernet
    schedule: str  # 1x | 3x | 80k | 160k
    backbone: str  # family-size label, e.g. Swin-T
    method: str  # the curriculum name: baseline | efficienttrain | efficienttrain++
    speedup: float  # pretraining wall-clock speedup over the baseline
    # {'bbox': {'AP': ..}, 'segm': ..} or {'single_scale': {'mIoU': ..}, 'ms_flip': {'mIoU': ..}}
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _coco(
    detector: str,
    backbone: str,
    method: str,
    box: tuple[float, float, float],
    mask: tuple[float, float, float] | None = None,
) -> PaperRow:
    metrics = {"bbox": dict(zip(("AP", "AP50", "AP75"), box))}
    if mask is not None:
        metrics["segm"] = dict(zip(("AP", "AP50", "AP75"), mask))
    return PaperRow(
        "EfficientTrain++ (arXiv 2405.08768) Table 17",
        detector,
        "1x",
        backbone,
        method,
        1.0 if method == BASELINE else 1.5,
        metrics,
    )


RETINANET, CASCADE = "retinanet", "cascade_mask_rcnn"
COCO_ROWS: tuple[PaperRow, ...] = (
    _coco(RETINANET, "Swin-T", "baseline", (41.7, 62.9, 44.5)),
    _coco(RETINANET, "Swin-T", "efficienttrain", (41.8, 63.3, 44.6)),
    _coco(CASCADE, "Swin-T", "baseline", (48.1, 67.0, 52.1), (41.5, 64.2, 44.9)),
    _coco(CASCADE, "Swin-T", "efficienttrain", (48.2, 67.5, 52.3), (41.8, 64.6, 45.0)),
    _coco(CASCADE, "Swin-T", "efficienttrain++", (48.4, 67.6, 52.6), (41.9, 64.8, 45.2)),
    _coco(CASCADE, "Swin-S", "baseline", (50.0, 69.1, 54.4), (43.1, 66.3, 46.3)),
    _coco(CASCADE, "Swin-S", "efficienttrain++", (50.7, 69.9, 55.0), (43.7, 67.1, 47.3)),
    _coco(CASCADE, "Swin-B", "baseline", (50.9, 70.2, 55.5), (44.0, 67.4, 47.4)),
    _coco(CASCADE, "Swin-B", "efficienttrain++", (51.3, 70.5, 55.9), (44.3, 67.6, 48.0)),
)


def _ade(schedule: str, backbone: str, method: str, speedup: float, miou: float, miou_ms_flip: float) -> PaperRow:
    return PaperRow(
        "EfficientTrain++ (arXiv 2405.08768) Table 18",
        UPERNET,
        schedule,
        backbone,
        method,
        speedup,
        {"single_scale": {"mIoU": miou}, "ms_flip": {"mIoU": miou_ms_flip}},
    )


UPERNET, ETPP = "upernet", "efficienttrain++"
ADE20K_ROWS: tuple[PaperRow, ...] = (
    _ade("80k", "DeiT-S", BASELINE, 1.0, 43.0, 43.8),
    _ade("80k", "DeiT-S", ETPP, 1.6, 43.8, 44.9),
    _ade("80k", "Swin-T", BASELINE, 1.0, 43.3, 44.5),
    _ade("80k", "Swin-T", ETPP, 1.5, 44.1, 44.9),
    _ade("80k", "Swin-S", BASELINE, 1.0, 47.5, 48.9),
    _ade("80k", "Swin-S", ETPP, 1.5, 47.8, 49.2),
    _ade("160k", "DeiT-S", BASELINE, 1.0, 43.1, 44.0),
    _ade("160k", "DeiT-S", ETPP, 1.6, 44.2, 45.2),
    _ade("160k", "Swin-T", BASELINE, 1.0, 44.4, 45.8),
    _ade("160k", "Swin-T", ETPP, 1.5, 44.8, 46.1),
    _ade("160k", "Swin-S", BASELINE, 1.0, 47.7, 49.2),
    _ade("160k", "Swin-S", ETPP, 1.5, 48.2, 49.7),
    _ade("160k", "Swin-B", BASELINE, 1.0, 48.0, 49.6),
    _ade("160k", "Swin-B", ETPP, 1.5, 48.5, 50.0),
)
PAPER_ROWS: tuple[PaperRow, ...] = COCO_ROWS + ADE20K_ROWS


def backbone_family_size(backbone: str) -> str | None:
    """'swin_tiny_patch4_window7_224' -> 'Swin-T' (family + size, `etcore.families`), None when it names none."""
    return paper_label(backbone)


def paper_rows_for(detector: str, backbone: str, schedule: str, method: str | None = None) -> list[PaperRow]:
    """The published rows of a run group (and of one method, when given), in table order."""
    label = backbone_family_size(backbone) or backbone
    return [
        row
        for row in PAPER_ROWS
        if (row.detector, row.backbone, row.schedule) == (detector, label, schedule)
        and (method is None or row.method == method)
    ]
