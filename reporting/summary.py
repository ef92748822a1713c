"""The short answer a demo or study prints: per task its headline metric, baseline against each curriculum, the
difference with its 95% interval and whether it is within noise, and what each pretraining cost.

Arms are (curriculum, epochs) over seeds. With two or more seeds in both arms the interval is over seeds,
paired by seed; with one seed it is the evaluations' own sampling error (`reporting.noise`): binomial for
top-1, the bootstrap draws of `tools/test.py --bootstrap` for AP and mIoU (paired draw by draw when both runs
were tested on the same images). The full table (every metric, every run) is `tools/compare.py`'s.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

from reporting.noise import (
    Estimate,
    binomial_se,
    draws_se,
    mean_interval,
    reading,
    sampling_difference,
    seed_difference,
)
from reporting.runs import BASELINE, Run

# (label, the runs' `detector`, metrics block, metric): the number each task is judged by. The tiny demo
# detectors' AP is small and coarse, so their headline is AP50 (box AP is in the full table).
HEADLINES = (
    ("RetinaNet", "retinanet", "bbox", "AP50"),
    ("Cascade Mask R-CNN", "cascade_mask_rcnn", "bbox", "AP50"),
    ("UperNet", "upernet", "single_scale", "mIoU"),
)


@dataclass
class Measure:
    """One arm's values of one metric, by seed, with what each evaluation says about its own error."""

    values: dict[int, float] = field(default_factory=dict)
    ses: dict[int, float] = field(default_factory=dict)  # sampling standard errors (one evaluation)
    draws: dict[int, tuple[tuple, list[float]]] = field(default_factory=dict)  # (pairing key, bootstrap draws)

    def estimate(self) -> Estimate:
        seeds = sorted(self.values)
        if len(seeds) >= 2:
            return mean_interval([self.values[s] for s in seeds])
        value = self.values[seeds[0]]
        se = self.ses.get(seeds[0])
        if se is None:
            return Estimate(value, value, value, "none")
        return Estimate(value, value - 1.96 * se, value + 1.96 * se, "sampling")


def difference(candidate: Measure, reference: Measure) -> Estimate:
    """candidate - reference: over common seeds when there are two or more, else one evaluation's error."""
    common = sorted(set(candidate.values) & set(reference.values))
    if len(common) >= 2:
        return seed_difference([candidate.values[s] for s in common], [reference.values[s] for s in common])
    a_seed, b_seed = (common[0], common[0]) if common else (min(candidate.values), min(reference.values))
    a, b = candidate.values[a_seed], reference.values[b_seed]
    a_se, b_se = candidate.ses.get(a_seed), reference.ses.get(b_seed)
    if a_se is None or b_se is None:
        return Estimate(a - b, a - b, a - b, "none")
    paired = None
    a_draws, b_draws = candidate.draws.get(a_seed), reference.draws.get(b_seed)
    if a_draws and b_draws and a_draws[0] == b_draws[0]:  # same images, same resamples: pair draw by draw
        paired = draws_se([x - y for x, y in zip(a_draws[1], b_draws[1])])
    return sampling_difference(a, b, a_se, b_se, paired)


def arm_of(run: Run) -> tuple[str, object]:
    return (run.curriculum, run.pretrain.get("epochs"))


def measures(runs: Sequence[Run]) -> dict[str, dict[tuple, Measure]]:
    """{metric label: {arm: Measure}} for top-1 (from the pretrainings) and every headline present."""
    found: dict[str, dict[tuple, Measure]] = {}
    for run in runs:
        arm, seed, info = arm_of(run), run.pretrain.get("seed", run.seed), run.pretrain
        if info.get("top1") is not None and seed is not None:
            top1 = found.setdefault("pretraining: top-1 (%)", {}).setdefault(arm, Measure())
            top1.values[seed] = float(info["top1"])
            if info.get("val_images"):
                top1.ses[seed] = binomial_se(float(info["top1"]), int(info["val_images"]))
        for label, model, block, metric in HEADLINES:
            value = (run.metrics.get(block) or {}).get(metric)
            if run.detector != model or value is None or run.seed is None:
                continue
            measure = found.setdefault(f"{label}: {_metric_name(block, metric)}", {}).setdefault(arm, Measure())
            measure.values[run.seed] = float(value)
            boot = run.bootstrap.get(block) or {}
            if boot.get(metric):
                measure.ses[run.seed] = draws_se(boot[metric])
                measure.draws[run.seed] = (boot["key"], boot[metric])
    return found


def _metric_name(block: str, metric: str) -> str:
    return {"bbox": f"box {metric}", "segm": f"mask {metric}"}.get(block, f"{metric} (%)")


def _arm_text(arm: tuple) -> str:
    curriculum, epochs = arm
    return f"{curriculum} {epochs} ep" if epochs is not None else curriculum


def costs(runs: Sequence[Run]) -> dict[tuple, dict[str, float]]:
    """Per arm, the mean training time (s) and equivalent epochs of its pretrainings."""
    seen: dict[tuple, dict[int, dict]] = {}
    for run in runs:
        seed = run.pretrain.get("seed", run.seed)
        if seed is not None:
            seen.setdefault(arm_of(run), {})[seed] = run.pretrain
    result = {}
    for arm, by_seed in seen.items():
        times = [p["train_time_s"] for p in by_seed.values() if isinstance(p.get("train_time_s"), (int, float))]
        equivalent = [p["equivalent_epochs"] for p in by_seed.values() if p.get("equivalent_epochs") is not None]
        result[arm] = {
            "train_time_s": statistics.fmean(times) if times else None,
            "equivalent_epochs": statistics.fmean(equivalent) if equivalent else None,
        }
    return result


def compact_table(runs: Sequence[Run]) -> str:
    """Markdown: per headline metric, the baseline arm against every other arm, the difference and its reading;
    then the cost of every arm. One baseline arm is the reference (the one with the most epochs if several)."""
    found = measures(runs)
    arms = sorted({arm for by_arm in found.values() for arm in by_arm}, key=lambda a: (a[0] != BASELINE, str(a)))
    baselines = [arm for arm in arms if arm[0] == BASELINE]
    if not baselines:
        return "(no baseline run: nothing to compare against)\n"
    reference = max(baselines, key=lambda a: a[1] or 0)
    others = [arm for arm in arms if arm != reference]
    lines = [
        "| metric | " + " | ".join([_arm_text(reference), *map(_arm_text, others)]) + " | difference (95%) | reading |",
        "|---|" + "---:|" * (1 + len(others)) + "---|---|",
    ]
    order = ["pretraining: top-1 (%)"] + [
        f"{label}: {_metric_name(block, metric)}" for label, _, block, metric in HEADLINES
    ]
    for metric, by_arm in sorted(found.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        if reference not in by_arm:
            continue
        cells = [by_arm[reference].estimate()] + [by_arm[a].estimate() if a in by_arm else None for a in others]
        texts = [_cell(cell) for cell in cells]
        diffs, readings = [], []
        for arm in others:
            if arm not in by_arm:
                continue
            delta = difference(by_arm[arm], by_arm[reference])
            diffs.append(
                f"{_arm_text(arm)}: {delta.value:+.1f}"
                + (f" [{delta.low:+.1f}, {delta.high:+.1f}]" if delta.basis != "none" else "")
            )
            readings.append(reading(delta, _arm_text(arm), _arm_text(reference)))
        lines.append(f"| {metric} | " + " | ".join(texts) + f" | {'; '.join(diffs)} | {'; '.join(readings)} |")
    cost = costs(runs)
    base_time = (cost.get(reference) or {}).get("train_time_s")
    time_cells, epoch_cells = [], []
    for arm in [reference, *others]:
        entry = cost.get(arm) or {}
        seconds, equivalent = entry.get("train_time_s"), entry.get("equivalent_epochs")
        ratio = f" ({seconds / base_time:.2f}x)" if seconds and base_time and arm != reference else ""
        time_cells.append(f"{seconds:.0f} s{ratio}" if seconds is not None else "n/a")
        epoch_cells.append(f"{equivalent:.1f}" if equivalent is not None else "n/a")
    lines.append("| cost: pretraining time | " + " | ".join(time_cells) + " | | |")
    lines.append("| cost: equivalent epochs | " + " | ".join(epoch_cells) + " | | |")
    basis = {e.basis for by_arm in found.values() for measure in by_arm.values() for e in [measure.estimate()]} - {
        "none"
    }
    note = (
        "Intervals: 95%, over seeds (paired by seed)."
        if basis == {"seeds"}
        else "Intervals: 95%, from one evaluation's own sampling error (binomial for top-1, bootstrap over the "
        "test images for AP and mIoU); they leave out the seed-to-seed spread of training, which is larger "
        "(run several seeds for it)."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def _cell(estimate: Estimate | None) -> str:
    if estimate is None:
        return "n/a"
    if estimate.basis == "none":
        return f"{estimate.value:.1f}"
    return f"{estimate.value:.1f} ±{estimate.half_width:.1f}"
