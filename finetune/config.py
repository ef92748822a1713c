"""Read an mmdet config the way the tools need it, and check its inputs before any runner starts.

`data_root` (in the config or `--cfg-options`) is the one place that says where the data is;
a missing config, data root, annotation file, image folder or pretrained backbone checkpoint is one
`UserInputError` line, and COCO annotation files are validated (`finetune.coco_validation`) first.
"""

from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Any, Iterable, Sequence

from mmengine.config import Config

from etcore.errors import UserInputError
from etcore.imports import import_user_modules
from finetune.coco_validation import first_few, validate_coco_file

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
CFG_OPTIONS_HELP = (
    "override config settings, key=value pairs (e.g. data_root=/data/coco/ "
    'model.backbone.checkpoint=work_dirs/pretrain/x/final.pth); lists as key="[a,b]"'
)


def load_config(config: str, cfg_options: dict | None = None, launcher: str = "none") -> Config:
    """Read `config`, merge `cfg_options`, re-point the datasets at `data_root`, pick a dist backend."""
    if not Path(config).is_file():
        raise UserInputError(
            f"config {config} does not exist: give the path of a config file "
            "(the runnable ones are listed in det_configs/README.md)"
        )
    try:
        cfg = Config.fromfile(config)
    except SyntaxError as err:
        raise UserInputError(
            f"config {config} is not valid Python ({err.msg}, line {err.lineno}): fix the file"
        ) from None
    except ModuleNotFoundError as err:  # mmengine imports the config's custom_imports as it reads the file
        raise UserInputError(
            f"config {config}: custom_imports failed ({err}): check the module name, and that its folder is on "
            "PYTHONPATH (or the package is installed)"
        ) from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (KeyError, TypeError) as err:
            raise UserInputError(
                f"--cfg-options {cfg_options} do not fit the config ({err}): check the keys against the config"
            ) from None
        if any(str(key).split(".")[0] == "custom_imports" for key in cfg_options):
            # mmengine imports custom_imports only while reading the file: do it for the merged list too
            import_user_modules((cfg.get("custom_imports") or {}).get("imports") or [], "custom_imports")
    cfg.launcher = launcher
    point_datasets_at_data_root(cfg)
    return cfg


def datasets_of(loader: dict) -> Iterable[dict]:
    """The leaf dataset configs of a dataloader config (looking through RepeatDataset & co.)."""
    stack = [loader.get("dataset")]
    while stack:
        dataset = stack.pop()
        if not isinstance(dataset, dict):
            continue
        if "dataset" in dataset or "datasets" in dataset:
            stack.extend([dataset.get("dataset")] + list(dataset.get("datasets") or []))
        else:
            yield dataset


def evaluators_of(cfg: Config, key: str) -> list[dict]:
    evaluator = cfg.get(key)
    if isinstance(evaluator, dict) and "metrics" in evaluator:  # an Evaluator wrapper
        evaluator = evaluator["metrics"]
    if isinstance(evaluator, dict):
        return [evaluator]
    return [e for e in (evaluator or []) if isinstance(e, dict)]


def point_datasets_at_data_root(cfg: Config) -> None:
    """Make the top-level `data_root` the one place that says where the data is.

    mmengine evaluates `data_root + 'annotations/...'` when it parses the file, so a later
    `--cfg-options data_root=...` would otherwise leave every dataset and evaluator on the old path
    (no library does this re-derivation). Evaluator annotation files that do not end with their
    dataset's annotation file (e.g. a test-dev image list) are left alone.
    """
    root = cfg.get("data_root")
    if not root:
        return
    for loader_key, evaluator_key in (
        ("train_dataloader", None),
        ("val_dataloader", "val_evaluator"),
        ("test_dataloader", "test_evaluator"),
    ):
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict):
            continue
        for dataset in datasets_of(loader):
            ann_file = dataset.get("ann_file")
            if evaluator_key and ann_file and not osp.isabs(ann_file):
                for evaluator in evaluators_of(cfg, evaluator_key):
                    current = evaluator.get("ann_file")
                    if isinstance(current, str) and current.endswith(ann_file):
                        evaluator["ann_file"] = osp.join(root, ann_file)
            dataset["data_root"] = root


def check_data(cfg: Config, loader_keys: Sequence[str]) -> None:
    """Fail with one line if the data root, an annotation file or an image folder is missing."""
    hint = "put COCO there (annotations/, train2017/, val2017/) or point at it with --cfg-options data_root=PATH/"
    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        if not isinstance(loader, dict):
            continue
        for dataset in datasets_of(loader):
            root = dataset.get("data_root") or ""
            if root and not osp.isdir(root):
                raise UserInputError(f"data root {root} ({loader_key}) does not exist: {hint}")
            ann_file = dataset.get("ann_file")
            if ann_file and not osp.isfile(osp.join(root, ann_file)):
                raise UserInputError(
                    f"annotation file {osp.join(root, ann_file)} ({loader_key}) does not exist: {hint}"
                )
            images = (dataset.get("data_prefix") or {}).get("img")
            if images is not None and not osp.isdir(osp.join(root, images)):
                raise UserInputError(f"image folder {osp.join(root, images)} ({loader_key}) does not exist: {hint}")
    for evaluator_key in ("val_evaluator", "test_evaluator"):
        if evaluator_key.replace("evaluator", "dataloader") not in loader_keys:
            continue
        for evaluator in evaluators_of(cfg, evaluator_key):
            ann_file = evaluator.get("ann_file")
            if isinstance(ann_file, str) and not osp.isfile(ann_file):
                raise UserInputError(f"annotation file {ann_file} ({evaluator_key}) does not exist: {hint}")


def dataset_classes(dataset: dict) -> list[str] | None:
    """The class names a dataset config trains on: its `metainfo.classes`, else its type's defaults.

    mmdet's CocoDataset falls back to COCO's 80 classes (`CocoDataset.METAINFO`); a config that names
    no classes therefore filters a custom file by those. None when the type is not an mmdet dataset.
    """
    classes = (dataset.get("metainfo") or {}).get("classes")
    if classes:
        return [str(c) for c in classes]
    dataset_type = dataset.get("type")
    if dataset_type is None:
        return None
    import mmdet.datasets  # noqa: F401  (registers mmdet's dataset types)
    from mmdet.registry import DATASETS

    try:
        cls = dataset_type if isinstance(dataset_type, type) else DATASETS.get(dataset_type)
    except (KeyError, TypeError):
        cls = None
    defaults = (getattr(cls, "METAINFO", None) or {}).get("classes") if cls is not None else None
    return [str(c) for c in defaults] if defaults else None


# where a detector's class count lives: mmdet's one-stage `bbox_head`, two-stage/cascade `roi_head.bbox_head`
# (a list for Cascade) and `roi_head.mask_head`; the RPN head is class-agnostic and stays as it is
CLASS_HEAD_KEYS = ("bbox_head", "roi_head", "mask_head")


def class_heads(cfg: Config) -> list[tuple[str, dict]]:
    """(config path, head dict) of every detector head whose `num_classes` is the dataset's class count."""

    def walk(path: str, part: Any) -> Iterable[tuple[str, dict]]:
        if isinstance(part, (list, tuple)):
            for index, value in enumerate(part):
                yield from walk(f"{path}[{index}]", value)
        elif isinstance(part, dict):
            if "num_classes" in part and path != "model":
                yield path, part
            for key in CLASS_HEAD_KEYS:
                if key in part:
                    yield from walk(f"{path}.{key}", part[key])

    return list(walk("model", cfg.get("model") or {}))


def check_head_classes(cfg: Config, loader_key: str, dataset: dict) -> None:
    """The heads' num_classes must be the number of classes the dataset is filtered by."""
    classes = dataset_classes(dataset)
    if not classes:
        return
    wrong = [
        f"{path}.num_classes={head['num_classes']}"
        for path, head in class_heads(cfg)
        if head["num_classes"] != len(classes)
    ]
    if wrong:
        raise UserInputError(
            f"the {loader_key} dataset has {len(classes)} classes ({first_few(classes)}) but "
            f"{first_few(wrong)}: set the heads' num_classes to {len(classes)} "
            "(--classes-from-annotations sets both from the annotation file)"
        )


def validate_annotations(cfg: Config, loader_keys: Sequence[str]) -> None:
    """Check each dataset's COCO annotation file (ids, boxes, categories, images, classes) and that the
    heads' num_classes fit its classes, before the runner starts."""
    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        for dataset in datasets_of(loader if isinstance(loader, dict) else {}):
            root, ann_file = dataset.get("data_root") or "", dataset.get("ann_file")
            if not (isinstance(ann_file, str) and ann_file.endswith(".json")):
                continue
            images = (dataset.get("data_prefix") or {}).get("img")
            summary = validate_coco_file(
                osp.join(root, ann_file),
                None if images is None else osp.join(root, images),
                classes=dataset_classes(dataset),
                evaluated=loader_key != "train_dataloader",
            )
            for note in summary.notes:
                print(f"note: {note}", flush=True)
            check_head_classes(cfg, loader_key, dataset)


def uses_validation(cfg: Config) -> bool:
    return bool(cfg.get("val_cfg")) and bool(cfg.get("val_dataloader")) and bool(cfg.get("val_evaluator"))


def check_pretrained_checkpoint(cfg: Config) -> None:
    """The backbone loads `model.backbone.checkpoint` in init_weights(): check it exists up front."""
    backbone = cfg.get("model", {}).get("backbone") or {}
    checkpoint = backbone.get("checkpoint") if isinstance(backbone, dict) else None
    if isinstance(checkpoint, str) and "://" not in checkpoint and not osp.isfile(checkpoint):
        raise UserInputError(
            f"pretrained backbone checkpoint {checkpoint} (model.backbone.checkpoint) does not exist: "
            "pretrain it first (tools/pretrain.py), or pass --cfg-options model.backbone.checkpoint=PATH "
            "(=None trains from random init)"
        )


def default_work_dir(config: str) -> str:
    return osp.join("work_dirs", osp.splitext(osp.basename(config))[0])
