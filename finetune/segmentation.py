"""The mmseg path of `tools/train.py` and `tools/test.py`: which kind a config is, its data checked up front, and
the test that writes `seg_metrics.json` (`finetune.seg_metrics`). `finetune.detection` is the same for mmdet.

A config's `default_scope` says what it is: `mmdet` (detection, the default) or `mmseg` (semantic
segmentation). For segmentation the tools check, before any runner starts, what mmseg would otherwise
report as a traceback (or not at all): a missing image or annotation folder, an image without its label
map (mmseg lists the images and fails only when the sampler draws the missing map), a label map whose
size differs from its image or that has more than one channel, a label value above the class count that
is not the ignore value (the loss fails on it, or on a GPU a device-side assert ends the job), and a
head whose `num_classes` is not the dataset's class count. Each is one `UserInputError`. Label maps are
decoded with `finetune.images`' rule (a truncated one is refused); images are only opened here, and decoded
in full by `--check-images` (`finetune.images.check_images`).

Label values are read as mmseg reads them: with `reduce_zero_label` (ADE20K) 0 is ignored and value v
is class v - 1, so 0..num_classes and the ignore value (255) are valid; without it 0..num_classes - 1
and the ignore value.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from PIL import Image

from etcore.checkpoint_io import file_sha256
from etcore.errors import UserInputError
from etcore.formats import SEG_METRICS_FILE, SEG_MODES, SEG_PREDICTIONS_DIR
from etcore.paths import check_writable_dir
from finetune.checkpoints import load_model_checkpoint, training_facts
from finetune.complexity import zoo_facts
from finetune.config import datasets_of, evaluators_of
from finetune.images import TRAIN_LOADER, UndecodableImage, check_images, decode_image, skipped_in_training
from finetune.runner import build_runner
from finetune.seg_metrics import bootstrap_seg, image_confusions, iou_metrics, seg_record, write_seg_metrics

SCOPES = ("mmdet", "mmseg")
HINT = (
    "put ADE20K there (images/ and annotations/ with training/ and validation/) or point at it with "
    "--cfg-options data_root=PATH/"
)
_SHOWN = 3


def config_scope(cfg: Config, config: str) -> str:
    """`mmdet` or `mmseg` from the config's `default_scope` (absent: mmdet, as mmdet's tools assume)."""
    scope = cfg.get("default_scope") or "mmdet"
    if scope not in SCOPES:
        raise UserInputError(
            f"config {config} has default_scope={scope!r}: tools/train.py and tools/test.py run "
            "mmdet (detection) and mmseg (segmentation) configs"
        )
    return scope


def is_segmentation(cfg: Config, config: str = "the config") -> bool:
    return config_scope(cfg, config) == "mmseg"


@dataclass(frozen=True)
class SegDatasetSpec:
    """Where a segmentation dataset's files are and how its label values read (mmseg's rules)."""

    loader_key: str
    image_dir: str
    label_dir: str
    img_suffix: str
    seg_map_suffix: str
    split_file: str | None
    num_classes: int
    reduce_zero_label: bool
    ignore_index: int

    @property
    def highest_label(self) -> int:
        """The largest valid raw value in a label map, the ignore value aside."""
        return self.num_classes if self.reduce_zero_label else self.num_classes - 1


def _dataset_class(dataset: dict):
    from mmseg.registry import DATASETS

    kind = dataset.get("type")
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise UserInputError(f"dataset type {kind!r} is not an mmseg dataset: use e.g. ADE20KDataset or BaseSegDataset")
    return cls


def _default(cls, name: str, fallback):
    """The default of `name` in the dataset class's __init__ (ADE20KDataset fixes reduce_zero_label=True)."""
    parameter = inspect.signature(cls.__init__).parameters.get(name)
    return fallback if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def dataset_spec(dataset: dict, loader_key: str) -> SegDatasetSpec:
    """Resolve a leaf dataset config (data_root already applied) into file locations and label rules."""
    cls = _dataset_class(dataset)
    root = dataset.get("data_root") or ""
    prefix = dataset.get("data_prefix") or {}
    classes = (dataset.get("metainfo") or {}).get("classes") or (getattr(cls, "METAINFO", {}) or {}).get("classes")
    if not classes:
        raise UserInputError(
            f"{loader_key}: dataset {cls.__name__} names no classes: add metainfo=dict(classes=(...)) to it"
        )
    native = (getattr(cls, "METAINFO", {}) or {}).get("classes")
    raw_classes = len(native) if native else len(classes)  # a class subset is mapped from the native ids
    ann_file = dataset.get("ann_file") or ""
    split_file = osp.join(root, ann_file) if ann_file else None
    return SegDatasetSpec(
        loader_key=loader_key,
        image_dir=osp.join(root, prefix.get("img_path", "")),
        label_dir=osp.join(root, prefix.get("seg_map_path", "")),
        img_suffix=dataset.get("img_suffix", _default(cls, "img_suffix", ".jpg")),
        seg_map_suffix=dataset.get("seg_map_suffix", _default(cls, "seg_map_suffix", ".png")),
        split_file=split_file,
        num_classes=raw_classes,
        reduce_zero_label=bool(dataset.get("reduce_zero_label", _default(cls, "reduce_zero_label", False))),
        ignore_index=int(dataset.get("ignore_index", _default(cls, "ignore_index", 255))),
    )


def _names(spec: SegDatasetSpec) -> list[str]:
    """Image names without suffix, as mmseg's BaseSegDataset lists them (split file, or the folder)."""
    if spec.split_file is not None and not osp.isdir(spec.split_file):
        if not osp.isfile(spec.split_file):
            raise UserInputError(f"split file {spec.split_file} ({spec.loader_key}) does not exist: {HINT}")
        with open(spec.split_file, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    names = []
    for folder, _, files in os.walk(spec.image_dir):
        for name in files:
            if name.endswith(spec.img_suffix):
                relative = osp.relpath(osp.join(folder, name), spec.image_dir)
                names.append(relative[: -len(spec.img_suffix)])
    return sorted(names)


def _check_pair(spec: SegDatasetSpec, name: str, images_later: bool = False, labels_later: bool = False) -> str | None:
    """None if image `name` and its label map fit together, else the one-line problem.

    An image that cannot be opened is left alone with `images_later` (`--check-images` reports it with the
    others, or `--skip-unreadable` skips it), and so is a label map that cannot be decoded with `labels_later`.
    """
    image_path = osp.join(spec.image_dir, name + spec.img_suffix)
    label_path = osp.join(spec.label_dir, name + spec.seg_map_suffix)
    if not osp.isfile(image_path):
        return f"image {image_path} ({spec.loader_key}) does not exist: add it or remove {name} from the split"
    if not osp.isfile(label_path):
        return (
            f"annotation file {label_path} ({spec.loader_key}) does not exist: every image in {spec.image_dir} "
            f"needs its label map in {spec.label_dir}"
        )
    try:
        with Image.open(image_path) as image:
            width, height = image.size
    except OSError as err:
        if images_later:
            return None
        return f"image {image_path} ({spec.loader_key}) cannot be read ({err}): replace the file"
    try:  # decoded as strictly as during the run (a cut PNG is refused without libpng's stderr line)
        with open(label_path, "rb") as handle:
            labels = decode_image(handle.read(), "unchanged")
    except (OSError, UndecodableImage) as err:
        if labels_later:
            return None
        return f"annotation file {label_path} ({spec.loader_key}) cannot be decoded ({err}): write it again as a PNG"
    if labels.ndim != 2:
        return (
            f"label map {label_path} ({spec.loader_key}) has {labels.shape[2]} channels: a label map is a "
            "single-channel PNG of class ids (convert it, e.g. with a palette lookup)"
        )
    if labels.shape != (height, width):
        return (
            f"label map {label_path} ({spec.loader_key}) is {labels.shape[1]}x{labels.shape[0]} but its image "
            f"{image_path} is {width}x{height}: a label map has its image's size"
        )
    if labels.dtype == np.uint8:  # a histogram is several times faster than bincount on 8-bit maps
        counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(labels.ravel().astype(np.int64))
    present = np.nonzero(counts)[0]
    bad = [int(v) for v in present if v > spec.highest_label and v != spec.ignore_index]
    if bad:
        rule = (
            f"0 = ignored, 1..{spec.num_classes} = the classes (reduce_zero_label)"
            if spec.reduce_zero_label
            else f"0..{spec.num_classes - 1} = the classes"
        )
        return (
            f"label map {label_path} ({spec.loader_key}) holds value {bad[0]} ({counts[bad[0]]} pixels"
            f"{', also ' + ', '.join(map(str, bad[1:_SHOWN])) if len(bad) > 1 else ''}), above the "
            f"{spec.num_classes} classes and not the ignore value {spec.ignore_index}: valid values are {rule} "
            f"and {spec.ignore_index}; fix the annotation or the class count"
        )
    return None


def check_seg_dataset(
    spec: SegDatasetSpec, workers: int | None = None, images_later: bool = False, labels_later: bool = False
) -> int:
    """Check every image/label pair of one dataset (threads: decoding releases the GIL); return the count.

    `images_later` / `labels_later`: unreadable files are left to another check (see `_check_pair`).
    """
    for label, folder in (("image folder", spec.image_dir), ("annotation folder", spec.label_dir)):
        if not osp.isdir(folder):
            raise UserInputError(f"{label} {folder} ({spec.loader_key}) does not exist: {HINT}")
    names = _names(spec)
    if not names:
        raise UserInputError(
            f"image folder {spec.image_dir} ({spec.loader_key}) holds no *{spec.img_suffix} images: {HINT} "
            "(or set the dataset's img_suffix)"
        )
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pairs = pool.map(lambda name: _check_pair(spec, name, images_later, labels_later), names, chunksize=16)
        for problem in pairs:
            if problem:
                raise UserInputError(problem)
    return len(names)


def _head_classes(cfg: Config) -> Iterable[tuple[str, int]]:
    model = cfg.get("model") or {}
    for head in ("decode_head", "auxiliary_head"):
        heads = model.get(head)
        for index, item in enumerate(heads if isinstance(heads, list) else [heads]):
            if isinstance(item, dict) and isinstance(item.get("num_classes"), int):
                yield (f"model.{head}" + (f".{index}" if isinstance(heads, list) else "")), item["num_classes"]


def check_seg_data(
    cfg: Config, loader_keys: Sequence[str], images_checked: bool = False, skip_training: bool = False
) -> list[str]:
    """Check the data of every dataset behind `loader_keys`; return notes for the log.

    Unreadable files are left out when another step deals with them: all of them with `images_checked` (the
    `--check-images` report that follows), the training images with `skip_training` (`--skip-unreadable`).
    """
    notes = []
    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        for dataset in datasets_of(loader if isinstance(loader, dict) else {}):
            root = dataset.get("data_root") or ""
            if root and not osp.isdir(root):
                raise UserInputError(f"data root {root} ({loader_key}) does not exist: {HINT}")
            spec = dataset_spec(dataset, loader_key)
            classes = (dataset.get("metainfo") or {}).get("classes") or ()
            expected = len(classes) if classes else spec.num_classes
            for key, value in _head_classes(cfg):
                if value != expected:
                    raise UserInputError(
                        f"{key}.num_classes={value} but the {loader_key} dataset has {expected} classes: "
                        f"set {key}.num_classes={expected}"
                    )
            images_later = images_checked or (skip_training and loader_key == TRAIN_LOADER)
            count = check_seg_dataset(spec, images_later=images_later, labels_later=images_checked)
            notes.append(f"{loader_key}: {count} images and label maps checked in {spec.image_dir}")
    return notes


# --------------------------------------------------------------------------------------------- testing


def use_test_time_augmentation(cfg: Config, config: str) -> None:
    """mmseg's --tta: the TTA pipeline for the test set and the model wrapped in the config's tta_model.

    A config whose recipe tests multi-scale otherwise than single-scale names that in `tta_test_cfg` (our key:
    ConvNeXt's *_ms.py files test whole images where its single-scale files slide); it replaces the wrapped
    model's test_cfg.
    """
    if not cfg.get("tta_model") or not cfg.get("tta_pipeline"):
        raise UserInputError(
            f"--tta: config {config} has no tta_model / tta_pipeline: add them (seg_configs/_base_/datasets/"
            "ade20k.py shows the multi-scale + flip ones) or drop --tta"
        )
    if cfg.get("tta_test_cfg"):
        cfg.model.test_cfg = cfg.tta_test_cfg
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def iou_evaluators(cfg: Config) -> list[dict]:
    return [e for e in evaluators_of(cfg, "test_evaluator") if e.get("type") == "IoUMetric"]


def dump_predictions_to(cfg: Config, config: str, folder: str) -> None:
    """Have mmseg's IoUMetric write every predicted label map to `folder` as `<image name>.png`.

    The values follow the annotation's convention (class id + 1 under reduce_zero_label, as ADE20K), so a
    prediction reads like a label map; FORMATS.md describes the folder.
    """
    evaluators = iou_evaluators(cfg)
    if not evaluators:
        raise UserInputError(
            f"--dump-predictions: config {config} has no IoUMetric test_evaluator: drop the flag or evaluate "
            "with IoUMetric"
        )
    for evaluator in evaluators:
        evaluator["output_dir"] = folder


class DumpSegResults(DumpResults):
    """`--out results.pkl` for segmentors: each image's predicted label map (uint8 where it fits) and metainfo.

    mmengine's DumpResults would keep every `seg_logits` (classes x H x W floats: for ADE20K's 2000
    validation images some 400 GB in memory) and the ground truth; like mmdet's DumpDetResults, this keeps
    the prediction only.
    """

    def process(self, data_batch, data_samples) -> None:
        kept = []
        for sample in data_samples:
            sample = {k: v for k, v in sample.items() if k not in ("seg_logits", "gt_sem_seg")}
            prediction = (sample.get("pred_sem_seg") or {}).get("data")
            if isinstance(prediction, torch.Tensor):
                prediction = prediction.detach().cpu()
                if prediction.numel() and 0 <= int(prediction.min()) and int(prediction.max()) <= 255:
                    prediction = prediction.to(torch.uint8)
                sample["pred_sem_seg"] = dict(sample["pred_sem_seg"], data=prediction)
            kept.append(sample)
        super().process(data_batch, kept)


def mode_name(tta: bool) -> str:
    return SEG_MODES[1] if tta else SEG_MODES[0]


def test_segmentor(args: argparse.Namespace, cfg: Config, resolved: dict) -> int:
    """The mmseg path: check the data, test (single scale, or --tta), write seg_metrics.json."""
    if args.dump_detections is not None:
        raise UserInputError(
            f"--dump-detections is for detection configs; {args.config} is a segmentation config: "
            "use --dump-predictions to keep the predicted label maps"
        )
    for note in check_seg_data(cfg, ["test_dataloader"], images_checked=args.check_images):
        print(f"note: {note}", flush=True)
    if args.check_images:
        check_images(cfg, ["test_dataloader"])
    mode = mode_name(args.tta)
    plain = copy.deepcopy(cfg)  # the model and test pipeline before --tta wraps them: what #params/FLOPs describe
    if args.tta:
        use_test_time_augmentation(cfg, args.config)
    predictions = None
    if args.bootstrap and args.dump_predictions is None:
        raise UserInputError("--bootstrap resamples the saved label maps: add --dump-predictions")
    if args.dump_predictions is not None:
        predictions = args.dump_predictions or osp.join(cfg.work_dir, SEG_PREDICTIONS_DIR, mode)
        check_writable_dir(predictions, "--dump-predictions")
        dump_predictions_to(cfg, args.config, predictions)

    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpSegResults(out_file_path=args.out))
    checkpoint = load_model_checkpoint(runner, args.checkpoint)
    seed, pretrained = training_facts(checkpoint, cfg)
    results = runner.test()
    if not is_main_process():
        return 0
    metrics = iou_metrics(results)
    if not metrics:
        runner.logger.warning(f"no mIoU/mAcc/aAcc came back (format_only?): {SEG_METRICS_FILE} not written")
        return 0
    record = seg_record(
        config=args.config,
        checkpoint=args.checkpoint,
        checkpoint_sha256=file_sha256(args.checkpoint),
        resolved=resolved,
        seed=seed,
        pretrained=pretrained,
        mode=mode,
        metrics=metrics,
        predictions=predictions,
        bootstrap=_bootstrap(resolved, predictions, args.bootstrap) if args.bootstrap else None,
        unreadable=skipped_in_training(checkpoint),
    )
    record.update(zoo_facts(plain, checkpoint, args.checkpoint, runner.logger, args.complexity))
    path, note = write_seg_metrics(record, osp.join(runner.work_dir, SEG_METRICS_FILE))
    if note:
        runner.logger.warning(note)
    runner.logger.info(f"segmentation metrics ({mode}) written to {path}")
    return 0


def _bootstrap(resolved: dict, predictions: str, draws: int) -> dict:
    """mIoU, mAcc and aAcc on `draws` resamples of the test images, from the label maps just saved."""
    names, confusions = image_confusions(resolved["test_dataloader"]["dataset"], Path(predictions), Path.cwd())
    return bootstrap_seg(confusions, draws, names=names)
