"""The numbers behind "within noise": intervals over seeds, one evaluation's sampling error (binomial, bootstrap
over test images), the compact demo table and the frontier's matched-compute differences, on hand-computed
cases (reporting/noise.py, reporting/summary.py, reporting/frontier.py, the bootstraps of tools/test.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from det_fixtures import write_coco_instances
from finetune.det_metrics import bootstrap_stats, coco_stats, load_truth
from finetune.seg_metrics import bootstrap_seg, confusion_scores
from reporting import noise
from reporting.frontier import frontier_points, matched_compute, write_frontier
from reporting.runs import Run
from reporting.summary import compact_table

T_975_2 = 4.302652729911275  # Student-t, 2 degrees of freedom, two-sided 95%


def test_seed_interval_and_paired_difference_match_a_hand_computation() -> None:
    estimate = noise.mean_interval([1.0, 2.0, 3.0])
    half = T_975_2 * 1.0 / math.sqrt(3)  # sample std of 1, 2, 3 is 1
    assert (estimate.value, estimate.low, estimate.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    delta = noise.seed_difference([51.0, 42.0, 48.0], [50.0, 40.0, 45.0])  # per seed: 1, 2, 3
    assert (delta.value, delta.low, delta.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert noise.reading(delta, "efficienttrain", "baseline") == "within noise"  # -0.48 .. 4.48 holds 0
    clear = noise.seed_difference([55.0, 46.0, 52.0], [50.0, 40.0, 45.0])  # 5, 6, 7
    assert noise.reading(clear, "efficienttrain", "baseline") == (
        f"efficienttrain better by 6.0 [{6 - half:.1f}, {6 + half:.1f}]"
    )
    worse = noise.seed_difference([45.0, 34.0, 38.0], [50.0, 40.0, 45.0])  # -5, -6, -7
    assert noise.reading(worse, "efficienttrain", "baseline").startswith("baseline better by 6.0 [")
    assert noise.mean_interval([4.0]).basis == "none"


def test_one_evaluation_sampling_errors() -> None:
    # top-1 65% on 1200 images: sqrt(0.65 * 0.35 / 1200) = 1.377 points (the demo's validation set)
    assert noise.binomial_se(65.0, 1200) == pytest.approx(100 * math.sqrt(0.65 * 0.35 / 1200))
    assert noise.binomial_se(65.0, 1200) < 1.5 < noise.binomial_se(65.0, 200)
    independent = noise.sampling_difference(60.0, 65.0, 1.0, 1.0)
    assert independent.high - independent.value == pytest.approx(1.959964 * math.sqrt(2), rel=1e-6)
    paired = noise.sampling_difference(60.0, 65.0, 1.0, 1.0, paired_se=0.5)
    assert paired.high - paired.value == pytest.approx(1.959964 * 0.5, rel=1e-6)
    assert noise.reading(paired, "efficienttrain", "baseline").startswith("baseline better by 5.0")


def _duplicated(truth, results, picks):
    """The drawn images as a COCO set of their own (a copy per draw, fresh ids): the slow, plain way."""
    from pycocotools.coco import COCO

    ids = sorted(truth.getImgIds())
    images, annotations, found = [], [], []
    for new_id, index in enumerate(picks, start=1):
        old = ids[index]
        images.append({**truth.imgs[old], "id": new_id})
        annotations += [
            {**a, "image_id": new_id, "id": len(annotations) + k + 1} for k, a in enumerate(truth.imgToAnns[old])
        ]
        found += [{**r, "image_id": new_id} for r in results if r["image_id"] == old]
    gt = COCO()
    gt.dataset = {**truth.dataset, "images": images, "annotations": annotations}
    gt.createIndex()
    return gt, found


def test_the_ap_bootstrap_equals_pycocotools_on_the_drawn_images(tmp_path: Path) -> None:
    """Each draw re-accumulates one evaluate()'s per-image matches; the same draw evaluated from scratch on a
    COCO set made of the drawn images (duplicates as copies) must give the same six numbers."""
    coco = write_coco_instances(tmp_path / "coco")
    truth = load_truth(coco / "annotations" / "instances_val.json")
    rng = np.random.default_rng(3)
    results = [  # jittered boxes, some wrong classes, varied scores: a detector of middling quality
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"] if rng.random() > 0.3 else 1 + (a["category_id"] % 3),
            "bbox": [v + float(rng.normal(0, 2)) for v in a["bbox"]],
            "score": float(rng.random()),
        }
        for a in truth.dataset["annotations"]
    ]
    boot = bootstrap_stats(truth, results, "bbox", draws=4, seed=7)
    assert boot["draws"] == 4 and boot["images"] == len(truth.getImgIds())
    count = len(truth.getImgIds())
    draws = np.random.default_rng(7)
    for index in range(4):
        picks = draws.integers(0, count, count)
        gt, found = _duplicated(truth, results, picks)
        expected = coco_stats(gt, found, "bbox")
        got = [boot[name][index] for name in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
        assert got == pytest.approx([round(v, 4) for v in expected], abs=1e-4), index
    again = bootstrap_stats(truth, results[::-1], "bbox", draws=4, seed=7)
    assert again["images_sha256"] == boot["images_sha256"] and again["AP"] == boot["AP"]  # pairs draw by draw


def test_the_miou_bootstrap_sums_the_drawn_images_confusions() -> None:
    a = np.array([[3, 1], [0, 4]])
    b = np.array([[2, 0], [2, 2]])
    confusions = np.stack([a, b])
    boot = bootstrap_seg(confusions, draws=5, seed=1)
    picks = np.random.default_rng(1)
    for index in range(5):
        total = confusions[picks.integers(0, 2, 2)].sum(0)
        assert boot["mIoU"][index] == pytest.approx(round(confusion_scores(total)["mIoU"], 6))
    # both images once: IoU (5/8, 6/9) -> mIoU 0.6458
    assert confusion_scores(a + b)["mIoU"] == pytest.approx((5 / 8 + 6 / 9) / 2)


def _run(curriculum: str, epochs: int, seed: int, top1: float, ap50: float, miou: float, draws=None) -> list[Run]:
    pretrain = {
        "epochs": epochs,
        "equivalent_epochs": epochs * (0.68 if curriculum != "baseline" else 1.0),
        "train_time_s": 10.0 * epochs * (0.8 if curriculum != "baseline" else 1.0),
        "top1": top1,
        "val_images": 1200,
        "seed": seed,
    }
    det = Run(
        Path(f"d{curriculum}{epochs}{seed}"),
        "retinanet",
        "resnet18",
        "tiny",
        seed,
        {"bbox": {"AP": ap50 / 2, "AP50": ap50}},
        None,
        curriculum,
        dict(pretrain),
    )
    seg = Run(
        Path(f"s{curriculum}{epochs}{seed}"),
        "upernet",
        "resnet18",
        "tiny",
        seed,
        {"single_scale": {"mIoU": miou}},
        None,
        curriculum,
        dict(pretrain),
        task="segmentation",
    )
    if draws is not None:
        det.bootstrap = {"bbox": {"key": (0, len(draws), "same"), "AP50": [ap50 + d for d in draws]}}
    return [det, seg]


def test_the_compact_table_reads_one_seed_by_its_sampling_error() -> None:
    shared = [0.0, 2.0, -2.0, 1.0, -1.0]  # both runs tested on the same images: the shared part cancels
    runs = _run("baseline", 12, 0, 67.5, 47.0, 26.4, draws=shared) + _run(
        "efficienttrain", 12, 0, 60.5, 53.2, 24.6, draws=shared
    )
    table = compact_table(runs)
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    # top-1: binomial errors 1.35 and 1.41 on 1200 images, independent: -7.0 +- 1.96 * 1.95
    assert "baseline 12 ep better by 7.0 [3.2, 10.8]" in lines["pretraining: top-1 (%)"]
    # AP50: the paired draws differ by a constant, so the difference has no sampling error left
    assert "efficienttrain 12 ep better by 6.2 [6.2, 6.2]" in lines["RetinaNet: box AP50"]
    assert "no interval" in lines["UperNet: mIoU (%)"]  # no bootstrap kept
    assert "120 s" in lines["cost: pretraining time"] and "(0.80x)" in lines["cost: pretraining time"]
    assert "one evaluation's own sampling error" in table


def _frontier_runs() -> list[Run]:
    runs = []
    for seed, shift in enumerate((0.0, 1.0, 2.0)):
        for epochs, top1 in ((4, 50.0), (8, 60.0)):
            runs += _run("baseline", epochs, seed, top1 + shift, 40.0 + shift, 20.0)
        for epochs, top1 in ((6, 49.0), (12, 62.0)):  # equivalent 4.08 and 8.16: next to baseline 4 and 8
            runs += _run("efficienttrain", epochs, seed, top1 + shift + seed, 41.0 + shift, 20.0)
    return runs


def test_the_frontier_pairs_each_point_with_the_baseline_at_matched_compute(tmp_path: Path) -> None:
    points = frontier_points(_frontier_runs())
    assert set(points) == {"top-1 (%)", "RetinaNet box AP", "RetinaNet box AP50", "UperNet mIoU (%)"}
    baseline = points["top-1 (%)"]["baseline"]
    assert [p.epochs for p in baseline] == [4, 8] and baseline[0].estimate().n == 3
    rows = {(r["metric"], r["candidate"].epochs): r for r in matched_compute(points)}
    low = rows[("top-1 (%)", 6.0)]
    assert low["baseline"].epochs == 4 and low["seeds"] == [0, 1, 2]
    delta = low["difference"]  # per seed: 49 + 2s - (50 + s) = -1, 0, 1
    assert (delta.value, delta.high) == pytest.approx((0.0, T_975_2 / math.sqrt(3)))
    assert low["reading"] == "within noise"
    assert rows[("top-1 (%)", 12.0)]["reading"].startswith("efficienttrain better by 3.0 [")
    text = write_frontier(_frontier_runs(), tmp_path / "f")
    assert (tmp_path / "f" / "frontier_equivalent_epochs.png").is_file()
    assert (tmp_path / "f" / "frontier_train_time_s.png").is_file()
    row = "| top-1 (%) | efficienttrain 6 ep (4.1) | baseline 4 ep (4.0) | 1.02x | +0.0 [-2.5, +2.5] (n=3) |"
    assert row + " within noise |" in text
    assert "| top-1 (%) | efficienttrain 6 ep (48 s) | baseline 4 ep (40 s) | 1.20x | +0.0 [-2.5, +2.5] (n=3) |" in text
    json.dumps(text)


def test_matched_time_pairs_by_measured_seconds_where_compute_would_pair_otherwise() -> None:
    points = frontier_points(_frontier_runs())
    slow = next(p for p in points["top-1 (%)"]["efficienttrain"] if p.epochs == 12)
    slow.time_s = {seed: 42.0 for seed in slow.time_s}  # 8.16 equivalent epochs, but 42 s: next to baseline 4's 40 s
    by_compute = {r["candidate"].epochs: r for r in matched_compute(points) if r["metric"] == "top-1 (%)"}
    by_time = {r["candidate"].epochs: r for r in matched_compute(points, "train_time_s") if r["metric"] == "top-1 (%)"}
    assert by_compute[12.0]["baseline"].epochs == 8 and by_time[12.0]["baseline"].epochs == 4
    assert by_time[6.0]["baseline"].epochs == 4  # 48 s: nearer 40 s than 80 s
    # per seed: 62 + 2s - (50 + s) = 12, 13, 14
    assert by_time[12.0]["difference"].value == pytest.approx(13.0)
    assert by_time[12.0]["reading"].startswith("efficienttrain better by 13.0 [")
