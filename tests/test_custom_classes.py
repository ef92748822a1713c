"""One's own COCO-format data: class checks that name both sides, and `--classes-from-annotations`.

A config filters a COCO file by its classes (COCO's 80 when it names none); a file with other category
names used to lose every annotation and stop inside mmengine with a traceback. Now the pre-runner check
names a few of the file's categories and a few of the config's in one line, and the switch of
tools/train.py and tools/test.py takes the classes (and the heads' num_classes) from the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from det_fixtures import write_coco_instances
from etcore.errors import UserInputError
from finetune import classes
from finetune.coco_validation import category_names, validate_coco_file
from finetune.config import class_heads, dataset_classes, load_config, validate_annotations

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
CASCADE = ROOT / "det_configs" / "tiny" / "cascade-mask-rcnn_resnet18_fpn_4conv1fc-giou_tiny-demo_efficienttrain.py"
REAL_RETINANET = ROOT / "det_configs" / "retinanet" / "retinanet_r50_fpn_1x_coco_baseline.py"
OWN_CLASSES = ("forklift", "pallet", "person")  # 'person' is also a COCO class, the others are not


@pytest.fixture(scope="module")
def own_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO-format set of the tiny configs' layout whose categories are one's own."""
    return write_coco_instances(tmp_path_factory.mktemp("own_coco"), OWN_CLASSES, train_images=6, val_images=3)


def coco_2017_layout(src: Path, dest: Path) -> Path:
    """The same set under COCO's own names (annotations/instances_train2017.json, train2017/ ...)."""
    for split in ("train", "val"):
        shutil.copytree(src / split, dest / f"{split}2017")
        (dest / "annotations").mkdir(parents=True, exist_ok=True)
        shutil.copy(
            src / "annotations" / f"instances_{split}.json", dest / "annotations" / f"instances_{split}2017.json"
        )
    return dest


def test_the_check_names_a_few_categories_of_the_file_and_classes_of_the_config(own_coco: Path) -> None:
    train = own_coco / "annotations" / "instances_train.json"
    with pytest.raises(UserInputError) as none_match:
        validate_coco_file(train, classes=("circle", "square", "ring", "cross"))
    message = str(none_match.value)
    assert "none of its 3 category names (forklift, pallet, person)" in message
    assert "which has 4 (circle, square, ring and 1 more)" in message and "--classes-from-annotations" in message

    coco_80 = dataset_classes({"type": "CocoDataset"})  # a config naming no classes filters by COCO's 80
    assert len(coco_80) == 80 and coco_80[0] == "person"
    with pytest.raises(UserInputError) as some_match:
        validate_coco_file(train, classes=coco_80)
    message = str(some_match.value)
    assert "has no category named bicycle, car, motorcycle and 76 more (79 of the config's 80 classes" in message
    assert "the file's categories that are not classes of the config: forklift, pallet)" in message

    # training on a subset of the file's categories is mmdet's way to drop some: a note, not an error
    summary = validate_coco_file(train, classes=("pallet",))
    counts = json.loads(train.read_text())["annotations"]
    skipped = sum(1 for a in counts if a["category_id"] != 2)
    assert summary.notes == [
        f"{train}: 2 of its 3 categories are not classes of the config (forklift, person); "
        f"mmdet skips their {skipped} annotation(s)"
    ]


def test_category_names_in_file_order_unique(own_coco: Path, tmp_path: Path) -> None:
    train = own_coco / "annotations" / "instances_train.json"
    assert category_names(train) == list(OWN_CLASSES)
    data = json.loads(train.read_text())
    data["categories"].append({"id": 9, "name": "pallet"})
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(data))
    with pytest.raises(UserInputError, match="names more than one category pallet"):
        category_names(twice)
    with pytest.raises(UserInputError, match="names more than one category pallet"):
        validate_coco_file(twice, classes=OWN_CLASSES)
    data["categories"] = []
    twice.write_text(json.dumps(data))
    with pytest.raises(UserInputError, match='empty "categories"'):
        category_names(twice)


@pytest.mark.parametrize("config", [RETINANET, CASCADE], ids=["retinanet", "cascade"])
def test_the_switch_sets_every_dataset_and_head(config: Path, own_coco: Path, capsys) -> None:
    cfg = load_config(str(config), {"data_root": f"{own_coco}/"})
    with pytest.raises(UserInputError, match="none of its 3 category names"):
        validate_annotations(cfg, ["train_dataloader", "val_dataloader"])
    rpn_before = (cfg.model.get("rpn_head") or {}).get("num_classes")

    assert classes.use_annotation_classes(cfg, "train_dataloader") == list(OWN_CLASSES)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.metainfo.classes == OWN_CLASSES
    heads = class_heads(cfg)
    expected = ["model.bbox_head"] if config == RETINANET else [f"model.roi_head.bbox_head[{i}]" for i in range(3)]
    expected += [] if config == RETINANET else ["model.roi_head.mask_head"]
    assert [path for path, _ in heads] == expected and all(h["num_classes"] == 3 for _, h in heads)
    assert (cfg.model.get("rpn_head") or {}).get("num_classes") == rpn_before  # class-agnostic RPN untouched
    assert f"3 classes from {own_coco}/annotations/instances_train.json" in capsys.readouterr().out
    validate_annotations(cfg, ["train_dataloader", "val_dataloader", "test_dataloader"])


def test_classes_without_num_classes_are_named(own_coco: Path) -> None:
    """metainfo.classes set by hand, the head left at the config's 10: one line before the runner."""
    options = {"data_root": f"{own_coco}/", "train_dataloader.dataset.metainfo.classes": list(OWN_CLASSES)}
    cfg = load_config(str(RETINANET), options)
    with pytest.raises(UserInputError, match=r"has 3 classes \(forklift, pallet, person\) but model.bbox_head"):
        validate_annotations(cfg, ["train_dataloader"])


def test_a_real_config_on_own_data(own_coco: Path, tmp_path: Path) -> None:
    """The issue's case: a full COCO config pointed at one's own data (data_root=...)."""
    root = coco_2017_layout(own_coco, tmp_path / "own_coco_2017")
    cfg = load_config(str(REAL_RETINANET), {"data_root": f"{root}/"})
    with pytest.raises(UserInputError, match="has no category named bicycle, car, motorcycle and 76 more"):
        validate_annotations(cfg, ["train_dataloader", "val_dataloader"])
    classes.use_annotation_classes(cfg, "train_dataloader")
    assert cfg.model.bbox_head.num_classes == 3
    validate_annotations(cfg, ["train_dataloader", "val_dataloader"])


def test_the_switch_is_refused_for_a_segmentation_config(demo_data: Path) -> None:
    """ADE-layout label maps have no category names to read: the flag is a detection flag, one line."""
    upernet = Path(__file__).resolve().parents[1] / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"
    cfg = load_config(str(upernet), {"data_root": f"{demo_data / 'ade'}/"})
    with pytest.raises(UserInputError, match="is not a detection \\(mmdet\\) config: drop the flag"):
        classes.use_annotation_classes(cfg, "train_dataloader", str(upernet))


def test_trained_classes_must_be_the_test_sets() -> None:
    cfg = load_config(str(RETINANET))
    trained = list(cfg.classes)
    classes.check_trained_classes({"meta": {"dataset_meta": {"classes": tuple(trained)}}}, cfg, "ckpt.pth")
    classes.check_trained_classes({"meta": {}}, cfg, "ckpt.pth")  # no record: nothing to compare
    with pytest.raises(UserInputError, match=r"ckpt.pth was trained on 10 classes \(cross_hstripes"):
        classes.check_trained_classes({"meta": {"dataset_meta": {"classes": trained[::-1]}}}, cfg, "ckpt.pth")


# ------------------------------------------------------------------------------- the command lines
def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.subprocess
def test_own_categories_train_and_test_with_the_switch(own_coco: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    options = ["--cfg-options", f"data_root={own_coco}/", "model.backbone.checkpoint=None"]
    trained = run(
        "tools/train.py",
        str(RETINANET),
        "--work-dir",
        str(work),
        "--classes-from-annotations",
        *options,
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "note: --classes-from-annotations: 3 classes from" in trained.stdout
    assert (work / "iter_2.pth").is_file()

    tested = run(
        "tools/test.py",
        str(RETINANET),
        str(work / "iter_2.pth"),
        "--work-dir",
        str(work),
        "--classes-from-annotations",
        *options,
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    record = json.loads((work / "coco_metrics.json").read_text())
    assert set(record["metrics"]["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert record["resolved_config"]["model"]["bbox_head"]["num_classes"] == 3

    # a test set listing the same categories in another order would permute the labels: refused by name
    shuffled = shutil.copytree(own_coco, tmp_path / "shuffled")
    val = shuffled / "annotations" / "instances_val.json"
    data = json.loads(val.read_text())
    data["categories"] = data["categories"][::-1]
    val.write_text(json.dumps(data))
    refused = run(
        "tools/test.py",
        str(RETINANET),
        str(work / "iter_2.pth"),
        "--work-dir",
        str(tmp_path / "work_shuffled"),
        "--classes-from-annotations",
        "--cfg-options",
        f"data_root={shuffled}/",
    )
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
    assert "was trained on 3 classes (forklift, pallet, person) but the test set's are 3 (person, pallet" in lines[0]
    assert not (tmp_path / "work_shuffled" / "coco_metrics.json").exists()
