"""The file contracts of docs/FORMATS.md in one place: format/schema strings and file names.

Every module that writes or reads one of these files imports the name from here, so a contract is
spelled once. No heavy imports: tools and reports import this at start-up.
"""

from __future__ import annotations

# --- pretraining work dir (tools/pretrain.py --work-dir W) ----------------------------------------
PRETRAIN_FORMAT = "efficienttrain-det/pretrain-v1"  # "format" of last.pth / final.pth / converted .pth
PRETRAIN_LAST = "last.pth"  # resume state, rewritten every epoch
PRETRAIN_FINAL = "final.pth"  # weights + provenance, written once at the end
PRETRAIN_LOG = "log.jsonl"  # one JSON object per epoch
PRETRAIN_CURRICULUM = "curriculum.json"  # the resolved curriculum (Curriculum.to_dict())
PRETRAIN_SUMMARY = "summary.csv"  # timm's per-epoch summary (timm.utils.update_summary)
PRETRAIN_TENSORBOARD = "tensorboard"  # --vis tensorboard: the event files' folder

# --- curriculum search work dir (tools/search_curriculum.py --work-dir W) -------------------------
SEARCH_LOG_FORMAT = "efficienttrain-det/curriculum-search-v1"
SEARCH_TRIALS = "trials.jsonl"
SEARCH_SUMMARY = "search_summary.json"
SEARCH_RESULT = "searched_curriculum.yaml"
SEARCH_PLOT = "search_path.png"

# --- fine-tuning work dir (tools/train.py / tools/test.py --work-dir D) ---------------------------
PROVENANCE_FILE = "pretrain_provenance.json"  # written by PretrainProvenanceHook
METRICS_SCHEMA = "efficienttrain-det/metrics-v1"  # "schema" of coco_metrics.json
METRICS_FILE = "coco_metrics.json"  # written by tools/test.py (detection)
DETECTIONS_PREFIX = "detections"  # <D>/detections.{bbox,segm}.json (--dump-detections)
SEG_METRICS_SCHEMA = "efficienttrain-det/seg-metrics-v1"  # "schema" of seg_metrics.json
SEG_METRICS_FILE = "seg_metrics.json"  # written by tools/test.py (semantic segmentation)
SEG_MODES = ("single_scale", "ms_flip")  # seg_metrics.json "metrics" blocks: plain test, and with --tta
SEG_PREDICTIONS_DIR = "predictions"  # <D>/predictions/<mode>/<image>.png (--dump-predictions)
UNREADABLE_IMAGES_FILE = "unreadable_images.txt"  # <D>/: training images skipped (--skip-unreadable), appended
UNREADABLE_IMAGES_KEY = "unreadable_images"  # checkpoint meta and coco/seg_metrics.json: those images' paths

# --- converted checkpoints and reports --------------------------------------------------------------
TIMM_STATE_DICT_FORMAT = "efficienttrain-det/timm-state-dict"  # safetensors header "format"
COMPARE_SCHEMA = "efficienttrain-det/compare-v1"  # tools/compare.py --format json
DEMO_DATA_STAMP = "demo_data.json"  # completeness stamp of generated demo data
