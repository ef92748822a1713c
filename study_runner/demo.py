"""`tools/demo.py` (`make demo`): the embedded demo, a shipped study run here.

    python tools/demo.py [--profile quick|full|smoke] [--seeds 0 1 2] [--work-root DIR] [--data DIR]

The profile picks the spec (`studies/demo.yaml`, `demo_full.yaml`, `demo_smoke.yaml`); the study runner does the
rest, exactly as `tools/study.py run <spec>` would: generate the data, pretrain resnet18 with the baseline
recipe and with EfficientTrain, fine-tune and test the tiny RetinaNet, Cascade Mask R-CNN and UperNet from each
checkpoint (re-checking every AP with pycocotools and every mIoU with a numpy confusion matrix), then write the
report. Finished steps are skipped on a rerun.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from etcore.cli import ArgumentParser
from study_runner import local
from study_runner.cli import report_failures
from study_runner.plan import build_graph
from study_runner.spec import load_study

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"quick": "studies/demo.yaml", "full": "studies/demo_full.yaml", "smoke": "studies/demo_smoke.yaml"}
SUMMARY_FILE = "summary.md"  # reporting.report writes it beside report.md and table.md


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="quick",
        help="quick: the make demo default (~10 min on 2 CPU cores); full: longer, more faithful; smoke: seconds",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="one pretraining and its fine-tunes per seed and curriculum (default: 0)"
    )
    parser.add_argument("--work-root", help="where every step writes (default: the spec's root, work_dirs/demo...)")
    parser.add_argument("--data", help="where the demo data goes (default: the spec's, data/demo...)")
    args = parser.parse_args(argv)
    os.chdir(REPO)  # the steps' command lines and the configs' data paths are relative to the repository root
    study = load_study(
        PROFILES[args.profile],
        seeds=args.seeds,
        root=args.work_root,
        variables={"data": args.data} if args.data else None,
    )
    started = time.monotonic()
    graph = build_graph(study)
    outcome = local.execute(graph, study.lanes, study.estimates)
    failed = report_failures(graph, outcome.failed, outcome.blocked)
    if failed:
        return failed
    summary = study.root / SUMMARY_FILE
    if summary.is_file():
        print("\n" + summary.read_text())
    print(f"report: {study.root / 'report.md'} (full table: {study.root / 'table.md'})")
    print(f"this run: {(time.monotonic() - started) / 60:.1f} min")
    return 0
