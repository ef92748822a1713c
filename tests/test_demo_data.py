"""tools/make_demo_data.py: COCO validity (pycocotools, mmdet), determinism, caching, and the class design."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import embedded_demo.data as demo
from det_fixtures import TINY_DEMO_DATA as TINY  # the sizes of the shared demo_data fixture
from etcore.errors import UserInputError


@pytest.fixture(scope="module")
def dataset(demo_data: Path) -> Path:
    return demo_data


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_every_class_needs_both_shape_and_texture():
    for count in (10, 13, 25):
        pairs = demo.class_pairs(count)
        assert len(set(pairs)) == count
        shapes, textures = Counter(s for s, _ in pairs), Counter(t for _, t in pairs)
        assert set(shapes) == set(demo.SHAPES) and min(shapes.values()) >= 2
        assert set(textures) == set(demo.TEXTURES) and min(textures.values()) >= 2
    with pytest.raises(UserInputError, match="--classes 9"):
        demo.class_pairs(9)


def test_a_horizontal_flip_turns_diagonal_stripes_into_anti_diagonal_ones():
    """Why the demo never flips: triangle_dstripes flipped is a triangle_astripes (pipeline._DEMO_RECIPE)."""
    height, width, period, phase = 40, 56, 2.5, (0.3, 0.0)
    flipped = np.fliplr(demo.texture_field("dstripes", height, width, period, phase))
    k = 2 * np.pi / period / np.sqrt(2)
    mirrored_phase = np.pi - (k * (width - 1) + phase[0])  # sin(k(W-1-x+y) + p) = sin(k(x-y) + pi - k(W-1) - p)
    assert np.allclose(flipped, demo.texture_field("astripes", height, width, period, (mirrored_phase, 0.0)), atol=1e-3)
    assert ("triangle", "dstripes") in demo.class_pairs(10) and ("triangle", "astripes") in demo.class_pairs(10)
    for texture in ("hstripes", "vstripes", "checker"):  # the other textures stay their own class
        assert not np.allclose(flipped, demo.texture_field(texture, height, width, period, phase), atol=0.1)


def test_layout_and_class_files(dataset):
    names = demo.class_names(10)
    assert json.loads((dataset / "coco" / "classes.json").read_text()) == names
    for split, per_class in (("train", 16), ("val", 8)):
        folders = sorted(p.name for p in (dataset / "imagenet" / split).iterdir())
        assert folders == sorted(names)
        files = list((dataset / "imagenet" / split / names[0]).glob("*.png"))
        assert len(files) == per_class
        assert cv2.imread(str(files[0])).shape == (64, 64, 3)


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_annotations_are_valid_and_self_evaluate_to_ap_1(dataset, split):
    path = dataset / "coco" / "annotations" / f"instances_{split}.json"
    coco = _quiet_coco(path)
    document = json.loads(path.read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(document)
    assert [c["id"] for c in document["categories"]] == list(range(1, 11))
    assert len(document["images"]) == TINY[f"coco_{split}"]
    for image in document["images"]:
        file = dataset / "coco" / split / image["file_name"]
        assert cv2.imread(str(file)).shape[:2] == (image["height"], image["width"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert 1 <= len(anns) <= 6
        union = np.zeros((image["height"], image["width"]), np.int32)
        for ann in anns:
            assert ann["iscrowd"] == 0 and ann["area"] > 0
            assert all(len(poly) >= 6 and len(poly) % 2 == 0 for poly in ann["segmentation"])
            mask = coco.annToMask(ann)
            assert mask.sum() == ann["area"]
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            union += mask
        assert union.max() == 1, "visible masks of one image overlap: occlusion is not reflected"
    for iou_type in ("bbox", "segm"):
        detections = coco.loadRes([dict(ann, score=1.0) for ann in document["annotations"]])
        evaluator = COCOeval(coco, detections, iou_type)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
        assert evaluator.stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize("split, ade_split", [("train", "training"), ("val", "validation")])
def test_ade_label_maps_are_the_coco_masks_of_the_same_scenes(dataset, split, ade_split):
    """ADE20K layout; each label map is class id + 1 on the instances' visible pixels, 0 (ignore) elsewhere."""
    coco = _quiet_coco(dataset / "coco" / "annotations" / f"instances_{split}.json")
    ade = dataset / "ade"
    assert json.loads((ade / "classes.json").read_text()) == demo.class_names(10)
    images = sorted(p.name for p in (ade / "images" / ade_split).iterdir())
    assert images == sorted(p.name for p in (ade / "annotations" / ade_split).iterdir())
    assert len(images) == TINY[f"coco_{split}"]
    for image in coco.dataset["images"]:
        picture = (ade / "images" / ade_split / image["file_name"]).read_bytes()
        assert picture == (dataset / "coco" / split / image["file_name"]).read_bytes()
        labels = cv2.imread(str(ade / "annotations" / ade_split / image["file_name"]), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint8 and labels.shape == (image["height"], image["width"])
        expected = np.zeros_like(labels)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            expected[coco.annToMask(ann).astype(bool)] = ann["category_id"]
        assert np.array_equal(labels, expected)
        assert 0 < (labels > 0).mean() < 1


def test_mmseg_reads_the_ade_layout(dataset):
    from mmseg.datasets import BaseSegDataset
    from mmseg.utils import register_all_modules

    register_all_modules()
    classes = tuple(demo.class_names(10))
    loaded = BaseSegDataset(
        data_root=str(dataset / "ade"),
        data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
        img_suffix=".png",
        seg_map_suffix=".png",
        reduce_zero_label=True,
        metainfo=dict(classes=classes),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")],
    )
    assert len(loaded) == TINY["coco_val"] and loaded.metainfo["classes"] == classes
    labels = loaded[0]["data_samples"].gt_sem_seg.data
    assert set(labels.unique().tolist()) <= set(range(10)) | {255} and (labels == 255).any()


def test_polygons_keep_holes_exactly():
    mask = np.zeros((40, 50), bool)
    mask[5:35, 5:45] = True
    mask[12:20, 12:20] = False  # a hole (an occluder lying on top)
    mask[25:30, 30:33] = False  # a second hole
    mask[0, 49] = True  # a one-pixel fragment
    polygons = demo.mask_to_polygons(mask)
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, 40, 50))).astype(bool)
    assert np.array_equal(decoded, mask)


def test_annotation_is_the_visible_part_of_each_object():
    params = demo.DemoParams(min_objects=5, max_objects=6)
    pairs = demo.class_pairs(10)
    partly_hidden = 0
    for index in range(6):
        _image, objects = demo.render_scene(np.random.default_rng(index), pairs, params)
        assert len(objects) >= params.min_objects
        for position, obj in enumerate(objects):
            above = np.zeros_like(obj.mask)
            for later in objects[position + 1 :]:
                above |= later.mask
            assert np.array_equal(obj.visible, obj.mask & ~above)
            assert obj.visible.sum() >= max(params.min_visible_area, params.min_visible_fraction * obj.mask.sum())
            partly_hidden += int(obj.visible.sum() < obj.mask.sum())
    assert partly_hidden > 0


def test_mmdet_coco_dataset_loads_without_warnings(dataset):
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules

    register_all_modules()
    classes = tuple(json.loads((dataset / "coco" / "classes.json").read_text()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = CocoDataset(
            data_root=str(dataset / "coco"),
            ann_file="annotations/instances_train.json",
            data_prefix=dict(img="train/"),
            metainfo=dict(classes=classes),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
                dict(type="PackDetInputs"),
            ],
        )
        sample = loaded[0]
    assert [str(w.message) for w in caught] == []
    assert len(loaded) == TINY["coco_train"]
    assert loaded.metainfo["classes"] == classes
    instances = sample["data_samples"].gt_instances
    assert len(instances) >= 1 and instances.masks.masks.shape[0] == len(instances)


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    again = demo.make_demo_data(tmp_path / "again", seed=0, verbose=False, **TINY)
    first = json.loads((dataset / demo.STAMP_NAME).read_text())
    assert again["content_sha256"] == first["content_sha256"] == demo.content_hash(dataset)
    other = demo.make_demo_data(tmp_path / "other", seed=1, verbose=False, **TINY)
    assert other["content_sha256"] != first["content_sha256"]


def test_skips_when_complete_and_regenerates_when_stale(tmp_path, capsys):
    out = tmp_path / "demo"
    sizes = dict(train_per_class=2, val_per_class=1, coco_train=2, coco_val=1)
    demo.make_demo_data(out, **sizes)
    probe = out / "coco" / "annotations" / "instances_val.json"
    mtime = probe.stat().st_mtime_ns
    demo.make_demo_data(out, **sizes)
    assert "up to date" in capsys.readouterr().out
    assert probe.stat().st_mtime_ns == mtime
    demo.make_demo_data(out, **dict(sizes, coco_val=2))  # parameters changed
    assert len(json.loads(probe.read_text())["images"]) == 2
    probe.write_text("{}")  # content damaged
    demo.make_demo_data(out, **dict(sizes, coco_val=2))
    assert len(json.loads(probe.read_text())["images"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp folders left
    (tmp_path / "plain").mkdir()
    assert out.stat().st_mode == (tmp_path / "plain").stat().st_mode  # not mkdtemp's private 0700


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "coco_split", broken)
    with pytest.raises(RuntimeError):
        demo.make_demo_data(tmp_path / "demo", train_per_class=1, val_per_class=1, coco_train=1, coco_val=1)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserInputError, match="did not make"):
        demo.make_demo_data(tmp_path / "mine", train_per_class=1, val_per_class=1, coco_train=1, coco_val=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.subprocess
def test_cli_bad_parameter_is_one_line_exit_2(tmp_path):
    root = Path(__file__).resolve().parents[1]
    tool = root / "tools" / "make_demo_data.py"
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, str(tool), "--out", str(tmp_path / "d"), "--classes", "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--classes 3" in result.stderr
    assert not (tmp_path / "d").exists()


def _spectrum_features(images: np.ndarray, max_frequency: float) -> np.ndarray:
    """Log magnitude spectrum (translation invariant) of grey images, frequencies below max_frequency only."""
    grey = images - images.mean(axis=(1, 2), keepdims=True)
    freq = np.fft.fftfreq(images.shape[1])
    band = np.hypot(freq[:, None], freq[None, :]) < max_frequency
    return np.log1p(np.abs(np.fft.fft2(grey))[:, band])


def _nearest_mean_accuracy(root: Path, class_a: str, class_b: str, max_frequency: float) -> float:
    """Train a nearest-class-mean classifier on the train split of two classes, score it on val."""

    def load(split: str, name: str) -> np.ndarray:
        files = sorted((root / split / name).glob("*.png"))
        return np.stack([cv2.imread(str(f)).astype(np.float32).mean(-1) / 255 for f in files])

    means = [_spectrum_features(load("train", c), max_frequency).mean(0) for c in (class_a, class_b)]
    correct = []
    for label, name in enumerate((class_a, class_b)):
        features = _spectrum_features(load("val", name), max_frequency)
        distances = np.stack([((features - m) ** 2).sum(1) for m in means], axis=1)
        correct.extend(distances.argmin(1) == label)
    return float(np.mean(correct))


def test_texture_lives_in_high_frequencies(dataset):
    """Classes sharing a shape are separable from the full image, near chance after a low-pass filter."""
    pairs = demo.class_pairs(10)
    same_shape = [(f"{s}_{t}", f"{s2}_{t2}") for i, (s, t) in enumerate(pairs) for s2, t2 in pairs[i + 1 :] if s2 == s]
    assert len(same_shape) == 5
    root = dataset / "imagenet"
    full = [_nearest_mean_accuracy(root, a, b, max_frequency=1.0) for a, b in same_shape]
    # 0.25 cycles/px is what EfficientTrain's first stages keep of a 64 px image (cropped to 32 px)
    low = [_nearest_mean_accuracy(root, a, b, max_frequency=0.25) for a, b in same_shape]
    assert np.mean(full) >= 0.9
    assert np.mean(low) <= 0.7
