"""`tools/loader_parity.py`: is `--lowfreq direct` as good as the faithful loader? Seed-paired runs on the demo data.

For every seed, the demo's EfficientTrain pretraining runs once per loader mode (same seed, data and recipe;
only `--lowfreq` differs), and the demo's detector is fine-tuned from each checkpoint. The table gives, per
metric, each seed's pair, the paired deltas (mode minus the reference mode, the first of `--modes`), their
mean with a 95% Student-t interval, and the reference's own seed-to-seed spread for scale.

    python tools/loader_parity.py [--modes fft direct] [--seeds 0 1 2] [--detector retinanet]

The steps are the demo's own (`embedded_demo.pipeline`), so finished runs are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from embedded_demo import pipeline
from etcore.checkpoint_io import write_text_atomic
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.formats import METRICS_FILE
from reporting.runs import load_run

LOWFREQ_MODES = ("fft", "resize", "direct")
CURRICULUM = "efficienttrain"
# (label, where it is read from, key): top-1 from the pretraining's provenance, AP from the detector's metrics.
METRICS = (
    ("top-1", "pretrain", "top1"),
    ("box AP", "det", "AP"),
    ("box AP50", "det", "AP50"),
)


@dataclasses.dataclass(frozen=True)
class PairedDelta:
    """Seed-paired comparison of one metric: values per seed for both modes and the delta's interval."""

    metric: str
    seeds: tuple[int, ...]
    reference: tuple[float, ...]
    candidate: tuple[float, ...]

    @property
    def deltas(self) -> tuple[float, ...]:
        return tuple(c - r for c, r in zip(self.candidate, self.reference))

    def interval(self, level: float = 0.95) -> tuple[float, float, float]:
        """Mean delta and its two-sided Student-t interval over the seeds (needs >= 2 seeds)."""
        from scipy import stats

        mean = statistics.fmean(self.deltas)
        half = stats.t.ppf(0.5 + level / 2, len(self.deltas) - 1) * statistics.stdev(self.deltas)
        half /= math.sqrt(len(self.deltas))
        return mean, mean - half, mean + half

    def to_dict(self) -> dict[str, Any]:
        mean, low, high = self.interval()
        return {
            "metric": self.metric,
            "seeds": list(self.seeds),
            "reference": list(self.reference),
            "candidate": list(self.candidate),
            "deltas": list(self.deltas),
            "mean_delta": mean,
            "ci95": [low, high],
            "reference_seed_std": statistics.stdev(self.reference),
        }


def plan(
    profile: pipeline.Profile, modes: Sequence[str], seeds: Sequence[int], root: Path, data: Path, detector: str
) -> list[pipeline.Step]:
    """The demo's data step, every (seed, mode) curriculum pretraining, then a detector fine-tune from each.

    The pretrainings run one at a time; the fine-tunes of different checkpoints run side by side (lanes).
    """
    steps = pipeline.plan(profile, [], pipeline.Layout(root / modes[0], data))  # the data step only
    arms = [
        (seed, dataclasses.replace(profile, lowfreq=mode), pipeline.Layout(root / mode, data))
        for seed in seeds
        for mode in modes
    ]
    steps += [pipeline.pretrain_step(arm, layout, CURRICULUM, seed) for seed, arm, layout in arms]
    for seed, arm, layout in arms:
        steps += pipeline.detection_steps(arm, layout, detector, CURRICULUM, seed)
    return steps


def read_metric(root: Path, mode: str, seed: int, source: str, key: str, model: str, detector: str) -> float:
    """One finished pair's number (%): top-1 of the pretraining the detector started from, or its box AP.

    Both come from the detector's work dir (`reporting.runs.load_run`: the metrics file and the provenance
    of the checkpoint it was fine-tuned from), which must record the loader mode of this arm.
    """
    run = load_run(pipeline.Layout(root / mode, Path()).det(detector, CURRICULUM, seed) / METRICS_FILE)
    if run.pretrain.get("lowfreq") != mode:
        raise UserInputError(
            f"{run.work_dir}: its pretraining ran with --lowfreq {run.pretrain.get('lowfreq')}, not {mode}"
        )
    value = run.pretrain[key] if source == "pretrain" else run.metrics["bbox"][key]
    return float(value)


def parity_table(deltas: Sequence[PairedDelta], reference: str, candidate: str) -> str:
    """Markdown: one row per metric with every seed's pair, the mean delta and its interval."""
    seeds = deltas[0].seeds
    head = " | ".join(f"seed {s}: {reference} / {candidate}" for s in seeds)
    lines = [
        f"| metric | {head} | mean Δ ({candidate} − {reference}) | 95% interval | {reference} seed std |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    for d in deltas:
        mean, low, high = d.interval()
        pairs = " | ".join(f"{r:.1f} / {c:.1f}" for r, c in zip(d.reference, d.candidate))
        lines.append(
            f"| {d.metric} | {pairs} | {mean:+.2f} | [{low:+.2f}, {high:+.2f}] | {statistics.stdev(d.reference):.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="tools/loader_parity.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modes", nargs=2, default=["fft", "direct"], choices=LOWFREQ_MODES, help="reference mode, then candidate"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="at least 2 (an interval needs them)")
    parser.add_argument("--detector", choices=pipeline.DETECTORS, default=pipeline.DETECTORS[0])
    parser.add_argument("--profile", choices=sorted(pipeline.PROFILES), default="quick")
    parser.add_argument("--work-root", default="work_dirs/loader_parity")
    parser.add_argument("--data", default="data/demo", help="the demo data folder (made if missing)")
    parser.add_argument("--out", default=None, help="also write the table's numbers as JSON here")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 2 or len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: give at least 2 distinct seeds")
    if args.modes[0] == args.modes[1]:
        parser.error(f"--modes {' '.join(args.modes)}: compare two different modes")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = pipeline.PROFILES[args.profile]
    root, data = Path(args.work_root), Path(args.data)
    pipeline.enter_repo()
    pipeline.execute(plan(profile, args.modes, args.seeds, root, data, args.detector), profile)
    reference, candidate = args.modes
    deltas = [
        PairedDelta(
            label,
            tuple(args.seeds),
            tuple(read_metric(root, reference, s, source, key, profile.model, args.detector) for s in args.seeds),
            tuple(read_metric(root, candidate, s, source, key, profile.model, args.detector) for s in args.seeds),
        )
        for label, source, key in METRICS
    ]
    title = (
        f"Loader parity on the demo data ({args.profile} profile): {CURRICULUM} pretraining of {profile.model} "
        f"with --lowfreq {reference} and {candidate}, {args.detector} fine-tuned from each; seeds {args.seeds}"
    )
    text = f"{title}\n\n{parity_table(deltas, reference, candidate)}"
    print("\n" + text)
    if args.out:
        payload = {"title": title, "modes": args.modes, "rows": [d.to_dict() for d in deltas]}
        write_text_atomic(json.dumps(payload, indent=2) + "\n", Path(args.out))
        print(f"wrote {args.out}")
    return 0
