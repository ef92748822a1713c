"""`tools/loader_parity.py`: is `--lowfreq direct` as good as the faithful loader? Seed-paired runs on the demo data.

For every seed, the demo's EfficientTrain pretraining runs once per loader mode (same seed, data and recipe;
only `--lowfreq` differs), and the demo's detector is fine-tuned from each checkpoint. The table gives, per
metric, each seed's pair, the paired deltas (mode minus the reference mode, the first of `--modes`), their
mean with a 95% Student-t interval, and the reference's own seed-to-seed spread for scale.

    python tools/loader_parity.py [--modes fft direct] [--seeds 0 1 2] [--detector retinanet]

The steps are the demo study's own (`studies/demo*.yaml` through `study_runner`): its EfficientTrain
pretraining once per mode, its detector from each; finished runs are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from etcore.checkpoint_io import write_text_atomic
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.formats import METRICS_FILE
from reporting.noise import seed_difference
from reporting.runs import load_run
from study_runner import local
from study_runner.cli import report_failures
from study_runner.demo import PROFILES, REPO
from study_runner.graph import Graph
from study_runner.plan import build_graph
from study_runner.spec import load_study

LOWFREQ_MODES = ("fft", "resize", "direct")
CURRICULUM = "efficienttrain"
DETECTORS = ("retinanet", "cascade_mask_rcnn")
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
        delta = seed_difference(self.candidate, self.reference, level)
        return delta.value, delta.low, delta.high

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
    spec: str | Path, modes: Sequence[str], seeds: Sequence[int], root: Path, detector: str, data: str
) -> tuple[Graph, dict[tuple[str, int], Path]]:
    """The demo study's data step, its EfficientTrain pretraining per (seed, mode), and `detector` from each;
    with the detector's work dir of every (mode, seed).

    The pretrainings run one at a time; the fine-tunes of different checkpoints run side by side (lanes).
    """
    study = load_study(spec, seeds=seeds, root=root, variables={"data": data})
    sources = [run for run in study.pretrainings if run.curriculum == CURRICULUM]
    detectors = {run.source.seed: run for run in study.finetunes if run.entry == detector and run.source in sources}
    if len(detectors) != len(sources):
        raise UserInputError(f"--detector {detector}: the demo study has no fine-tune of that name")
    pretrainings, finetunes, arms = [], [], {}
    for source in sources:
        for mode in modes:
            name = f"{mode}_{source.work_dir.name}"
            arm = dataclasses.replace(source, lowfreq=mode, work_dir=root / "pretrain" / name)
            pretrainings.append(arm)
            template = detectors[source.seed]
            run = dataclasses.replace(template, source=arm, work_dir=root / "det" / f"{template.entry}_{name}")
            finetunes.append(run)
            arms[(mode, source.seed)] = run.work_dir
    graph = build_graph(dataclasses.replace(study, pretrainings=pretrainings, finetunes=finetunes, report=None))
    return graph, arms


def read_metric(run_dir: Path, mode: str, source: str, key: str) -> float:
    """One finished pair's number (%): top-1 of the pretraining the detector started from, or its box AP.

    Both come from the detector's work dir (`reporting.runs.load_run`: the metrics file and the provenance
    of the checkpoint it was fine-tuned from), which must record the loader mode of this arm.
    """
    run = load_run(run_dir / METRICS_FILE)
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
    parser.add_argument("--detector", choices=DETECTORS, default=DETECTORS[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
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
    root = Path(args.work_root)
    os.chdir(REPO)
    graph, arms = plan(PROFILES[args.profile], args.modes, args.seeds, root, args.detector, args.data)
    outcome = local.execute(graph, lanes=2)
    if report_failures(graph, outcome.failed, outcome.blocked):
        return 1
    reference, candidate = args.modes

    def metric(mode: str, seed: int, source: str, key: str) -> float:
        return read_metric(arms[(mode, seed)], mode, source, key)

    deltas = [
        PairedDelta(
            label,
            tuple(args.seeds),
            tuple(metric(reference, s, source, key) for s in args.seeds),
            tuple(metric(candidate, s, source, key) for s in args.seeds),
        )
        for label, source, key in METRICS
    ]
    title = (
        f"Loader parity on the demo data ({args.profile} profile): {CURRICULUM} pretraining "
        f"with --lowfreq {reference} and {candidate}, {args.detector} fine-tuned from each; seeds {args.seeds}"
    )
    text = f"{title}\n\n{parity_table(deltas, reference, candidate)}"
    print("\n" + text)
    if args.out:
        payload = {"title": title, "modes": args.modes, "rows": [d.to_dict() for d in deltas]}
        write_text_atomic(json.dumps(payload, indent=2) + "\n", Path(args.out))
        print(f"wrote {args.out}")
    return 0
