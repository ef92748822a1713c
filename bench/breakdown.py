"""Where a real pretraining run's time went, stage by stage, from its `log.jsonl` (docs/FORMATS.md).

Each epoch record holds the engine's own timers; this module sums them per stage and per image:

* loader: open + decode + transform per image, wall and CPU time in whichever process loaded it (with
  workers, the per-worker cost: W workers deliver about W / loader-time images per second when they have
  a core each). `resize` mode's LANCZOS and `direct` mode's whole pipeline are inside it.
* wait: time the training loop waited for batches, per image (the first batch of a stage includes the
  workers' start-up); a loader that keeps up leaves only that.
* step: the rest of the loop (transfer, mixup, forward, backward, optimizer) per image, and the FFT crop
  of the batch (`fft` mode) per image.
* per epoch: evaluation (only the epochs that validated count it), the `last.pth` write, and the rest of
  the bookkeeping (log line, all-reduce, progress), from the wall clock's step between records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

TIMER_FIELDS = ("stage_switch_s", "first_batch_s", "data_wait_s", "lowfreq_s", "step_s", "loader_s", "train_s")


@dataclass(frozen=True)
class StageTimes:
    """One stage's sums over its epochs (seconds) and image count."""

    stage: int
    input_size: int
    lowfreq: str
    workers: int
    epochs: int
    images: int
    stage_switch_s: float  # entering the stage (model resize, transform, loader)
    first_batch_s: float  # the stage's first batch (worker start-up)
    data_wait_s: float
    lowfreq_s: float
    step_s: float
    optimizer_s: float
    loader_s: float
    loader_cpu_s: float
    train_s: float
    eval_s: float
    evaluations: int
    checkpoint_s: float  # last.pth writes after this stage's epochs (the run's last one is not logged)
    checkpoints: int
    other_s: float  # the rest of the wall clock: logging and bookkeeping between epochs
    wall_s: float  # the wall clock's advance over the stage's epochs

    def per_image_ms(self, name: str) -> float:
        return 1e3 * getattr(self, name) / self.images if self.images else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _missing(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({name for r in records for name in TIMER_FIELDS if name not in r})


def stage_times(records: Sequence[Mapping[str, Any]]) -> list[StageTimes]:
    """Per-stage sums of a run's log records (written by a pretraining with the per-epoch timers)."""
    if not records:
        raise ValueError("the log has no epoch records")
    missing = _missing(records)
    if missing:
        raise ValueError(f"the log lacks the per-epoch timers {missing[:3]}: it was written before they existed")
    rows: list[dict[str, Any]] = []
    previous_wall, previous_images = 0.0, 0
    for k, record in enumerate(records):
        wall_step = record["wall_clock_s"] - previous_wall
        previous_wall = record["wall_clock_s"]
        images = record["images_seen"] - previous_images
        previous_images = record["images_seen"]
        # the next record carries this epoch's last.pth write (it happens after the record is written)
        checkpoint = records[k + 1].get("checkpoint_s") if k + 1 < len(records) else None
        # the wall clock's step also holds the previous epoch's log line and checkpoint write
        earlier_checkpoint = record.get("checkpoint_s", 0.0) if k > 0 else 0.0
        if not rows or rows[-1]["stage"] != record["stage"]:
            rows.append(
                dict(
                    stage=record["stage"],
                    input_size=record["input_size"],
                    lowfreq=record.get("lowfreq") or "-",
                    workers=record.get("workers", 0),
                    epochs=0,
                    images=0,
                    **{name: 0.0 for name in TIMER_FIELDS},
                    optimizer_s=0.0,
                    loader_cpu_s=0.0,
                    eval_s=0.0,
                    evaluations=0,
                    checkpoint_s=0.0,
                    checkpoints=0,
                    other_s=0.0,
                    wall_s=0.0,
                )
            )
        row = rows[-1]
        row["epochs"] += 1
        row["images"] += images
        for name in (*TIMER_FIELDS, "optimizer_s", "loader_cpu_s", "eval_s"):
            row[name] += record.get(name, 0.0)
        row["evaluations"] += record.get("top1") is not None
        if checkpoint is not None:
            row["checkpoint_s"] += checkpoint
            row["checkpoints"] += 1
        row["other_s"] += max(0.0, wall_step - record["epoch_time_s"] - earlier_checkpoint)
        row["wall_s"] += wall_step
    return [StageTimes(**row) for row in rows]


def breakdown_table(stages: Sequence[StageTimes]) -> str:
    """One line per stage: per-image loader/wait/step/FFT in ms, per-epoch eval/checkpoint/other in s."""
    lines = [
        f"{'stage':>5} {'size':>4} {'mode':>6} {'ep':>3} {'images':>7} | {'loader ms/img':>13} {'cpu':>6} "
        f"{'wait':>6} {'step':>7} {'fft':>5} | {'start s':>7} {'eval s/ep':>9} {'ckpt s/ep':>9} "
        f"{'other s/ep':>10} | {'train s':>8} {'wall s':>8}"
    ]
    for s in stages:
        evals = s.eval_s / s.evaluations if s.evaluations else 0.0
        ckpt = s.checkpoint_s / s.checkpoints if s.checkpoints else float("nan")
        lines.append(
            f"{s.stage:>5} {s.input_size:>4} {s.lowfreq:>6} {s.epochs:>3} {s.images:>7} | "
            f"{s.per_image_ms('loader_s'):>13.2f} {s.per_image_ms('loader_cpu_s'):>6.2f} "
            f"{s.per_image_ms('data_wait_s'):>6.2f} {s.per_image_ms('step_s'):>7.2f} "
            f"{s.per_image_ms('lowfreq_s'):>5.2f} | {s.stage_switch_s + s.first_batch_s:>7.2f} "
            f"{evals:>9.2f} {ckpt:>9.2f} {s.other_s / s.epochs:>10.2f} | "
            f"{s.stage_switch_s + s.train_s:>8.1f} {s.wall_s:>8.1f}"
        )
    train = sum(s.stage_switch_s + s.train_s for s in stages)
    wall = sum(s.wall_s for s in stages)
    evaluation = sum(s.eval_s for s in stages)
    waited = sum(s.data_wait_s - s.first_batch_s for s in stages)
    lines.append(
        f"total: wall {wall:.1f} s = train {train:.1f} s (of which waiting for data after each stage's first "
        f"batch {waited:.1f} s) + eval {evaluation:.1f} s + checkpoints and bookkeeping "
        f"{wall - train - evaluation:.1f} s"
    )
    lines.append(
        "loader/cpu: per-image time in the loading process (per worker); wait: the loop waiting for batches; "
        "step: transfer+forward+backward+optimizer; start: stage switch + first batch (worker start-up)"
    )
    return "\n".join(lines)
