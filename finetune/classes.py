"""Class names for one's own COCO-format data: `--classes-from-annotations` of tools/train.py and tools/test.py.

A config names the classes it trains (`metainfo.classes`, or mmdet's COCO 80 when it names none) and the
head's `num_classes` matches them. For a COCO-format file with other categories the switch takes the
classes from the annotation file instead:

* the names of its `categories`, in the file's order (the order mmdet gives labels in), become
  `metainfo.classes` of every dataset of the run (train, val, test), so the evaluators follow too;
* every `num_classes` of the detector's heads (`model.bbox_head`, `model.roi_head.bbox_head[i]`,
  `model.roi_head.mask_head`, ...) is set to their number; the RPN head (class-agnostic), the backbone
  and the neck are left alone.

The source file is the first dataset's of `train_dataloader` (tools/train.py) or `test_dataloader`
(tools/test.py); the annotation checks (`finetune.coco_validation`) then hold every other file of the run
to these classes. tools/test.py also checks the classes against those the checkpoint was trained on
(`check_trained_classes`): the same names in the same order, or one `error:` line.
"""

from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import Config

from etcore.errors import UserInputError
from finetune.coco_validation import category_names, first_few
from finetune.config import check_data, class_heads, dataset_classes, datasets_of
from finetune.segmentation import config_scope

FLAG = "--classes-from-annotations"
HELP = (
    "train/test on the categories of the COCO annotation file (one's own COCO-format data): its category "
    "names become the datasets' metainfo.classes and the heads' num_classes their number"
)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """Add the switch to a tool's parser (the same flag and help in tools/train.py and tools/test.py)."""
    parser.add_argument(FLAG, action="store_true", help=HELP)


def _source_file(cfg: Config, loader_key: str) -> str:
    for dataset in datasets_of(cfg.get(loader_key) or {}):
        ann_file = dataset.get("ann_file")
        if isinstance(ann_file, str) and ann_file.endswith(".json"):
            return osp.join(dataset.get("data_root") or "", ann_file)
    raise UserInputError(
        f"{FLAG}: the config's {loader_key} has no COCO .json annotation file to take the classes from: "
        "drop the flag or point the dataset's ann_file at one"
    )


def use_annotation_classes(cfg: Config, loader_key: str, config: str = "the config") -> list[str]:
    """Set every dataset's classes and every head's num_classes from `loader_key`'s annotation file."""
    if config_scope(cfg, config) != "mmdet":
        raise UserInputError(
            f"{FLAG} reads COCO-format annotation files; {config} is not a detection (mmdet) config: drop the flag "
            "and set the classes in the config"
        )
    check_data(cfg, [loader_key])
    path = _source_file(cfg, loader_key)
    names = category_names(path)
    heads = class_heads(cfg)
    if not heads:
        raise UserInputError(
            f"{FLAG}: the config's model has no head with num_classes to set to the {len(names)} classes of "
            f"{path}: set them in the config instead"
        )
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for dataset in datasets_of(cfg.get(key) or {}):
            dataset["metainfo"] = {**(dataset.get("metainfo") or {}), "classes": tuple(names)}
    for _, head in heads:
        head["num_classes"] = len(names)
    print(
        f"note: {FLAG}: {len(names)} classes from {path} ({first_few(names)}); "
        f"num_classes={len(names)} in {', '.join(p for p, _ in heads)}",
        flush=True,
    )
    return names


def check_trained_classes(checkpoint: dict, cfg: Config, checkpoint_path: str) -> None:
    """The test set's classes must be those the checkpoint was trained on (names and order), when it says."""
    trained = ((checkpoint.get("meta") or {}).get("dataset_meta") or {}).get("classes")
    dataset = next(iter(datasets_of(cfg.get("test_dataloader") or {})), None)
    testing = dataset_classes(dataset) if dataset is not None else None
    if not trained or not testing or [str(c) for c in trained] == list(testing):
        return
    raise UserInputError(
        f"checkpoint {checkpoint_path} was trained on {len(trained)} classes ({first_few(trained)}) but the test "
        f"set's are {len(testing)} ({first_few(testing)}), in this order: test with the classes it was trained on "
        "(the same config and flags as tools/train.py)"
    )
