"""The local executor: a study's steps as processes on this machine, with lanes, thread shares and an ETA.

Steps without a lane (the pretrainings, whose wall time is the cost the table compares) run alone. A run of
consecutive laned steps is split by lane (the fine-tunes and tests of one checkpoint), and up to `lanes` lanes
run side by side, each tool with its share of the CPU threads (`lane_threads`). A failed step leaves every
step that needs it unrun; the others go on, and the run ends with one line naming the first failure and its log.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from etcore.process import python_command, run_process
from study_runner import state
from study_runner.graph import Graph, Step

REPO = Path(__file__).resolve().parents[1]
_PACE_PRIOR_S = 120.0  # seconds of estimates to trust before the measured pace takes over
_DEFAULT_ESTIMATE_S = 30.0


class StepFailed(Exception):
    """A step ended with a non-zero exit code or its check disagreed; the message names it and its log."""


@dataclass
class Outcome:
    """What a local run did: steps run, skipped as finished, left unrun behind a failure, and failures."""

    ran: list[str]
    skipped: list[str]
    blocked: list[str]
    failed: list[tuple[str, str]]  # (step id, one-line reason)


def lane_threads(lanes: int) -> int:
    """Each of `lanes` side-by-side tools' threads: OMP_NUM_THREADS (else the cores) is the budget of all of them.

    Two tools that each take the whole budget on 2 cores spin against each other: measured, 1.6-2.2 s per
    RetinaNet iteration against 0.3 s with one thread each.
    """
    budget = os.environ.get("OMP_NUM_THREADS", "")
    total = int(budget) if budget.isdigit() and int(budget) > 0 else (os.cpu_count() or 1)
    return max(1, total // max(1, lanes))


def groups_of(steps: Sequence[Step]) -> list[list[list[Step]]]:
    """Consecutive steps as groups of lanes: an unlaned step is a group of its own; laned runs split by lane."""
    groups: list[list[list[Step]]] = []
    lanes: dict[str, list[Step]] = {}
    for step in steps:
        if step.lane is None:
            if lanes:
                groups.append(list(lanes.values()))
                lanes = {}
            groups.append([[step]])
        else:
            lanes.setdefault(step.lane, []).append(step)
    if lanes:
        groups.append(list(lanes.values()))
    return groups


def run_step(step: Step, threads: int | None = None) -> None:
    """Run one step's command line (its output to its log), then its check; raise StepFailed on either failing."""
    for stale in step.fresh_files:
        stale.unlink(missing_ok=True)
    print("  $ " + step.shell(), flush=True)
    result = run_process(python_command(step.command), cwd=REPO, log=step.log, threads=threads)
    if not result.ok:
        tail = f": {result.tail()}" if result.tail() else ""
        raise StepFailed(f"step {step.id} failed (exit {result.rc}); its log: {step.log}{tail}")
    if step.verify is not None:
        try:
            step.verify()
        except (RuntimeError, OSError, ValueError, KeyError) as err:
            raise StepFailed(f"step {step.id} ran but its check failed ({err}); its log: {step.log}") from None


def execute(
    graph: Graph,
    lanes: int = 2,
    estimates: Mapping[str, float] | None = None,
    runner=run_step,
) -> Outcome:
    """Run every step of `graph` that is not finished, in plan order (lanes side by side); see the module doc."""
    steps = graph.steps
    finished = {step.id for step in steps if step.is_done()}
    pending = [step for step in steps if step.id not in finished]
    print(f"study {graph.name}: {len(steps)} steps, {len(finished)} already complete", flush=True)
    progress = _Progress(pending, lanes, dict(estimates or {}), time.monotonic())
    outcome = Outcome(ran=[], skipped=sorted(finished), blocked=[], failed=[])
    record = state.StudyState.load(graph.root)
    lock = threading.Lock()

    def attempt(step: Step, threads: int | None) -> None:
        with lock:
            unmet = [need for need in step.needs if need in {f for f, _ in outcome.failed} or need in outcome.blocked]
            if unmet:
                outcome.blocked.append(step.id)
                record.set(step.id, "blocked", log=step.log, note=f"needs {unmet[0]}, which did not finish")
                return
            record.set(step.id, "running", log=step.log)
        progress.start(step)
        started = time.monotonic()
        try:
            runner(step, threads)
        except StepFailed as err:
            with lock:
                outcome.failed.append((step.id, str(err)))
                record.set(step.id, "failed", log=step.log, note=str(err))
            print(f"  {err}", flush=True)
            return
        finally:
            progress.finish(step, time.monotonic() - started)
        with lock:
            outcome.ran.append(step.id)
            record.set(step.id, "done", log=step.log)

    for group in groups_of(pending):
        if len(group) == 1 or lanes <= 1:
            for step in (s for lane in group for s in lane):
                attempt(step, None)
            continue
        threads = lane_threads(min(lanes, len(group)))

        def run_lane(lane: list[Step]) -> None:
            for step in lane:
                attempt(step, threads)

        with ThreadPoolExecutor(max_workers=lanes) as pool:
            for future in [pool.submit(run_lane, lane) for lane in group]:
                future.result()
    print(f"\nstudy {graph.name}: done in {_clock(time.monotonic() - progress.started)}", flush=True)
    return outcome


class _Progress:
    """Numbered step headers with an ETA; lanes running side by side count once in the remaining time."""

    def __init__(self, pending: Sequence[Step], lanes: int, estimates: dict[str, float], started: float) -> None:
        self.pending, self.lanes, self.estimates, self.started = list(pending), lanes, estimates, started
        self.position = {id(step): index for index, step in enumerate(self.pending)}
        self.lock = threading.Lock()
        self.begun: set[int] = set()
        self.spent_est, self.spent_real = 0.0, 0.0

    def _estimate(self, step: Step) -> float:
        return self.estimates.get(step.kind, _DEFAULT_ESTIMATE_S)

    def _remaining_estimate(self) -> float:
        lanes: dict[str, float] = {}
        serial = 0.0
        for index, step in enumerate(self.pending):
            if index in self.begun:
                continue
            if step.lane is None or self.lanes <= 1:
                serial += self._estimate(step)
            else:
                lanes[step.lane] = lanes.get(step.lane, 0.0) + self._estimate(step)
        side_by_side = sorted(lanes.values(), reverse=True)
        return serial + sum(side_by_side[:: max(1, self.lanes)])  # the longest lane of each batch

    def start(self, step: Step) -> None:
        with self.lock:
            remaining = self._remaining_estimate()
            self.begun.add(self.position[id(step)])
            pace = (self.spent_real + _PACE_PRIOR_S) / (self.spent_est + _PACE_PRIOR_S)  # trust estimates first
            print(
                f"\n[{len(self.begun)}/{len(self.pending)}] {step.label}  (elapsed "
                f"{_clock(time.monotonic() - self.started)}, ETA {_clock(remaining * pace)})",
                flush=True,
            )

    def finish(self, step: Step, seconds: float) -> None:
        with self.lock:
            self.spent_real += seconds
            self.spent_est += self._estimate(step)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"
