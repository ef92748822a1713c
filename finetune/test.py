"""`tools/test.py`: evaluate a trained detector on COCO and write `<work_dir>/coco_metrics.json`, or a semantic
segmentor on ADE20K and write `<work_dir>/seg_metrics.json` (docs/FORMATS.md); the config's default_scope
(`mmdet` or `mmseg`) says which.

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--out results.pkl]
        [--dump-detections [PREFIX]] [--tta] [--dump-predictions [DIR]] [--cfg-options k=v ...]
        [--show-dir DIR] [--no-complexity] [--classes-from-annotations] [--check-images] [--launcher L]

mmdet's / mmseg's tools/test.py command line. Detection numbers are mmdet's CocoMetric's (pycocotools
underneath); `--dump-detections` also keeps the raw detections in COCO results format (`PREFIX.bbox.json`,
and `PREFIX.segm.json` for instance segmentation; PREFIX defaults to `<work_dir>/detections`) so anyone
can re-evaluate them with pycocotools. Segmentation numbers are mmseg's IoUMetric's (mIoU, mAcc, aAcc);
`--tta` tests with the config's multi-scale + flip augmentation (mmseg's flag), and `--dump-predictions`
keeps every predicted label map (DIR defaults to `<work_dir>/predictions/<mode>`) for outside evaluation.
Missing inputs are one `error:` line (exit 2) before the runner starts; `--check-images` decodes every test
image first, and an image that cannot be decoded during the test is one `error:` line (`finetune.images`).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Any, Sequence

from mmengine.config import DictAction

import backbones  # noqa: F401  (registers TimmBackbone & co.; installs the checkpoint allowlist)
from etcore.errors import UserInputError
from etcore.paths import check_writable_dir
from finetune import classes
from finetune.config import CFG_OPTIONS_HELP, LAUNCHERS, default_work_dir, load_config
from finetune.detection import test_detector
from finetune.images import add_arguments as add_image_arguments
from finetune.images import fix_for_testing, stop_on_unreadable, use_checked_loading
from finetune.segmentation import is_segmentation, test_segmentor
from finetune.visualization import draw_test_predictions

RUN_ONLY_KEYS = ("work_dir", "load_from", "resume", "launcher")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Test (and evaluate) a detector on COCO or a semantic segmentor on ADE20K (mmdet / mmseg config)."
    )
    parser.add_argument("config", help="test config file")
    parser.add_argument(
        "checkpoint", help="detector or segmentor checkpoint, e.g. work_dirs/<config>/epoch_12.pth or iter_160000.pth"
    )
    parser.add_argument(
        "--work-dir",
        help="where coco_metrics.json / seg_metrics.json and logs go (default: work_dirs/<config name>)",
    )
    parser.add_argument(
        "--out",
        help="also dump the raw predictions to this .pkl file (mmdet DumpDetResults; segmentation: the label maps)",
    )
    parser.add_argument(
        "--dump-detections",
        nargs="?",
        const="",
        metavar="PREFIX",
        help="keep the detections in COCO results format: PREFIX.bbox.json (and .segm.json); "
        "PREFIX defaults to <work_dir>/detections",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="segmentation: test with the config's multi-scale + flip augmentation (tta_pipeline, tta_model); "
        "fills the ms_flip block of seg_metrics.json",
    )
    parser.add_argument(
        "--dump-predictions",
        nargs="?",
        const="",
        metavar="DIR",
        help="segmentation: keep every predicted label map as DIR/<image>.png; DIR defaults to "
        "<work_dir>/predictions/single_scale (or ms_flip with --tta)",
    )
    parser.add_argument(
        "--bootstrap",
        nargs="?",
        type=int,
        const=200,
        default=0,
        metavar="DRAWS",
        help="also store every metric on DRAWS resamples of the test images (default 200), the evaluation's own "
        "sampling error, in the metrics file; needs --dump-detections / --dump-predictions",
    )
    parser.add_argument(
        "--show-dir",
        metavar="DIR",
        help="draw every test image's predictions, as mmdet's / mmseg's tools/test.py: detection into "
        "<work_dir>/<timestamp>/DIR/ (DIR itself when absolute), segmentation into DIR/vis_data/vis_image/",
    )
    parser.add_argument(
        "--complexity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure #params and FLOPs on the first test image (mmengine.analysis) for the metrics file and "
        "tools/compare.py --format zoo (default on; --no-complexity skips the extra forward pass)",
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help=CFG_OPTIONS_HELP)
    classes.add_argument(parser)
    add_image_arguments(parser, training=False)
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def json_safe(value: Any) -> Any:
    """The config as plain JSON values: tuples become lists, anything else exotic its repr."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the inputs common to both kinds, then test a detector (`finetune.detection`) or a segmentor
    (`finetune.segmentation`), as the config's default_scope says."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    if args.classes_from_annotations:
        classes.use_annotation_classes(cfg, "test_dataloader", args.config)
    # the config as file + --cfg-options say, without what only names this run (compare.py pairs on it)
    resolved = json_safe({k: v for k, v in cfg.to_dict().items() if k not in RUN_ONLY_KEYS})
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    check_writable_dir(cfg.work_dir)
    if args.out is not None and not args.out.endswith((".pkl", ".pickle")):
        raise UserInputError(f"--out {args.out}: the predictions dump is a pickle, name it *.pkl")
    if not osp.isfile(args.checkpoint):
        raise UserInputError(
            f"checkpoint {args.checkpoint} does not exist: give a detector or segmentor checkpoint "
            "(tools/train.py writes them into its work dir)"
        )
    if args.show_dir:
        draw_test_predictions(cfg, args.show_dir, is_segmentation(cfg, args.config), args.config)
    use_checked_loading(cfg, ["test_dataloader"])  # also the TTA pipeline that --tta puts in its place
    with stop_on_unreadable(fix_for_testing):
        if is_segmentation(cfg, args.config):
            return test_segmentor(args, cfg, resolved)
        return test_detector(args, cfg, resolved)
