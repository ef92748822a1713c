"""`tools/train.py`: train a detector (mmdet 3.x config) or a semantic segmentor (mmseg 1.x config) with
mmdet's / mmseg's tools/train.py command line; the config's default_scope says which.

    python tools/train.py det_configs/retinanet/retinanet_swin-t_fpn_1x_coco_efficienttrain.py \
        [--work-dir D] [--resume [CKPT]] [--amp] [--auto-scale-lr] [--vis tensorboard|wandb] [--cfg-options k=v ...]
        [--classes-from-annotations] [--check-images] [--skip-unreadable] [--launcher L]
    python tools/train.py seg_configs/upernet/upernet_swin-t_8xb2-160k_ade20k-512x512_efficienttrain.py

Differences from mmdet's tool, all about failing early and clearly: a missing config, data root,
annotation file, pretrained backbone checkpoint or resume checkpoint is one `error:` line (exit 2) before
the runner starts; `data_root` (config or --cfg-options) is the one place that points at the data; a
CPU-only machine runs distributed jobs on gloo; COCO annotation files are validated first
(`finetune.coco_validation`), segmentation images and label maps likewise (`finetune.segmentation`), and
`--classes-from-annotations` trains a detector on one's own COCO-format categories (`finetune.classes`);
checkpoints are written atomically and `--resume` skips one that a kill left
unreadable (`finetune.checkpoints`, docs/RELIABILITY.md); SIGUSR1/SIGTERM (a cluster's time limit or
preemption) save a checkpoint at the next iteration, inside an epoch too, and exit with code 75, and `--resume`
continues from it as the uninterrupted run would, RNG states included (`finetune.preemption`, `finetune.loops`,
`finetune.rng_state`); `--check-images` decodes every image first, and an image that cannot be decoded
during the run is one `error:` line, or with `--skip-unreadable` skipped and counted (`finetune.images`).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process

import backbones  # noqa: F401  (registers TimmBackbone & co.; installs the checkpoint allowlist)
from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import EXIT_PREEMPTED, UserInputError
from etcore.paths import check_writable_dir
from etcore.preemption import stop_signals, stopped_line
from etcore.tracking import VIS_BACKENDS
from finetune import classes
from finetune.checkpoints import resume_checkpoint, use_atomic_checkpoints
from finetune.config import (
    CFG_OPTIONS_HELP,
    LAUNCHERS,
    check_pretrained_checkpoint,
    default_work_dir,
    load_config,
    uses_validation,
)
from finetune.detection import check_det_data
from finetune.images import add_arguments as add_image_arguments
from finetune.images import check_images, fix_for_training, stop_on_unreadable, use_checked_loading
from finetune.loops import use_resumable_loops
from finetune.preemption import PreemptionHook
from finetune.rng_state import RngStateHook
from finetune.runner import build_runner
from finetune.segmentation import check_seg_data, is_segmentation
from finetune.visualization import add_vis_backends


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a detector (mmdet 3.x config) or a segmentor (mmseg 1.x).")
    parser.add_argument(
        "config", help="train config file, e.g. det_configs/retinanet/..._baseline.py or seg_configs/upernet/..."
    )
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default: work_dirs/<config name>)")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (needs a GPU)")
    parser.add_argument(
        "--auto-scale-lr",
        action="store_true",
        help="scale the lr by (GPUs x batch per GPU) / the config's auto_scale_lr.base_batch_size",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from this checkpoint, or (no value) from the last one in the work dir",
    )
    parser.add_argument(
        "--vis",
        nargs="+",
        choices=VIS_BACKENDS,
        default=[],
        metavar="BACKEND",
        help="experiment tracking: tensorboard and/or wandb (needs `pip install wandb`), added to the config's "
        "visualizer.vis_backends beside LocalVisBackend; files in <work_dir>/<timestamp>/vis_data/",
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help=CFG_OPTIONS_HELP)
    classes.add_argument(parser)
    add_image_arguments(parser, training=True)
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher")
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def apply_train_args(cfg: Config, args: argparse.Namespace) -> None:
    """--work-dir, --amp, --auto-scale-lr and --resume, as mmdet's tools/train.py applies them."""
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    check_writable_dir(cfg.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            raise UserInputError("--amp needs a GPU (torch.cuda.is_available() is False): drop --amp")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    elif cfg.get("optim_wrapper", {}).get("type") == "AmpOptimWrapper" and not torch.cuda.is_available():
        raise UserInputError(
            f"config {args.config} trains with mixed precision (AmpOptimWrapper), which needs "
            "a GPU: run it on one, or add --cfg-options optim_wrapper.type=OptimWrapper"
        )
    if args.auto_scale_lr:
        scale = cfg.get("auto_scale_lr") or {}
        if "base_batch_size" not in scale:
            raise UserInputError(
                f"--auto-scale-lr: config {args.config} has no auto_scale_lr.base_batch_size: "
                "add auto_scale_lr = dict(enable=False, base_batch_size=N) to it"
            )
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        # mmengine finds <work_dir>/last_checkpoint; we step in only when it names a wreck (killed save)
        found, note = resume_checkpoint(cfg.work_dir)
        if note:
            print(f"note: {note}", flush=True)
        cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UserInputError(
                f"--resume checkpoint {args.resume} does not exist: give an existing "
                "checkpoint, or --resume alone to continue from the work dir"
            )
        load_checkpoint_file(args.resume)  # a truncated or unsafe file is one line, not a traceback
        cfg.resume, cfg.load_from = True, args.resume


def main(argv: Sequence[str] | None = None) -> int:
    """Check every input, then train with mmengine's runner; 0, or `EXIT_PREEMPTED` when stopped by a signal."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    apply_train_args(cfg, args)
    if args.vis:
        add_vis_backends(cfg, args.vis, args.config)
    if args.classes_from_annotations:
        classes.use_annotation_classes(cfg, "train_dataloader", args.config)
    loader_keys = ["train_dataloader", "val_dataloader"] if uses_validation(cfg) else ["train_dataloader"]
    if is_segmentation(cfg, args.config):
        for note in check_seg_data(cfg, loader_keys, args.check_images, args.skip_unreadable):
            print(f"note: {note}", flush=True)
    else:
        check_det_data(cfg, loader_keys)
    check_pretrained_checkpoint(cfg)
    if args.check_images:  # the slow check last, once the cheap ones passed
        check_images(cfg, loader_keys, skip_training=args.skip_unreadable)
    use_atomic_checkpoints(cfg)
    use_checked_loading(cfg, loader_keys, skip_training=args.skip_unreadable)
    use_resumable_loops(cfg)

    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    with stop_signals() as request, stop_on_unreadable(fix_for_training):
        runner = build_runner(cfg)
        preemption = PreemptionHook(request)
        runner.register_hook(preemption)
        runner.register_hook(RngStateHook())
        runner.train()
    if preemption.saved is None:
        return 0
    if is_main_process():
        print(stopped_line(request, preemption.saved, "the same tools/train.py command and --resume"), file=sys.stderr)
    return EXIT_PREEMPTED
