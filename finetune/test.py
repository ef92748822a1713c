"""`tools/test.py`: evaluate a trained detector on COCO and write `<work_dir>/coco_metrics.json`, or a semantic
segmentor on ADE20K and write `<work_dir>/seg_metrics.json` (docs/FORMATS.md); the config's default_scope
(`mmdet` or `mmseg`) says which.

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--out results.pkl]
        [--dump-detections [PREFIX]] [--tta] [--dump-predictions [DIR]] [--cfg-options k=v ...]
        [--classes-from-annotations] [--launcher L]

mmdet's / mmseg's tools/test.py command line. Detection numbers are mmdet's CocoMetric's (pycocotools
underneath); `--dump-detections` also keeps the raw detections in COCO results format (`PREFIX.bbox.json`,
and `PREFIX.segm.json` for instance segmentation; PREFIX defaults to `<work_dir>/detections`) so anyone
can re-evaluate them with pycocotools. Segmentation numbers are mmseg's IoUMetric's (mIoU, mAcc, aAcc);
`--tta` tests with the config's multi-scale + flip augmentation (mmseg's flag), and `--dump-predictions`
keeps every predicted label map (DIR defaults to `<work_dir>/predictions/<mode>`) for outside evaluation.
Missing inputs are one `error:` line (exit 2) before the runner starts.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Sequence

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process

import backbones  # noqa: F401  (registers TimmBackbone & co.; installs the checkpoint allowlist)
from etcore.checkpoint_io import file_sha256, write_text_atomic
from etcore.errors import UserInputError
from etcore.formats import DETECTIONS_PREFIX, METRICS_FILE, METRICS_SCHEMA, SEG_METRICS_FILE, SEG_PREDICTIONS_DIR
from etcore.paths import check_writable_dir
from finetune import classes
from finetune.config import (
    CFG_OPTIONS_HELP,
    LAUNCHERS,
    check_data,
    default_work_dir,
    evaluators_of,
    load_config,
    validate_annotations,
)
from finetune.runner import build_runner
from finetune.seg_metrics import iou_metrics, seg_record, write_seg_metrics
from finetune.segmentation import (
    DumpSegResults,
    check_seg_data,
    dump_predictions_to,
    is_segmentation,
    mode_name,
    use_test_time_augmentation,
)

# CocoMetric's result names -> the names of docs/FORMATS.md
AP_NAMES = {"mAP": "AP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm", "mAP_l": "APl"}
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
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help=CFG_OPTIONS_HELP)
    classes.add_argument(parser)
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


def coco_metrics(results: dict) -> dict:
    """{'bbox': {'AP': ..}, 'segm': {..}} from CocoMetric's {'coco/bbox_mAP': .., ...}."""
    metrics: dict = {}
    for key, value in results.items():
        match = re.fullmatch(r"(bbox|segm)_(mAP(?:_50|_75|_s|_m|_l)?)", key.split("/")[-1])
        if match:
            metrics.setdefault(match.group(1), {})[AP_NAMES[match.group(2)]] = float(value)
    return metrics


def load_detector_checkpoint(runner, checkpoint: str) -> dict:
    """Load the detector weights strictly (a checkpoint of another model is an error, not a warning).

    Uses the runner's own loader, so `runner.test()` does not read the file again.
    """
    try:
        return runner.load_checkpoint(checkpoint, map_location="cpu", strict=True)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(
            f"checkpoint {checkpoint} is corrupt or not a plain checkpoint ({reason}): "
            "give a file written by tools/train.py"
        ) from None
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        if "PytorchStreamReader" in detail:  # torch's zip reader: a truncated/damaged file, not another model
            raise UserInputError(
                f"checkpoint {checkpoint} is corrupt or truncated ({detail[:120]}...): "
                "give an intact file written by tools/train.py"
            ) from None
        raise UserInputError(
            f"checkpoint {checkpoint} does not fit config {runner.cfg.filename} ({detail}): "
            "give the checkpoint trained with this config"
        ) from None


def training_facts(checkpoint: dict, cfg: Config) -> tuple[int | None, str | None]:
    """(seed, pretrained backbone checkpoint) of the run that wrote `checkpoint`.

    mmengine stores the seed and the training config in the checkpoint's meta, so --cfg-options given
    to tools/train.py count even when tools/test.py is called without them; the test config is the
    fallback for checkpoints without that meta.
    """
    meta = checkpoint.get("meta") or {}
    seed = meta.get("seed", (cfg.get("randomness") or {}).get("seed"))
    pretrained = (cfg.get("model", {}).get("backbone") or {}).get("checkpoint")
    if isinstance(meta.get("cfg"), str):
        try:
            train_cfg = Config.fromstring(meta["cfg"], file_format=".py")
            pretrained = (train_cfg.get("model", {}).get("backbone") or {}).get("checkpoint")
        except Exception:  # noqa: BLE001  (an unreadable stored config only loses this detail)
            pass
    return (None if seed is None else int(seed)), pretrained


def metrics_record(
    args: argparse.Namespace, resolved: dict, results: dict, seed: int | None, pretrained: str | None
) -> dict:
    """The coco_metrics.json object of docs/FORMATS.md."""
    model = resolved.get("model") or {}
    backbone = model.get("backbone") or {}
    benchmark = resolved.get("benchmark") or {}
    detector = benchmark.get("detector") or re.sub(r"(?<!^)(?=[A-Z])", "_", str(model.get("type", ""))).lower()
    return {
        "schema": METRICS_SCHEMA,
        "config": args.config,
        "checkpoint": args.checkpoint,
        "detector": detector,
        "backbone": benchmark.get("backbone") or backbone.get("model_name") or backbone.get("type"),
        "schedule": benchmark.get("schedule"),
        "seed": seed,
        "pretrain_checkpoint": pretrained,
        "metrics": coco_metrics(results),
        "resolved_config": resolved,
    }


def _coco_evaluators(cfg: Config) -> list[dict]:
    evaluators = cfg.get("test_evaluator") or []
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    return [e for e in evaluators if e.get("type") == "CocoMetric"]


def _format_only(cfg: Config) -> bool:
    return any(e.get("format_only") for e in _coco_evaluators(cfg))


def empty_detection_metrics(cfg: Config) -> dict:
    """pycocotools' numbers for a run with no detections (its loadRes refuses an empty list)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    metrics: dict = {}
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    for evaluator in _coco_evaluators(cfg):
        kinds = evaluator.get("metric", "bbox")
        for iou_type in [kinds] if isinstance(kinds, str) else kinds:
            with contextlib.redirect_stdout(io.StringIO()):
                truth = COCO(evaluator["ann_file"])
                none = COCO()
                none.dataset = {
                    "images": truth.dataset["images"],
                    "categories": truth.dataset["categories"],
                    "annotations": [],
                }
                none.createIndex()
                scorer = COCOeval(truth, none, iou_type)
                scorer.evaluate(), scorer.accumulate(), scorer.summarize()
            metrics[iou_type] = {name: round(float(v), 3) for name, v in zip(names, scorer.stats[:6])}
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Check the inputs, test the checkpoint with mmengine's runner, write coco_metrics.json."""
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
            f"checkpoint {args.checkpoint} does not exist: give a detector checkpoint "
            "(tools/train.py writes them into its work dir)"
        )
    if is_segmentation(cfg, args.config):
        return _test_segmentor(args, cfg, resolved)
    for flag, given in (("--tta", args.tta), ("--dump-predictions", args.dump_predictions is not None)):
        if given:
            raise UserInputError(
                f"{flag} is for segmentation (mmseg) configs; {args.config} is a detection config: drop {flag}"
            )
    check_data(cfg, ["test_dataloader"])
    validate_annotations(cfg, ["test_dataloader"])
    if args.dump_detections is not None:
        prefix = args.dump_detections or osp.join(cfg.work_dir, DETECTIONS_PREFIX)
        evaluators = [e for e in evaluators_of(cfg, "test_evaluator") if e.get("type") == "CocoMetric"]
        if not evaluators:
            raise UserInputError(
                f"--dump-detections: config {args.config} has no CocoMetric test_evaluator: "
                "drop the flag or evaluate with CocoMetric"
            )
        for evaluator in evaluators:
            evaluator["outfile_prefix"] = prefix

    from mmdet.evaluation import DumpDetResults
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    checkpoint = load_detector_checkpoint(runner, args.checkpoint)
    classes.check_trained_classes(checkpoint, cfg, args.checkpoint)
    seed, pretrained = training_facts(checkpoint, cfg)
    results = runner.test()

    if is_main_process():
        record = metrics_record(args, resolved, results, seed, pretrained)
        if not record["metrics"] and not _format_only(cfg):
            # CocoMetric returns nothing when the detector kept no box at all; that result is still an
            # evaluation (AP 0 wherever ground truth exists), so score it with pycocotools.
            record["metrics"] = empty_detection_metrics(cfg)
            runner.logger.warning(
                "the detector kept no detections: every AP is 0 (-1 where the split has no ground truth of that size)"
            )
        if not record["metrics"]:
            runner.logger.warning(f"no COCO bbox/segm metrics came back (format_only?): {METRICS_FILE} not written")
        else:
            path = write_text_atomic(json.dumps(record, indent=2) + "\n", osp.join(runner.work_dir, METRICS_FILE))
            runner.logger.info(f"COCO metrics written to {path}")
    return 0


def _test_segmentor(args: argparse.Namespace, cfg: Config, resolved: dict) -> int:
    """The mmseg path: check the data, test (single scale, or --tta), write seg_metrics.json."""
    if args.dump_detections is not None:
        raise UserInputError(
            f"--dump-detections is for detection configs; {args.config} is a segmentation config: "
            "use --dump-predictions to keep the predicted label maps"
        )
    for note in check_seg_data(cfg, ["test_dataloader"]):
        print(f"note: {note}", flush=True)
    mode = mode_name(args.tta)
    if args.tta:
        use_test_time_augmentation(cfg, args.config)
    predictions = None
    if args.dump_predictions is not None:
        predictions = args.dump_predictions or osp.join(cfg.work_dir, SEG_PREDICTIONS_DIR, mode)
        check_writable_dir(predictions, "--dump-predictions")
        dump_predictions_to(cfg, args.config, predictions)

    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpSegResults(out_file_path=args.out))
    seed, pretrained = training_facts(load_detector_checkpoint(runner, args.checkpoint), cfg)
    results = runner.test()
    if is_main_process():
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
        )
        path, note = write_seg_metrics(record, osp.join(runner.work_dir, SEG_METRICS_FILE))
        if note:
            runner.logger.warning(note)
        runner.logger.info(f"segmentation metrics ({mode}) written to {path}")
    return 0
