"""How much wall time a curriculum saves, measured, against the compute ratio `equivalent_epochs()` promises.

Step mode: one engine training step (FFT low-frequency crop of a final-size batch, mixup, forward,
loss, backward, clipping, AdamW, EMA: the per-step work of `Pretrainer.train_epoch`, with the run's
resolved recipe) is timed at every input size the curriculum and its baseline use, all sizes in the
same interleaved rounds. Each round gives seconds per image at each size, hence a predicted wall time
of each curriculum (sum over stages of epochs x images per epoch x seconds per image at its size) and a
measured speedup = baseline time / curriculum time. The theoretical speedup is
baseline.equivalent_epochs() / curriculum.equivalent_epochs(); the goal is measured/theoretical >= 0.97.

End-to-end mode (`end_to_end`) really trains both curricula through `pretraining.cli.main` and reads the
same ratios from their `log.jsonl` files.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from bench.timing import Spread, interleaved_rounds
from pretraining.curriculum import Curriculum, Stage, build_curriculum, stage_batch

IMAGENET_TRAIN_IMAGES = 1_281_167


# --- arithmetic (pure; tested on fabricated timings) ------------------------------------------
def theoretical_speedup(baseline: Curriculum, curriculum: Curriculum) -> float:
    """Compute of the baseline over compute of the curriculum, in equivalent full-size epochs."""
    return baseline.equivalent_epochs() / curriculum.equivalent_epochs()


def predict_wall_time(curriculum: Curriculum, seconds_per_image: Mapping[int, float], images_per_epoch: int) -> float:
    """Seconds to train the whole curriculum if every image at size B costs `seconds_per_image[B]`."""
    missing = sorted({s.input_size for s in curriculum.stages} - set(seconds_per_image))
    if missing:
        raise KeyError(f"no timing for input size(s) {missing}")
    return sum(stage.epochs * images_per_epoch * seconds_per_image[stage.input_size] for stage in curriculum.stages)


def stage_sizes(*curricula: Curriculum) -> list[int]:
    """Every input size the curricula train at, ascending."""
    return sorted({stage.input_size for c in curricula for stage in c.stages})


@dataclass(frozen=True)
class SpeedupReport:
    """Measured and theoretical speedup of `curriculum` over `baseline`, with the per-size table."""

    curriculum: Curriculum
    baseline: Curriculum
    batches: dict[int, int]
    step_seconds: dict[int, list[float]]  # per size, one value per round
    images_per_epoch: int

    @property
    def rounds(self) -> int:
        return len(next(iter(self.step_seconds.values())))

    def seconds_per_image(self, r: int) -> dict[int, float]:
        return {size: times[r] / self.batches[size] for size, times in self.step_seconds.items()}

    def speedups(self) -> list[float]:
        """Measured speedup in each round (both predictions from that round's timings)."""
        out = []
        for r in range(self.rounds):
            per_image = self.seconds_per_image(r)
            out.append(
                predict_wall_time(self.baseline, per_image, self.images_per_epoch)
                / predict_wall_time(self.curriculum, per_image, self.images_per_epoch)
            )
        return out

    @property
    def theoretical(self) -> float:
        return theoretical_speedup(self.baseline, self.curriculum)

    def measured(self) -> Spread:
        return Spread.of(self.speedups())

    def measured_over_theoretical(self) -> Spread:
        return Spread.of([s / self.theoretical for s in self.speedups()])

    def size_rows(self) -> list[dict[str, Any]]:
        """Per size: step time, images/s, and per-image cost relative to the final size, measured vs (B/final)^2."""
        final = self.curriculum.final_size
        rows = []
        for size in sorted(self.step_seconds):
            relative = [
                self.step_seconds[size][r] / self.batches[size] / (self.step_seconds[final][r] / self.batches[final])
                for r in range(self.rounds)
            ]
            step = Spread.of(self.step_seconds[size])
            rows.append(
                {
                    "input_size": size,
                    "batch": self.batches[size],
                    "step_s": step.to_dict(),
                    "images_per_s": self.batches[size] / step.median,
                    "cost_vs_final_measured": Spread.of(relative).to_dict(),
                    "cost_vs_final_theoretical": (size / final) ** 2,
                }
            )
        return rows

    def predicted_hours(self) -> dict[str, float]:
        """Median predicted wall time of each curriculum on this machine, in hours."""
        hours = {}
        for key, cur in (("baseline", self.baseline), ("curriculum", self.curriculum)):
            values = [
                predict_wall_time(cur, self.seconds_per_image(r), self.images_per_epoch) / 3600
                for r in range(self.rounds)
            ]
            hours[key] = Spread.of(values).median
        return hours

    def to_dict(self) -> dict[str, Any]:
        return {
            "curriculum": self.curriculum.to_dict(),
            "baseline": self.baseline.to_dict(),
            "images_per_epoch": self.images_per_epoch,
            "rounds": self.rounds,
            "theoretical_speedup": self.theoretical,
            "measured_speedup": self.measured().to_dict(),
            "measured_over_theoretical": self.measured_over_theoretical().to_dict(),
            "predicted_hours": self.predicted_hours(),
            "sizes": self.size_rows(),
            "step_seconds_per_round": {str(k): v for k, v in self.step_seconds.items()},
        }

    def table(self) -> str:
        lines = [f"{'size':>5} {'batch':>5} {'step ms':>22} {'img/s':>8} {'cost/img vs final':>26} {'(B/final)^2':>11}"]
        for row in self.size_rows():
            step = Spread.from_dict(row["step_s"]).scaled(1e3)
            cost = row["cost_vs_final_measured"]
            lines.append(
                f"{row['input_size']:>5} {row['batch']:>5} {step.fmt(1):>22} {row['images_per_s']:>8.1f} "
                f"{Spread.from_dict(cost).fmt():>26} "
                f"{row['cost_vs_final_theoretical']:>11.3f}"
            )
        hours = self.predicted_hours()
        lines += [
            f"predicted wall time ({self.images_per_epoch} images/epoch): baseline {hours['baseline']:.1f} h, "
            f"{self.curriculum.name} {hours['curriculum']:.1f} h",
            f"theoretical speedup (equivalent epochs {self.baseline.equivalent_epochs():.1f} / "
            f"{self.curriculum.equivalent_epochs():.1f}): {self.theoretical:.3f}x",
            f"measured speedup, median [interquartile range] of {self.rounds} rounds: {self.measured().fmt()}x",
            f"measured/theoretical: {self.measured_over_theoretical().fmt()}  (goal >= 0.97)",
        ]
        return "\n".join(lines)


# --- the timed step -----------------------------------------------------------------------------
def resolve_recipe(
    model: str,
    curriculum: str,
    epochs: int,
    final_size: int,
    batch_size: int,
    device: str,
    lowfreq: str,
    extra_args: Sequence[str] = (),
) -> tuple[Any, Curriculum]:
    """The engine's fully resolved config and curriculum for these flags (via `pretraining.cli.resolve_config`)."""
    from pretraining.cli import resolve_config

    argv = [
        "--model",
        model,
        "--curriculum",
        curriculum,
        "--epochs",
        str(epochs),
        "--final-size",
        str(final_size),
        "--batch-size",
        str(batch_size),
        "--device",
        device,
        "--lowfreq",
        lowfreq,
        "--data",
        "unused-by-benchmark",
        "--work-dir",
        "unused-by-benchmark",
        *extra_args,
    ]
    config, _, resolved, _ = resolve_config(argv)
    return config, resolved


class TrainStep:
    """One training step of the engine at `size` on a fixed synthetic batch (callable; returns nothing).

    The batch arrives at the final size, as the loader delivers it in the engine's default `fft` mode,
    and is cropped to `size` in the frequency domain; with `lowfreq='resize'` it arrives at `size`.
    """

    def __init__(
        self, config: Any, size: int, batch: int, num_classes: int, device: torch.device, seed: int = 0
    ) -> None:
        from pretraining.model import build_model, resize_model_input
        from pretraining.optim import build_criterion, build_ema, build_mixup, build_optimizer, peak_lr

        torch.manual_seed(seed)
        final = config.final_size
        self.config, self.size, self.device = config, size, device
        self.model, _ = build_model(config.model, num_classes, final, config.model_kwargs, config.drop_path)
        self.model.to(device).train()
        resize_model_input(self.model, size)
        self.optimizer = build_optimizer(self.model, config, peak_lr(config, batch))
        self.ema = build_ema(self.model, config)
        self.mixup = build_mixup(config, num_classes)
        self.criterion = build_criterion(config, self.mixup)
        self.crop = config.lowfreq == "fft" and size < final
        side = final if config.lowfreq == "fft" else size
        self.x = torch.randn(batch, 3, side, side, device=device)
        self.y = torch.randint(0, num_classes, (batch,), device=device)
        fp16 = config.amp and device.type == "cuda" and config.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        self.amp_dtype = torch.bfloat16 if (device.type == "cpu" or config.amp_dtype == "bfloat16") else torch.float16
        self.updates = 0

    def __call__(self) -> None:
        from pretraining.frequency import low_frequency_crop
        from pretraining.optim import optimizer_update

        x, y = self.x, self.y
        x = low_frequency_crop(x, self.size) if self.crop else x.clone()  # mixup mixes in place
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.config.amp
            else contextlib.nullcontext()
        )
        with autocast:
            loss = self.criterion(self.model(x), y)
        loss.item()  # the engine reads the loss every step (divergence check)
        self.scaler.scale(loss).backward()
        self.updates += 1
        optimizer_update(self.model, self.optimizer, self.scaler, self.config.clip_grad, self.ema, self.updates)


def batch_for_size(config: Any, size: int, curriculum: Curriculum | None = None) -> int:
    """Per-device batch at `size`, as the engine's `stage_batch` gives it to the first stage of that size in
    `curriculum` (or to a stage without its own batch_scale)."""
    stage = next((s for s in curriculum.stages if s.input_size == size), None) if curriculum else None
    stage = stage or Stage(0, 1, size, 0.0)
    return stage_batch(stage, config.final_size, config.batch_size, config.accum_steps, config.scale_batch_with_size)[0]


def measure_steps(
    config: Any,
    sizes: Sequence[int],
    num_classes: int,
    device: torch.device,
    rounds: int,
    warmup: int,
    curriculum: Curriculum | None = None,
) -> tuple[dict[int, int], dict[int, list[float]]]:
    """Per-size batches and step seconds (one value per interleaved round) for a resolved recipe."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # what the engine sets unless --deterministic
    batches = {size: batch_for_size(config, size, curriculum) for size in sizes}
    steps = {size: TrainStep(config, size, batches[size], num_classes, device) for size in sizes}
    times = interleaved_rounds({str(s): steps[s] for s in sizes}, rounds=rounds, warmup=warmup)
    return batches, {int(k): v for k, v in times.items()}


def step_benchmark(
    model: str,
    curriculum: str,
    epochs: int,
    final_size: int,
    batch_size: int,
    device: str,
    lowfreq: str,
    rounds: int,
    warmup: int,
    num_classes: int,
    images_per_epoch: int,
    baseline_epochs: int | None = None,
    extra_args: Sequence[str] = (),
) -> SpeedupReport:
    """Time the engine's step at every size of `curriculum` and its baseline; return the speedup report."""
    from pretraining.distributed import resolve_device

    config, cur = resolve_recipe(model, curriculum, epochs, final_size, batch_size, device, lowfreq, extra_args)
    baseline = build_curriculum("baseline", baseline_epochs or cur.total_epochs, final_size=final_size)
    torch_device = resolve_device(config.device, 0)
    sizes = stage_sizes(cur, baseline)
    batches, times = measure_steps(config, sizes, num_classes, torch_device, rounds, warmup, cur)
    return SpeedupReport(cur, baseline, batches, times, images_per_epoch)


# --- end-to-end from pretraining logs -----------------------------------------------------------
def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a `log.jsonl` (docs/FORMATS.md), in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def log_times(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Total epoch time (train + stage switch + evaluation), training-loop time, final wall clock, and (in logs
    with the per-epoch timers) stage switches + training loops, the provenance's train_time_s."""
    train, previous = 0.0, 0
    for record in records:
        images = record["images_seen"] - previous
        previous = record["images_seen"]
        train += images / record["images_per_s"]
    times = {
        "epoch_time_s": sum(r["epoch_time_s"] for r in records),
        "train_time_s": train,
        "wall_clock_s": records[-1]["wall_clock_s"],
    }
    if all("train_s" in r and "stage_switch_s" in r for r in records):  # logs with the per-epoch timers
        times["train_s"] = sum(r["stage_switch_s"] + r["train_s"] for r in records)
    return times


def log_speedups(baseline: Sequence[Mapping[str, Any]], curriculum: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Baseline time / curriculum time for each of `log_times`' measures."""
    b, c = log_times(baseline), log_times(curriculum)
    return {key: b[key] / c[key] for key in b}
