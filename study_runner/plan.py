"""The graph of a study: prepare steps, every pretraining, every fine-tune with its tests, and the report.

Pretrainings run alone (their wall time is the cost the table compares); the fine-tunes and tests of one
checkpoint share a lane. A training step's first attempt clears its stale `last_checkpoint`; a restarted one
(a preempted Slurm job) resumes.
"""

from __future__ import annotations

from typing import Sequence

from study_runner.graph import PREPARE, PRETRAIN, REPORT, SEG_TEST, SEG_TRAIN, TEST, TRAIN, Graph, Step
from study_runner.runs import FineTune, Study


def build_graph(study: Study) -> Graph:
    """The steps of `study` in plan order: prepare, every pretraining, every fine-tune and its tests, the report."""
    logs = study.root / "logs"
    steps: list[Step] = []
    prepared = []
    for name, command in study.prepare:
        steps.append(Step(f"prepare/{name}", PREPARE, f"prepare {name}", command, log=logs / f"prepare_{name}.log"))
        prepared.append(steps[-1].id)
    for run in study.pretrainings:
        steps.append(
            Step(
                f"pretrain/{run.id}",
                PRETRAIN,
                f"pretrain {run.model} with {run.curriculum} ({run.epochs} epochs, seed {run.seed})",
                run.command(),
                work_dir=run.work_dir,
                needs=tuple(prepared),
                is_done=run.is_done,
                log=logs / f"pretrain_{run.id}.log",
                tasks=run.tasks,
            )
        )
    tests = []
    for run in study.finetunes:
        kind, test_kind = (SEG_TRAIN, SEG_TEST) if run.segmentation else (TRAIN, TEST)
        lane = str(run.source.work_dir)
        train_id = f"train/{run.work_dir.name}"
        steps.append(
            Step(
                train_id,
                kind,
                f"train {run.entry} from {run.source.id}",
                run.train_command(),
                work_dir=run.work_dir,
                needs=(f"pretrain/{run.source.id}",),
                lane=lane,
                is_done=run.train_done,
                fresh_files=(run.work_dir / "last_checkpoint",),  # a killed retrain never passes for finished
                resume_args=("--resume",),
                log=logs / f"train_{run.work_dir.name}.log",
                tasks=run.tasks,
            )
        )
        previous = train_id
        for position, mode in enumerate(run.tests):
            modes = run.tests[: position + 1]
            test_id = f"test/{run.work_dir.name}" + ("" if mode == "single" else f"/{mode}")
            steps.append(
                Step(
                    test_id,
                    test_kind,
                    f"evaluate {run.entry} from {run.source.id}" + (" (multi-scale + flip)" if mode == "tta" else ""),
                    run.test_command(mode),
                    work_dir=run.work_dir,
                    needs=(previous,),
                    lane=lane,
                    is_done=_test_done(run, modes),
                    verify=run.verify,
                    log=logs / f"test_{run.work_dir.name}_{mode}.log",
                )
            )
            previous = test_id
            tests.append(test_id)
    if study.report is not None:
        needs = tuple(tests) or tuple(f"pretrain/{run.id}" for run in study.pretrainings)
        steps.append(Step("report", REPORT, "report", study.report, needs=needs, log=logs / "report.log"))
    return Graph(study.name, study.root, steps)


def _test_done(run: FineTune, modes: Sequence[str]):
    return lambda: run.test_done(modes)
