"""Transfer against pretraining cost: every (curriculum, epochs) arm as a point with its 95% interval over seeds,
and the seed-paired differences to the baseline at matched compute and at matched measured time.

A point's x is its pretraining cost, as equivalent full-size epochs (what the curriculum's stages cost in
pixels) or as measured training time; its y is the mean over seeds of top-1, RetinaNet box AP / AP50 or
UperNet mIoU, with a Student-t interval. "Matched compute" pairs each curriculum point with the baseline point
of the nearest equivalent epochs, seed by seed (`reporting.noise.seed_difference`); "matched measured time" does
the same by the nearest mean training seconds, where the machine's data pipeline, not pixels, may set the cost.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from reporting.noise import Estimate, mean_interval, reading, seed_difference
from reporting.runs import BASELINE, Run

# (label, the runs' `detector` (None: the pretraining itself), metrics block, metric)
METRICS = (
    ("top-1 (%)", None, None, "top1"),
    ("RetinaNet box AP", "retinanet", "bbox", "AP"),
    ("RetinaNet box AP50", "retinanet", "bbox", "AP50"),
    ("UperNet mIoU (%)", "upernet", "single_scale", "mIoU"),
)
AXES = (("equivalent_epochs", "equivalent full-size epochs"), ("train_time_s", "measured training time (s)"))


@dataclass
class Point:
    """One arm of one metric: its cost and its value per seed. `series` is the line it belongs to: the
    pretraining folder without its epochs and seed (`<entry>_<curriculum>` in a study), else the curriculum."""

    curriculum: str
    epochs: float
    series: str = ""
    values: dict[int, float] = field(default_factory=dict)
    equivalent: dict[int, float] = field(default_factory=dict)
    time_s: dict[int, float] = field(default_factory=dict)

    def cost(self, axis: str) -> float | None:
        found = self.equivalent if axis == "equivalent_epochs" else self.time_s
        return statistics.fmean(found.values()) if found else None

    def estimate(self) -> Estimate:
        return mean_interval([self.values[s] for s in sorted(self.values)])

    @property
    def label(self) -> str:
        return f"{self.series or self.curriculum} {self.epochs:g} ep"


def series_of(run: Run) -> str:
    """The pretraining's folder name without `_e<epochs>_s<seed>` (a study's layout), else its curriculum."""
    folder = Path(str(run.pretrain.get("checkpoint") or "")).parent.name
    match = re.fullmatch(r"(.+)_e\d+_s\d+", folder)
    return match.group(1) if match else run.curriculum


def frontier_points(runs: Sequence[Run]) -> dict[str, dict[str, list[Point]]]:
    """{metric label: {series: [points by cost]}} of every metric the runs have."""
    found: dict[str, dict[tuple, Point]] = {}
    for run in runs:
        info = run.pretrain
        seed = info.get("seed", run.seed)
        if seed is None or info.get("epochs") is None:
            continue
        epochs = info.get("budget_epochs") or info["epochs"]
        for label, model, block, metric in METRICS:
            value = info.get(metric) if model is None else (run.metrics.get(block) or {}).get(metric)
            if value is None or (model is not None and run.detector != model):
                continue
            series = series_of(run)
            point = found.setdefault(label, {}).setdefault(
                (series, epochs), Point(run.curriculum, float(epochs), series)
            )
            point.values[seed] = float(value)
            if info.get("equivalent_epochs") is not None:
                point.equivalent[seed] = float(info["equivalent_epochs"])
            if isinstance(info.get("train_time_s"), (int, float)):
                point.time_s[seed] = float(info["train_time_s"])
    result: dict[str, dict[str, list[Point]]] = {}
    shared = _shared_prefix([point.series for points in found.values() for point in points.values()])
    for label, points in found.items():
        for point in points.values():
            point.series = point.series[len(shared) :] or point.series
            result.setdefault(label, {}).setdefault(point.series, []).append(point)
        for curve in result[label].values():
            curve.sort(key=lambda p: p.cost("equivalent_epochs") or p.epochs)
    return result


def _shared_prefix(names: Sequence[str]) -> str:
    """The `<entry>_` all series share (one entry: the demo's `resnet18_`), left out of their labels."""
    prefixes = {name.split("_", 1)[0] + "_" for name in names if "_" in name}
    return prefixes.pop() if len(prefixes) == 1 and all("_" in name for name in names) else ""


def _cost(point: Point, axis: str) -> float | None:
    """The point's mean cost on `axis`; a run without recorded equivalent epochs counts its epochs."""
    found = point.cost(axis)
    return point.epochs if found is None and axis == "equivalent_epochs" else found


def matched_compute(points: dict[str, dict[str, list[Point]]], axis: str = "equivalent_epochs") -> list[dict]:
    """For every metric and non-baseline point: the baseline point nearest in cost on `axis` (equivalent epochs,
    or measured training time) and the seed-paired difference (candidate - baseline)."""
    rows = []
    for label, curves in points.items():
        baseline = [
            point
            for curve in curves.values()
            for point in curve
            if point.curriculum == BASELINE and _cost(point, axis) is not None
        ]
        if not baseline:
            continue
        for curve in curves.values():
            if curve[0].curriculum == BASELINE:
                continue
            for point in curve:
                cost = _cost(point, axis)
                if cost is None:
                    continue
                match = min(baseline, key=lambda b: abs(_cost(b, axis) - cost))
                seeds = sorted(set(point.values) & set(match.values))
                if not seeds:
                    continue
                delta = seed_difference([point.values[s] for s in seeds], [match.values[s] for s in seeds])
                rows.append(
                    {
                        "metric": label,
                        "candidate": point,
                        "baseline": match,
                        "difference": delta,
                        "seeds": seeds,
                        "reading": reading(delta, point.series or point.curriculum, match.series or BASELINE),
                    }
                )
    return rows


def matched_compute_table(points: dict[str, dict[str, list[Point]]], axis: str = "equivalent_epochs") -> str:
    """Markdown: one row per metric and curriculum point, against the baseline nearest in cost on `axis`."""
    unit, cost_format = ("equivalent epochs", "{:.1f}") if axis == "equivalent_epochs" else ("training s", "{:.0f} s")
    lines = [
        f"| metric | arm ({unit}) | baseline at matched cost | cost ratio | arm − baseline (95%, seeds) | reading |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in matched_compute(points, axis):
        point, match, delta = row["candidate"], row["baseline"], row["difference"]
        interval = (
            f"{delta.value:+.1f} [{delta.low:+.1f}, {delta.high:+.1f}]"
            if delta.basis != "none"
            else f"{delta.value:+.1f}"
        )
        cost, matched = _cost(point, axis), _cost(match, axis)
        lines.append(
            f"| {row['metric']} | {point.label} ({cost_format.format(cost)}) | "
            f"{match.label} ({cost_format.format(matched)}) | "
            f"{cost / matched:.2f}x | {interval} (n={len(row['seeds'])}) | "
            f"{row['reading']} |"
        )
    return "\n".join(lines) + "\n"


def points_table(points: dict[str, dict[str, list[Point]]]) -> str:
    """Markdown: every point's cost on both axes and its mean with the 95% interval over seeds."""
    lines = [
        "| metric | series | epochs | equivalent epochs | training time (s) | seeds | mean [95%] |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, curves in points.items():
        for series, curve in curves.items():
            for point in curve:
                estimate = point.estimate()
                equivalent, seconds = point.cost("equivalent_epochs"), point.cost("train_time_s")
                lines.append(
                    f"| {label} | {series} | {point.epochs:g} | "
                    f"{'n/a' if equivalent is None else f'{equivalent:.2f}'} | "
                    f"{'n/a' if seconds is None else f'{seconds:.0f}'} | {len(point.values)} | "
                    f"{estimate.text(1)} |"
                )
    return "\n".join(lines) + "\n"


def plot_frontier(points: dict[str, dict[str, list[Point]]], out: Path) -> list[Path]:
    """One figure per cost axis: a panel per metric, a line per curriculum with its 95% interval bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    metrics = [label for label, *_ in METRICS if label in points]
    for axis, axis_label in AXES:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
        for ax, label in zip(axes[0], metrics):
            for series, curve in sorted(points[label].items()):
                xs = [p.cost(axis) for p in curve]
                if any(x is None for x in xs):
                    continue
                estimates = [p.estimate() for p in curve]
                ys = [e.value for e in estimates]
                errors = [[e.value - e.low for e in estimates], [e.high - e.value for e in estimates]]
                ax.errorbar(xs, ys, yerr=errors, marker="o", ms=4, capsize=3, lw=1.5, label=series)
            ax.set(xlabel=axis_label, ylabel=label, title=label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"transfer against pretraining cost ({axis_label}); bars: 95% interval over seeds", fontsize=10)
        fig.tight_layout()
        path = out / f"frontier_{axis}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_frontier(runs: Sequence[Run], out: Path) -> str:
    """`out/frontier.md` (points, matched-compute differences, plots) and the PNGs; returns the markdown."""
    points = frontier_points(runs)
    plots = plot_frontier(points, out)
    text = "\n".join(
        [
            "# Transfer against pretraining cost",
            "",
            "## Differences to the baseline at matched compute",
            "",
            matched_compute_table(points).rstrip(),
            "",
            "## Differences to the baseline at matched measured training time",
            "",
            "Each arm against the baseline point of the nearest mean training seconds on the machine that ran",
            "them; a pair is only as matched as the baseline's points allow (the cost ratio says how well).",
            "",
            matched_compute_table(points, "train_time_s").rstrip(),
            "",
            "## Every point",
            "",
            points_table(points).rstrip(),
            "",
            *[f"![{p.stem}]({p.name})\n" for p in plots],
        ]
    )
    from etcore.checkpoint_io import write_text_atomic

    write_text_atomic(text, out / "frontier.md")
    return text
