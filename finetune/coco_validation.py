"""Check a COCO instances annotation file before a detection run starts, and name what is wrong.

Why: mmdet 3.3's CocoDataset *silently drops* annotations whose category id is not among the config's
classes or whose box has no area, shifts every label when a config class is missing from the file,
drops every annotation of a file whose categories are not the config's classes (COCO's 80 by default;
the run then stops inside mmengine with "need at least one array to concatenate"), and
fails on a missing image only when the sampler first draws it (a traceback, hours into a run);
pycocotools' `loadRes` needs the ground truth's `info` and fails after the whole test set ran. Each of
these becomes one `UserInputError` here (the tools turn it into one `error:` line, exit code 2).

The file is parsed and indexed by pycocotools (`COCO.createIndex`), the same code mmdet and the
evaluation use. Zero-area boxes are tolerated only as a tiny share (`ZERO_AREA_TOLERANCE`): the
official `instances_train2017.json` holds two (cocoapi issue #355) and mmdet skips them; a converter
bug that writes many is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from etcore.errors import UserInputError

# Zero-area boxes allowed as a share of all annotations (official COCO train2017: 2 of 860,001).
ZERO_AREA_TOLERANCE = 1e-4
_SECTIONS = ("images", "annotations", "categories")
_REQUIRED = {
    "images": ("id", "file_name"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}
_SHOWN = 3  # ids named in a message


@dataclass
class CocoSummary:
    """What a valid file holds; `notes` are tolerated oddities worth a line in the log."""

    path: str
    images: int
    annotations: int
    categories: int
    notes: list[str] = field(default_factory=list)


def first_few(ids: Iterable[Any]) -> str:
    """The first few of `ids`, then how many more (for messages)."""
    ids = list(ids)
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(str(i) for i in ids[:_SHOWN]) + more


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"annotation file {path} is not valid JSON ({err.msg} at line {err.lineno} column "
            f"{err.colno}): fix it or export it again"
        ) from None
    except UnicodeDecodeError:
        raise UserInputError(f"annotation file {path} is not UTF-8 text: give a COCO .json file") from None
    except OSError as err:
        raise UserInputError(
            f"annotation file {path} cannot be read ({err.strerror}): check the path and its permissions"
        ) from None


def _check_layout(data: Any, path: str, evaluated: bool) -> None:
    """Top-level sections, the keys every entry needs, and unique ids (pycocotools keeps the last)."""
    if not isinstance(data, dict):
        raise UserInputError(
            f"annotation file {path} holds a JSON {type(data).__name__}, not a COCO object "
            f"with {', '.join(_SECTIONS)}: give a COCO instances file"
        )
    missing = [s for s in _SECTIONS if not isinstance(data.get(s), list)]
    if missing:
        raise UserInputError(
            f"annotation file {path} has no {' / '.join(missing)} list: a COCO instances file "
            f"needs {', '.join(_SECTIONS)}"
        )
    if evaluated and "info" not in data:
        raise UserInputError(
            f'annotation file {path} has no "info" entry, which pycocotools needs to evaluate '
            'against it: add "info": {} to the file'
        )
    for section in _SECTIONS:
        for index, entry in enumerate(data[section]):
            absent = [k for k in _REQUIRED[section] if not isinstance(entry, dict) or k not in entry]
            if absent:
                raise UserInputError(
                    f"annotation file {path}: {section}[{index}] has no {', '.join(absent)}: "
                    "every entry needs " + ", ".join(_REQUIRED[section])
                )
        ids = [entry["id"] for entry in data[section]]
        if len(set(ids)) != len(ids):
            seen: set = set()
            duplicates = [i for i in ids if i in seen or seen.add(i)]
            raise UserInputError(
                f"annotation file {path} repeats {section} id {first_few(dict.fromkeys(duplicates))}: "
                "ids must be unique"
            )


def _index(data: dict):
    """pycocotools' COCO object over `data` (its progress prints silenced)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _bad_box(bbox: Any) -> str | None:
    """Why `bbox` is malformed ([x, y, w, h], finite, w/h not negative), or None."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return "is not [x, y, width, height]"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        return "holds a value that is not a finite number"
    if bbox[2] < 0 or bbox[3] < 0:
        return "has a negative width or height (written as [x1, y1, x2, y2]?)"
    return None


def _check_annotations(coco, path: str, summary: CocoSummary) -> None:
    unknown_image = [a["id"] for a in coco.anns.values() if a["image_id"] not in coco.imgs]
    if unknown_image:
        raise UserInputError(
            f"annotation file {path}: annotation {first_few(unknown_image)} refers to an image id "
            'that is not in "images": fix the image ids or add the images'
        )
    unknown_cat = [a["id"] for a in coco.anns.values() if a["category_id"] not in coco.cats]
    if unknown_cat:
        cat_ids = sorted({coco.anns[i]["category_id"] for i in unknown_cat}, key=str)
        raise UserInputError(
            f"annotation file {path}: annotation {first_few(unknown_cat)} has category id "
            f'{first_few(cat_ids)}, which is not in "categories" (known: {first_few(sorted(coco.cats))}): '
            "fix the category ids or add the categories"
        )
    for ann in coco.anns.values():
        reason = _bad_box(ann["bbox"])
        if reason:
            raise UserInputError(
                f"annotation file {path}: the bbox {ann['bbox']!r} of annotation {ann['id']} "
                f"{reason}: COCO boxes are [x, y, width, height] in pixels"
            )
    zero = [a["id"] for a in coco.anns.values() if a["bbox"][2] == 0 or a["bbox"][3] == 0]
    if zero and len(zero) > ZERO_AREA_TOLERANCE * len(coco.anns):
        raise UserInputError(
            f"annotation file {path}: {len(zero)} of {len(coco.anns)} boxes have zero area "
            f"(annotation {first_few(zero)}), which mmdet would silently drop: fix or delete them"
        )
    if zero:
        summary.notes.append(
            f"{path}: {len(zero)} zero-area box(es) (annotation {first_few(zero)}) will be skipped by mmdet"
        )


def _check_images(coco, path: str, image_dir: str | None) -> None:
    if image_dir is None:
        return
    missing = [img["file_name"] for img in coco.imgs.values() if not osp.isfile(osp.join(image_dir, img["file_name"]))]
    if missing:
        raise UserInputError(
            f"annotation file {path} lists {len(missing)} image(s) missing from {image_dir} "
            f"(e.g. {first_few(missing)}): copy them there or delete their entries"
        )


CLASSES_FIX = (
    "to use the file's categories, pass --classes-from-annotations to tools/train.py and tools/test.py "
    "(or set metainfo.classes to them and the head's num_classes to their number)"
)


def _check_classes(coco, path: str, classes: Sequence[str] | None, summary: CocoSummary) -> None:
    """Every class of the config must be a category name, else mmdet's labels shift without a word.

    None matching (a COCO-class config on one's own data) and some missing are errors that name a few of
    the file's categories and a few of the config's classes. Categories of the file that the config does
    not train are a `note`: mmdet skips their annotations, as when a config trains a subset of COCO.
    """
    if not classes:
        return
    classes = [str(c) for c in classes]
    names = [cat["name"] for cat in coco.dataset["categories"]]  # the file's order, which mmdet's labels follow
    repeated = [n for i, n in enumerate(names) if n in classes and n in names[:i]]
    if repeated:
        raise UserInputError(
            f"annotation file {path} names more than one category {first_few(dict.fromkeys(repeated))}, a class "
            "of the config: category names must be unique (mmdet would give that class two labels)"
        )
    absent = [c for c in classes if c not in set(names)]
    if len(absent) == len(classes):
        raise UserInputError(
            f"annotation file {path}: none of its {len(names)} category names ({first_few(names)}) is a class "
            f"of the config, which has {len(classes)} ({first_few(classes)}): {CLASSES_FIX}"
        )
    others = [n for n in names if n not in set(classes)]
    if absent:
        raise UserInputError(
            f"annotation file {path} has no category named {first_few(absent)} ({len(absent)} of the config's "
            f"{len(classes)} classes; the file's categories that are not classes of the config: "
            f"{first_few(others) or 'none'}): {CLASSES_FIX}"
        )
    if others:
        skipped_ids = {cat["id"] for cat in coco.dataset["categories"] if cat["name"] in set(others)}
        skipped = sum(1 for ann in coco.anns.values() if ann["category_id"] in skipped_ids)
        summary.notes.append(
            f"{path}: {len(others)} of its {len(names)} categories are not classes of the config "
            f"({first_few(others)}); mmdet skips their {skipped} annotation(s)"
        )


def category_names(path: str | os.PathLike) -> list[str]:
    """The category names of the COCO file `path`, in its order (mmdet's label order); unique and not empty."""
    path = os.fspath(path)
    data = _read_json(path)
    _check_layout(data, path, evaluated=False)
    names = [str(cat["name"]) for cat in data["categories"]]
    if not names:
        raise UserInputError(f'annotation file {path} has an empty "categories" list: add its categories')
    repeated = [n for i, n in enumerate(names) if n in names[:i]]
    if repeated:
        raise UserInputError(
            f"annotation file {path} names more than one category {first_few(dict.fromkeys(repeated))}: "
            "category names must be unique to be used as class names"
        )
    return names


def validate_coco_file(
    path: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    evaluated: bool = False,
) -> CocoSummary:
    """Check the COCO instances file `path`; raise `UserInputError` naming the first problem found.

    `image_dir`: check every listed image exists there. `classes`: the config's class names, each of
    which must be a category name (`_check_classes`). `evaluated`: the file is also pycocotools' ground
    truth (needs `info`).
    """
    path = os.fspath(path)
    data = _read_json(path)
    _check_layout(data, path, evaluated)
    coco = _index(data)
    summary = CocoSummary(path, len(coco.imgs), len(coco.anns), len(coco.cats))
    _check_annotations(coco, path, summary)
    _check_images(coco, path, None if image_dir is None else os.fspath(image_dir))
    _check_classes(coco, path, classes, summary)
    return summary
