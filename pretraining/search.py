"""Greedy search of a low-frequency curriculum (EfficientTrain, arXiv 2211.09703, Sec. 4), resumable.

Training is split into N stages; a schedule is the tuple of N input sizes (the low-frequency crop B of
each stage), non-decreasing over stages. Two searches share one trial machinery:

* `greedy_curriculum_search` (the paper's, fixed epochs): from the last stage backwards, make each
  stage's B as small as possible such that every model's final accuracy stays >= its full-size baseline
  minus `tolerance`. While stage i is searched, the stages before it use the same B (they may only
  shrink later), so every trial is a complete monotone schedule. Stages have equal epochs.
* `compute_constrained_search` (in the spirit of EfficientTrain++, fixed compute): every stage costs
  budget/N equivalent epochs, so a smaller B buys more passes. From the last stage backwards, pick the
  B (<= the next stage's) with the best worst-case accuracy margin over the models; ties go to the
  smaller B (a curriculum reaches the same accuracy with more, cheaper passes).

Every finished trial is appended to a JSON-lines log (rewritten atomically); a restarted search with the
same log re-uses finished trials instead of re-running them. Nothing in this module trains: the caller
passes `evaluate(schedule) -> {model_name: accuracy}` (`pretraining.search_trials` runs real ones).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from etcore.checkpoint_io import write_text_atomic
from etcore.errors import UserInputError
from etcore.formats import SEARCH_LOG_FORMAT as LOG_FORMAT
from pretraining.curriculum import BASELINE_MAGNITUDE, Curriculum, curriculum_from_budget, curriculum_from_sizes

LAYOUTS = ("equal_epochs", "equal_compute")

Schedule = tuple[int, ...]
Evaluate = Callable[[Schedule], Mapping[str, float]]


@dataclass(frozen=True)
class Trial:
    """One evaluated schedule. `stage` is the stage being searched (None for the full-size baseline)."""

    schedule: Schedule
    accuracy: Mapping[str, float]
    equivalent_epochs: float
    compute_ratio: float
    accepted: bool
    stage: int | None
    wall_time_s: float
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "trial",
            "schedule": list(self.schedule),
            "accuracy": dict(self.accuracy),
            "equivalent_epochs": self.equivalent_epochs,
            "compute_ratio": self.compute_ratio,
            "accepted": self.accepted,
            "stage": self.stage,
            "wall_time_s": self.wall_time_s,
        }


@dataclass(frozen=True)
class SearchResult:
    """The schedule found, its curriculum, the baseline accuracies and every trial in search order."""

    schedule: Schedule
    curriculum: Curriculum
    baseline_accuracy: Mapping[str, float]
    trials: tuple[Trial, ...]
    evaluated: int = field(default=0)  # trials run by this call
    reused: int = field(default=0)  # trials taken from the log


def default_magnitudes(num_stages: int, magnitude: float = BASELINE_MAGNITUDE) -> tuple[float, ...]:
    """The RandAugment magnitude of every stage during a search: constant, as in the baseline recipe.

    Keeping augmentation fixed isolates the effect of the input size, as the paper's search does; the
    ramp (1, 3, 5, 7, 9) is a separate ingredient applied on top of the found sizes.
    """
    return (float(magnitude),) * num_stages


def schedule_curriculum(
    schedule: Sequence[int],
    epochs: float,
    final_size: int,
    magnitudes: Sequence[float] | None = None,
    layout: str = "equal_epochs",
    name: str | None = None,
) -> Curriculum:
    """The curriculum a schedule stands for: N equal-epoch stages over `epochs` real epochs
    (`equal_epochs`), or N equal-compute stages within `epochs` equivalent epochs (`equal_compute`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    magnitudes = tuple(magnitudes) if magnitudes is not None else default_magnitudes(len(schedule))
    name = name or "search-" + "-".join(str(size) for size in schedule)
    if layout == "equal_epochs":
        return curriculum_from_sizes(tuple(schedule), magnitudes, int(epochs), final_size, name=name)
    return curriculum_from_budget(tuple(schedule), magnitudes, epochs, final_size, name=name)


def greedy_curriculum_search(
    evaluate: Evaluate,
    num_stages: int,
    candidates: Sequence[int],
    baseline_accuracy: Mapping[str, float] | None,
    tolerance: float = 0.0,
    trial_log: str | Path | None = None,
    *,
    epochs: int | None = None,
    final_size: int | None = None,
    magnitudes: Sequence[float] | None = None,
    smallest_first: bool = True,
) -> SearchResult:
    """The paper's backward greedy search at a fixed number of epochs (see the module docstring).

    `candidates` are the sizes B may take; the final size defaults to the largest. `baseline_accuracy`
    maps each model to its full-size accuracy (None: evaluate the all-final-size schedule first).
    `epochs` (default: one per stage) only sets the cost bookkeeping and the log header.
    `smallest_first=False` tries sizes downwards from the next stage's and stops at the first failure:
    fewer trials, but it assumes accuracy never rises when B shrinks.
    """
    runner = _TrialRunner(
        evaluate,
        num_stages,
        candidates,
        final_size,
        epochs if epochs is not None else num_stages,
        magnitudes,
        "equal_epochs",
        trial_log,
    )
    baseline = runner.baseline(baseline_accuracy)

    def passes(trial_accuracy: Mapping[str, float]) -> bool:
        return all(trial_accuracy[m] >= baseline[m] - tolerance for m in baseline)

    current = [runner.final_size] * num_stages
    for stage in reversed(range(num_stages)):
        upper = current[stage + 1] if stage + 1 < num_stages else runner.final_size
        options = [size for size in runner.candidates if size < upper]
        if not smallest_first:
            options.reverse()
        chosen = upper
        for size in options:
            schedule = tuple([size] * (stage + 1) + current[stage + 1 :])
            trial = runner.run(schedule, stage, passes)
            if trial.accepted:
                chosen = size
                if smallest_first:
                    break
            elif not smallest_first:
                break
        current[: stage + 1] = [chosen] * (stage + 1)
    return runner.result(tuple(current), baseline)


def compute_constrained_search(
    evaluate: Evaluate,
    num_stages: int,
    candidates: Sequence[int],
    budget_epochs: float,
    baseline_accuracy: Mapping[str, float] | None = None,
    tolerance: float = 0.0,
    trial_log: str | Path | None = None,
    *,
    final_size: int | None = None,
    magnitudes: Sequence[float] | None = None,
) -> SearchResult:
    """Fixed-compute search: N equal-compute stages within `budget_epochs` equivalent epochs.

    From the last stage backwards, every candidate B <= the next stage's size is tried (the earlier stages
    share it); the one with the highest worst-case margin min_m(acc_m - baseline_m) wins, and a smaller B
    wins any margin within `tolerance` of the best. The baseline is full size at the same budget.
    """
    runner = _TrialRunner(
        evaluate, num_stages, candidates, final_size, budget_epochs, magnitudes, "equal_compute", trial_log
    )
    baseline = runner.baseline(baseline_accuracy)

    def margin(trial_accuracy: Mapping[str, float]) -> float:
        return min(trial_accuracy[m] - baseline[m] for m in baseline)

    current = [runner.final_size] * num_stages
    for stage in reversed(range(num_stages)):
        upper = current[stage + 1] if stage + 1 < num_stages else runner.final_size
        keep = tuple([upper] * (stage + 1) + current[stage + 1 :])
        # `keep` was evaluated before (the previous stage's choice), or is the full-size baseline (margin 0)
        scored = [(0.0 if keep == runner.full_schedule else margin(runner.accuracy_of(keep)), upper)]
        for size in (s for s in runner.candidates if s < upper):
            schedule = tuple([size] * (stage + 1) + current[stage + 1 :])
            scored.append((margin(runner.run(schedule, stage, None).accuracy), size))
        best = max(score for score, _ in scored)
        chosen = min(size for score, size in scored if score >= best - tolerance)
        runner.mark_accepted(tuple([chosen] * (stage + 1) + current[stage + 1 :]))
        current[: stage + 1] = [chosen] * (stage + 1)
    return runner.result(tuple(current), baseline)


class _TrialRunner:
    """Evaluates schedules once each, records them in the log, and re-uses the log's finished trials."""

    def __init__(
        self,
        evaluate: Evaluate,
        num_stages: int,
        candidates: Sequence[int],
        final_size: int | None,
        epochs: float,
        magnitudes: Sequence[float] | None,
        layout: str,
        trial_log: str | Path | None,
    ) -> None:
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) or num_stages < 1:
            raise UserInputError(f"number of stages must be a positive whole number, got {num_stages!r}")
        sizes = sorted({int(c) for c in candidates})
        if not sizes or sizes[0] < 1:
            raise UserInputError(f"candidate sizes must be positive whole numbers, got {list(candidates)!r}")
        self.final_size = int(final_size) if final_size is not None else sizes[-1]
        if sizes[-1] > self.final_size:
            raise UserInputError(
                f"candidate size {sizes[-1]} is above the final size {self.final_size}: "
                "drop it from the candidates or raise the final size"
            )
        if not math.isfinite(epochs) or epochs <= 0:
            raise UserInputError(f"epochs must be positive, got {epochs!r}")
        self.candidates = [s for s in sizes if s < self.final_size]
        self.evaluate, self.num_stages, self.epochs, self.layout = evaluate, num_stages, epochs, layout
        self.magnitudes = (
            tuple(float(m) for m in magnitudes) if magnitudes is not None else default_magnitudes(num_stages)
        )
        if len(self.magnitudes) != num_stages:
            raise UserInputError(
                f"{len(self.magnitudes)} RandAugment magnitudes for {num_stages} stages: "
                "give one per stage (or a single value)"
            )
        self.log_path = Path(trial_log) if trial_log is not None else None
        self.models: tuple[str, ...] | None = None
        self.full_schedule: Schedule = (self.final_size,) * num_stages
        self.cache: dict[Schedule, dict[str, float]] = {}
        self.cached_wall: dict[Schedule, float] = {}
        self.logged_records: dict[Schedule, dict[str, Any]] = {}  # as read, re-written until revisited
        self.trials: list[Trial] = []
        self.evaluated = 0
        self.reused = 0
        self._read_log()

    # --- header and log ------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {
            "kind": "header",
            "format": LOG_FORMAT,
            "layout": self.layout,
            "num_stages": self.num_stages,
            "epochs": self.epochs,
            "final_size": self.final_size,
            "magnitudes": list(self.magnitudes),
            "models": list(self.models) if self.models is not None else None,
        }

    def _read_log(self) -> None:
        if self.log_path is None or not self.log_path.exists():
            return
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserInputError(
                    f"trial log {self.log_path} line {number} is not JSON ({err.msg}): "
                    "delete the log (its trials will be re-run) or fix the line"
                ) from None
            if not isinstance(record, dict):
                raise UserInputError(f"trial log {self.log_path} line {number} is not a JSON object: fix or delete it")
            records.append((number, record))
        if not records:
            return
        first_number, header = records[0]
        if header.get("kind") != "header" or header.get("format") != LOG_FORMAT:
            raise UserInputError(
                f"trial log {self.log_path} does not start with a {LOG_FORMAT} header: "
                "point the search at a new log (or work dir)"
            )
        mine = self.header()
        for key in ("layout", "num_stages", "epochs", "final_size", "magnitudes"):
            if header.get(key) != mine[key]:
                raise UserInputError(
                    f"trial log {self.log_path} was written by a search with {key}="
                    f"{header.get(key)!r}, this one has {mine[key]!r}: use the same settings "
                    "or a new log (work dir)"
                )
        self.models = tuple(header["models"]) if header.get("models") is not None else None
        for number, record in records[1:]:
            if record.get("kind") != "trial":
                continue
            try:
                schedule = tuple(int(s) for s in record["schedule"])
                accuracy = {str(m): float(a) for m, a in record["accuracy"].items()}
                wall = float(record.get("wall_time_s", 0.0))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise UserInputError(
                    f"trial log {self.log_path} line {number} is not a valid trial record: fix or delete that line"
                ) from None
            self.cache[schedule] = accuracy
            self.cached_wall[schedule] = wall
            self.logged_records[schedule] = record

    def _write_log(self) -> None:
        if self.log_path is None:
            return
        seen = {trial.schedule for trial in self.trials}
        # earlier logged trials this run has not revisited stay in the log for a later resume
        earlier = [record for schedule, record in self.logged_records.items() if schedule not in seen]
        lines = [self.header(), *earlier, *(trial.to_json() for trial in self.trials)]
        write_text_atomic("".join(json.dumps(line) + "\n" for line in lines), self.log_path)

    # --- evaluation ------------------------------------------------------------------------------
    def cost(self, schedule: Schedule) -> tuple[float, float]:
        """(equivalent epochs, compute ratio to the full-size run) of the schedule's real curriculum."""
        curriculum = schedule_curriculum(schedule, self.epochs, self.final_size, self.magnitudes, self.layout)
        full = schedule_curriculum(self.full_schedule, self.epochs, self.final_size, self.magnitudes, self.layout)
        return curriculum.equivalent_epochs(), curriculum.equivalent_epochs() / full.equivalent_epochs()

    def _evaluate(self, schedule: Schedule) -> tuple[dict[str, float], float, bool]:
        if schedule in self.cache:
            self.reused += 1
            return self.cache[schedule], self.cached_wall.get(schedule, 0.0), True
        started = time.monotonic()
        raw = self.evaluate(schedule)
        wall = time.monotonic() - started
        accuracy = {str(m): float(a) for m, a in dict(raw).items()}
        if self.models is None:
            self.models = tuple(sorted(accuracy))
        missing = sorted(set(self.models) - set(accuracy))
        if missing:
            raise ValueError(f"evaluate({schedule}) returned no accuracy for {', '.join(missing)}")
        self.evaluated += 1
        self.cache[schedule] = accuracy
        self.cached_wall[schedule] = wall
        return accuracy, wall, False

    def accuracy_of(self, schedule: Schedule) -> dict[str, float]:
        return self._evaluate(schedule)[0] if schedule not in self.cache else self.cache[schedule]

    def run(self, schedule: Schedule, stage: int | None, passes: Callable[[Mapping[str, float]], bool] | None) -> Trial:
        accuracy, wall, reused = self._evaluate(schedule)
        trial = Trial(
            schedule,
            accuracy,
            *self.cost(schedule),
            accepted=bool(passes(accuracy)) if passes else False,
            stage=stage,
            wall_time_s=wall,
            reused=reused,
        )
        self.trials.append(trial)
        self._write_log()
        return trial

    def mark_accepted(self, schedule: Schedule) -> None:
        """Compute-constrained mode decides after all of a stage's trials: flag the chosen one."""
        for index in range(len(self.trials) - 1, -1, -1):
            if self.trials[index].schedule == schedule:
                trial = self.trials[index]
                self.trials[index] = Trial(
                    trial.schedule,
                    trial.accuracy,
                    trial.equivalent_epochs,
                    trial.compute_ratio,
                    True,
                    trial.stage,
                    trial.wall_time_s,
                    trial.reused,
                )
                self._write_log()
                return

    def baseline(self, given: Mapping[str, float] | None) -> dict[str, float]:
        """The full-size accuracies: given by the caller, or evaluated (and logged) as the first trial."""
        if given is not None:
            baseline = {str(m): float(a) for m, a in given.items()}
            if not baseline:
                raise UserInputError("baseline accuracy names no model: give at least one")
            if self.models is not None and set(self.models) != set(baseline):
                raise UserInputError(
                    f"trial log {self.log_path} holds models {', '.join(self.models)} but the "
                    f"baseline names {', '.join(sorted(baseline))}: use the same models or a new log"
                )
            self.models = tuple(sorted(baseline))
            return baseline
        trial = self.run(self.full_schedule, None, lambda accuracy: True)
        return dict(trial.accuracy)

    def result(self, schedule: Schedule, baseline: Mapping[str, float]) -> SearchResult:
        self._write_log()
        curriculum = schedule_curriculum(
            schedule,
            self.epochs,
            self.final_size,
            self.magnitudes,
            self.layout,
            name="searched-" + "-".join(str(s) for s in schedule),
        )
        return SearchResult(schedule, curriculum, dict(baseline), tuple(self.trials), self.evaluated, self.reused)
