"""Done-checks of a study's steps: a step counts as finished only when its outputs are whole and current.

- a pretraining: `final.pth` loads and its provenance records the model, curriculum, epochs, seed, loader
  mode and every recipe value the study asks for;
- a fine-tune: it reached its last iteration, from this very backbone file (the SHA-256 its provenance
  recorded), so a new pretraining trains it again rather than showing old numbers beside a new cost;
- a test: its metrics file is newer than the checkpoint and agrees with an outside re-computation
  (pycocotools on the dumped detections; a numpy confusion matrix on the saved label maps).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from etcore.checkpoint_io import file_sha256, load_checkpoint_file
from etcore.errors import UserInputError
from etcore.formats import METRICS_FILE, PRETRAIN_FINAL, PROVENANCE_FILE, SEG_METRICS_FILE
from finetune.det_metrics import verify_detections
from finetune.seg_metrics import verify_seg_predictions

REPO = Path(__file__).resolve().parents[1]


def pretrain_is_done(
    work_dir: Path,
    model: str,
    curriculum: str,
    epochs: int,
    seed: int,
    lowfreq: str | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> bool:
    """A finished pretraining run: final.pth readable with the provenance we asked for.

    `lowfreq` and every `recipe` setting (e.g. {"hflip": 0.0}) are checked when given; `epochs` is the
    curriculum's `--epochs` (the equivalent-epoch budget for efficienttrain++).
    """
    final = work_dir / PRETRAIN_FINAL
    if not final.is_file():
        return False
    try:
        prov = load_checkpoint_file(final).get("provenance", {})
    except UserInputError:
        return False
    recorded_epochs = prov.get("budget_epochs") if prov.get("budget_epochs") is not None else prov.get("epochs")
    return (
        prov.get("model_name") == model
        and prov.get("curriculum", {}).get("name") == curriculum
        and recorded_epochs == epochs
        and prov.get("seed") == seed
        and (lowfreq is None or prov.get("lowfreq") == lowfreq)
        and all(_same(prov.get("recipe", {}).get(key), value) for key, value in (recipe or {}).items())
    )


def _same(recorded: Any, wanted: Any) -> bool:
    """Recorded and wanted settings agree: numbers by value (0 == 0.0), sequences element by element."""
    if isinstance(recorded, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(recorded) == len(wanted) and all(_same(a, b) for a, b in zip(recorded, wanted))
    return recorded == wanted


def final_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's `last_checkpoint` points at, if it exists."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    path = path if path.is_absolute() else REPO / path
    return path if path.is_file() else None


def train_is_done(work_dir: Path, final_name: str) -> bool:
    """mmengine's `last_checkpoint` names the run's last checkpoint (`iter_<max_iters>.pth` or `epoch_<N>.pth`)."""
    ckpt = final_checkpoint(work_dir)
    return ckpt is not None and ckpt.name == final_name


def finetune_is_done(work_dir: Path, final_name: str, backbone: Path) -> bool:
    """The fine-tune reached its last checkpoint from this very backbone file (the SHA-256 its provenance recorded)."""
    if not train_is_done(work_dir, final_name) or not backbone.is_file():
        return False
    try:
        recorded = json.loads((work_dir / PROVENANCE_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == file_sha256(backbone)


def metrics_are_current(work_dir: Path) -> bool:
    """coco_metrics.json exists, belongs to the final checkpoint, and pycocotools agrees with it."""
    metrics, ckpt = work_dir / METRICS_FILE, final_checkpoint(work_dir)
    if not metrics.is_file() or ckpt is None or metrics.stat().st_mtime < ckpt.stat().st_mtime:
        return False
    try:
        verify_detections(work_dir, REPO)
    except (RuntimeError, OSError, ValueError, KeyError):
        return False
    return True


def seg_metrics_are_current(work_dir: Path, modes: Sequence[str]) -> bool:
    """seg_metrics.json exists, belongs to the final checkpoint, holds `modes`, and the numpy check agrees."""
    metrics, ckpt = work_dir / SEG_METRICS_FILE, final_checkpoint(work_dir)
    if not metrics.is_file() or ckpt is None or metrics.stat().st_mtime < ckpt.stat().st_mtime:
        return False
    try:
        if not set(modes) <= set(json.loads(metrics.read_text())["metrics"]):
            return False
        verify_seg_predictions(work_dir, REPO)
    except (RuntimeError, OSError, ValueError, KeyError, TypeError):
        return False
    return True
