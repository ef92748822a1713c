"""Trials of the curriculum search as real pretraining runs: one `pretraining.cli.main` run per model and schedule.

Each trial writes its schedule as a custom curriculum file and pretrains every model with it (resuming an
interrupted run from its last.pth); the trial's accuracy is `provenance.final_top1` of each `final.pth`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_CURRICULUM, PRETRAIN_FINAL
from pretraining import cli as pretrain_cli
from pretraining.curriculum import Curriculum, save_curriculum_file
from pretraining.search import schedule_curriculum


def schedule_tag(schedule: Sequence[int]) -> str:
    """Folder name of a trial: b96-128-160-192-224."""
    return "b" + "-".join(str(size) for size in schedule)


class PretrainEvaluator:
    """evaluate(schedule) for the search: one real pretraining run per model, top-1 read from final.pth."""

    def __init__(
        self,
        models: Sequence[str],
        data: str,
        work_dir: Path,
        epochs: float,
        final_size: int,
        magnitudes: Sequence[float],
        layout: str,
        seed: int,
        extra: Sequence[str],
        model_kwargs: dict[str, str] | None = None,
    ) -> None:
        self.models, self.data, self.work_dir = list(models), data, work_dir
        self.model_kwargs = dict(model_kwargs or {})
        self.epochs, self.final_size, self.magnitudes, self.layout = epochs, final_size, tuple(magnitudes), layout
        self.seed, self.extra = seed, list(extra)

    def curriculum(self, schedule: Sequence[int]) -> Curriculum:
        return schedule_curriculum(
            schedule, self.epochs, self.final_size, self.magnitudes, self.layout, name=schedule_tag(schedule)
        )

    def __call__(self, schedule: tuple[int, ...]) -> dict[str, float]:
        curriculum = self.curriculum(schedule)
        trial_dir = self.work_dir / "trials" / schedule_tag(schedule)
        curriculum_file = save_curriculum_file(curriculum, trial_dir / PRETRAIN_CURRICULUM)
        return {
            model: self._top1(model, schedule, curriculum, curriculum_file, trial_dir / model) for model in self.models
        }

    def _top1(
        self, model: str, schedule: Sequence[int], curriculum: Curriculum, curriculum_file: Path, run_dir: Path
    ) -> float:
        final = run_dir / PRETRAIN_FINAL
        if not final.is_file():
            argv = [
                "--model",
                model,
                "--data",
                self.data,
                "--curriculum",
                str(curriculum_file),
                "--epochs",
                str(curriculum.total_epochs),
                "--final-size",
                str(self.final_size),
                "--work-dir",
                str(run_dir),
                "--seed",
                str(self.seed),
                "--resume",
                "auto",
            ]
            if model in self.model_kwargs:
                argv += ["--model-kwargs", self.model_kwargs[model]]
            code = pretrain_cli.main(argv + self.extra)
            if code not in (0, None):
                raise UserInputError(
                    f"pretraining {model} on schedule {schedule_tag(schedule)} "
                    f"failed (exit code {code}): see {run_dir}, fix it and re-run to resume"
                )
        return read_final_top1(final, model, curriculum)


def read_final_top1(final: Path, model: str, curriculum: Curriculum) -> float:
    """`provenance.final_top1` of a finished run, checked to belong to this model and curriculum."""
    checkpoint = load_checkpoint_file(final)
    provenance = checkpoint.get("provenance") if isinstance(checkpoint, dict) else None
    if not isinstance(provenance, dict):
        raise UserInputError(f"{final} has no provenance: delete its folder so the trial is re-run")
    recorded = provenance.get("curriculum")
    expected = curriculum.to_dict()
    same_curriculum = isinstance(recorded, dict) and all(
        recorded.get(key) == expected[key] for key in ("stages", "total_epochs", "final_size")
    )
    if provenance.get("model_name") != model or not same_curriculum:
        raise UserInputError(
            f"{final} was trained for another model or curriculum "
            f"({provenance.get('model_name')}): delete its folder so the trial is re-run"
        )
    top1 = provenance.get("final_top1")
    if not isinstance(top1, (int, float)) or isinstance(top1, bool):
        raise UserInputError(
            f"{final} records no final_top1: the run did not validate at its end; "
            "delete its folder and re-run with validation on"
        )
    return float(top1)
