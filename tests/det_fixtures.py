"""Tiny COCO-format instance-segmentation data for the detection tests, generated in a temp folder.

Same layout as the demo set the tiny configs read (`<root>/annotations/instances_{train,val}.json`,
images in `<root>/train/` and `<root>/val/`): a few small images, each holding 1-3 flat-coloured
polygons (one colour per class) with their boxes, polygon masks and mask areas, so the numbers
pycocotools computes from them are well defined (small/medium/large split included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

DEFAULT_CLASSES = ("red_square", "green_triangle", "blue_diamond")
# make_demo_data sizes small enough for a test (the conftest `demo_data` fixture uses them)
TINY_DEMO_DATA = dict(train_per_class=16, val_per_class=8, coco_train=6, coco_val=3)


def _class_colour(index: int) -> tuple[int, int, int]:
    hues = np.linspace(0, 179, num=12, endpoint=False)
    hsv = np.uint8([[[hues[(index * 5) % 12], 230, 230]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _polygon(rng: np.random.Generator, kind: int, width: int, height: int, scale: tuple[float, float]) -> np.ndarray:
    """A square, triangle or diamond (by `kind`), half-size `scale` x the short side, as (N, 2) x, y."""
    half = rng.uniform(*scale) * min(width, height)
    cx = rng.uniform(half, width - half)
    cy = rng.uniform(half, height - half)
    unit = [
        np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float),
        np.array([[0, -1], [1, 1], [-1, 1]], float),
        np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], float),
    ][kind % 3]
    return unit * half + np.array([cx, cy])


def _write_split(
    root: Path,
    split: str,
    classes: Sequence[str],
    count: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    first_ann_id: int,
    scale: tuple[float, float],
) -> int:
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = first_ann_id
    for image_id in range(1, count + 1):
        width, height = int(rng.integers(size[0], size[1] + 1)), int(rng.integers(size[0], size[1] + 1))
        canvas = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            label = int(rng.integers(len(classes)))
            polygon = _polygon(rng, label, width, height, scale)
            cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], _class_colour(label))
            flat = [float(v) for v in polygon.reshape(-1)]
            rle = mask_utils.frPyObjects([flat], height, width)
            x0, y0 = polygon.min(axis=0)
            x1, y1 = polygon.max(axis=0)
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=label + 1,
                    iscrowd=0,
                    segmentation=[flat],
                    area=float(mask_utils.area(mask_utils.merge(rle))),
                    bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                )
            )
            ann_id += 1
        name = f"{split}_{image_id:04d}.png"
        cv2.imwrite(str(root / split / name), canvas)
        images.append(dict(id=image_id, file_name=name, width=width, height=height))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(classes)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with open(root / "annotations" / f"instances_{split}.json", "w", encoding="utf-8") as handle:
        # pycocotools' loadRes copies 'info' from the ground truth, so a COCO file needs one
        json.dump(
            dict(
                info=dict(description=f"tiny test set ({split})"),
                licenses=[],
                images=images,
                annotations=annotations,
                categories=categories,
            ),
            handle,
        )
    return ann_id


def write_coco_instances(
    root: Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    train_images: int = 8,
    val_images: int = 4,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    object_scale: tuple[float, float] = (0.2, 0.45),
) -> Path:
    """Write a train and a val split under `root` (images `size[0]..size[1]` px a side); return `root`.

    `object_scale` bounds an object's half-size as a fraction of the image's short side: large objects
    (e.g. 0.35-0.48) let even a barely trained detector score above zero.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    next_id = _write_split(root, "train", classes, train_images, size, rng, 1, object_scale)
    _write_split(root, "val", classes, val_images, size, rng, next_id, object_scale)
    (root / "classes.json").write_text(json.dumps(list(classes)), encoding="utf-8")
    return root


# ------------------------------------------------------------------ damaged image files (unreadable-image tests)

DAMAGES = ("truncated", "empty", "not_an_image")


def damage_image(path: Path, how: str) -> bytes:
    """Damage the image at `path` as a broken copy does; return its original bytes (to put it back).

    `truncated` keeps the first third (the header stays intact, so size checks still pass), `empty` leaves
    0 bytes, `not_an_image` an HTML error page saved under the image's name.
    """
    original = path.read_bytes()
    damaged = {
        "truncated": original[: len(original) // 3],
        "empty": b"",
        "not_an_image": b"<html><body><h1>404 Not Found</h1></body></html>\n",
    }[how]
    path.write_bytes(damaged)
    return original


def as_jpeg(path: Path) -> Path:
    """Re-encode the image at `path` as `<stem>.jpg` beside it (baseline JPEG, quality 90), remove the original."""
    target = path.with_suffix(".jpg")
    cv2.imwrite(str(target), cv2.imread(str(path), cv2.IMREAD_UNCHANGED), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if target != path:
        path.unlink()
    return target


def coco_image_as_jpeg(root: Path, split: str, name: str) -> Path:
    """Turn image `name` of a `write_coco_instances` split into a JPEG, renamed in the annotation file too."""
    target = as_jpeg(root / split / name)
    ann_file = root / "annotations" / f"instances_{split}.json"
    data = json.loads(ann_file.read_text(encoding="utf-8"))
    for image in data["images"]:
        if image["file_name"] == name:
            image["file_name"] = target.name
    ann_file.write_text(json.dumps(data), encoding="utf-8")
    return target
