"""finetune.coco_validation in process: the problems mmdet would hide or crash on, and what it tolerates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from det_fixtures import DEFAULT_CLASSES, write_coco_instances
from etcore.errors import UserInputError
from finetune import coco_validation
from finetune.coco_validation import validate_coco_file


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_coco_instances(tmp_path_factory.mktemp("coco"), train_images=6, val_images=2)


def _edited(coco: Path, tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    data = json.loads((coco / "annotations" / "instances_train.json").read_text())
    edit(data)
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    return path


def test_the_generated_set_is_valid(coco: Path) -> None:
    summary = validate_coco_file(
        coco / "annotations" / "instances_val.json", coco / "val", classes=DEFAULT_CLASSES, evaluated=True
    )
    assert summary.images == 2 and summary.categories == 3 and summary.annotations > 0 and not summary.notes


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["annotations"].append(dict(d["annotations"][0])), "repeats annotations id"),
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] has no bbox"),
        (lambda d: d["annotations"][0].update(image_id=999), 'refers to an image id that is not in "images"'),
        (lambda d: d["annotations"][0].update(bbox=[50, 50, 10, -4]), "negative width or height"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 3]), "not a finite number"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"is not \[x, y, width, height\]"),
        (lambda d: d.pop("categories"), "has no categories list"),
        (lambda d: d.__setitem__("categories", d["categories"][1:]), "has category id 1, which is not in"),
    ],
    ids=[
        "duplicate id",
        "no bbox",
        "unknown image",
        "negative box",
        "nan box",
        "short box",
        "no categories",
        "unknown category",
    ],
)
def test_problems_are_named(coco: Path, tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        validate_coco_file(_edited(coco, tmp_path, edit))


def test_config_classes_must_be_categories(coco: Path) -> None:
    with pytest.raises(UserInputError, match="has no category named red_sqare"):
        validate_coco_file(coco / "annotations" / "instances_train.json", classes=("red_sqare", "green_triangle"))


def test_evaluation_files_need_info(coco: Path, tmp_path: Path) -> None:
    path = _edited(coco, tmp_path, lambda d: d.pop("info"))
    validate_coco_file(path)  # fine for training
    with pytest.raises(UserInputError, match='has no "info" entry'):
        validate_coco_file(path, evaluated=True)


def test_a_tiny_share_of_zero_area_boxes_is_a_note(coco: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Official COCO train2017 holds 2 zero-area boxes in 860,001 annotations; mmdet skips them."""
    path = _edited(coco, tmp_path, lambda d: d["annotations"][0].update(bbox=[5.0, 5.0, 3.0, 0.0]))
    with pytest.raises(UserInputError, match="1 of .* boxes have zero area"):
        validate_coco_file(path)
    monkeypatch.setattr(coco_validation, "ZERO_AREA_TOLERANCE", 0.5)
    assert "zero-area" in validate_coco_file(path).notes[0]
