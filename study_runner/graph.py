"""A study as a graph of steps: each step one of the project's own command lines, with its inputs and a done-check.

A `Step` knows what it runs (`command`, copyable into a shell from the repository root), which steps it needs
(`needs`), the folder it writes (`work_dir`), how to tell that it is finished (`is_done`) and what to check
after it ran (`verify`). The executors (`study.local`, `study.slurm`) run the same graph; `Graph` refuses a
graph that cannot run: a need that names no step, a cycle, or two steps that write the same folder.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from etcore.errors import UserInputError

# Step kinds; the executors give each its resources (Slurm) and its time estimate (the local ETA).
PREPARE, PRETRAIN, TRAIN, TEST, SEG_TRAIN, SEG_TEST, REPORT = (
    "prepare",
    "pretrain",
    "train",
    "test",
    "seg_train",
    "seg_test",
    "report",
)
KINDS = (PREPARE, PRETRAIN, TRAIN, TEST, SEG_TRAIN, SEG_TEST, REPORT)
TRAINING_KINDS = (TRAIN, SEG_TRAIN)


def _never_done() -> bool:
    return False


@dataclass
class Step:
    """One unit of work of a study.

    `command` is the tool and its arguments (`tools/train.py CONFIG ...`), run with the project's Python from
    the repository root. `lane` groups the steps that must run one after another on one machine slot (the
    fine-tunes of one checkpoint); a step without a lane is `exclusive`ly timed (the pretrainings, whose wall
    time is the cost the table compares) and runs alone. `fresh_files` are deleted before a first attempt (so an
    old run never passes for the new one); `resume_args` are added when a preempted job restarts.
    """

    id: str
    kind: str
    label: str
    command: tuple[str, ...]
    work_dir: Path | None = None
    needs: tuple[str, ...] = ()
    lane: str | None = None
    is_done: Callable[[], bool] = _never_done
    verify: Callable[[], object] | None = None
    fresh_files: tuple[Path, ...] = ()
    resume_args: tuple[str, ...] = ()
    log: Path | None = None
    tasks: int = 1  # processes of a multi-GPU step (srun tasks)

    @property
    def exclusive(self) -> bool:
        return self.lane is None

    @property
    def checked(self) -> bool:
        """Whether the step has a done-check (a prepare or report step runs every time instead)."""
        return self.is_done is not _never_done

    def shell(self, python: str = "python") -> str:
        """The command line as a user types it."""
        return shlex.join([python, *self.command])


@dataclass
class Graph:
    """The steps of a study in plan order (every step after the steps it needs)."""

    name: str
    root: Path
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    def validate(self) -> None:
        """Every need names an earlier-or-later step, there is no cycle, and no two steps write one folder."""
        ids: dict[str, Step] = {}
        for step in self.steps:
            if step.id in ids:
                raise UserInputError(f"study {self.name}: two steps are called {step.id}: give them different names")
            ids[step.id] = step
        writers: dict[Path, str] = {}
        for step in self.steps:
            for need in step.needs:
                if need not in ids:
                    raise UserInputError(
                        f"study {self.name}: step {step.id} needs {need}, which is no step of the study: "
                        "fix the name (plan lists the steps)"
                    )
            if step.work_dir is not None and step.kind not in (TEST, SEG_TEST):  # a test writes into its training
                folder = step.work_dir.resolve()
                if folder in writers:
                    raise UserInputError(
                        f"study {self.name}: steps {writers[folder]} and {step.id} both write {step.work_dir}: "
                        "give one of them another name or work dir"
                    )
                writers[folder] = step.id
        cycle = find_cycle({step.id: step.needs for step in self.steps})
        if cycle:
            raise UserInputError(
                f"study {self.name}: its steps need each other in a circle ({' -> '.join(cycle)}): remove one of "
                "these needs"
            )
        self.steps = topological(self.steps)

    def dependents(self, step_id: str) -> set[str]:
        """Every step that needs `step_id`, directly or through others."""
        found: set[str] = set()
        frontier = [step_id]
        while frontier:
            current = frontier.pop()
            for step in self.steps:
                if current in step.needs and step.id not in found:
                    found.add(step.id)
                    frontier.append(step.id)
        return found

    def describe(self, done: Iterable[str] = ()) -> str:
        """One line per step: its id, kind, needs and command (what `tools/study.py plan` prints)."""
        finished = set(done)
        lines = [f"study {self.name}: {len(self.steps)} steps in {self.root}"]
        for step in self.steps:
            state = "done   " if step.id in finished else "pending"
            needs = f"  after {', '.join(step.needs)}" if step.needs else ""
            lines.append(f"  [{state}] {step.id} ({step.kind}){needs}")
            lines.append(f"      $ {step.shell()}")
        return "\n".join(lines)


def find_cycle(needs: dict[str, Sequence[str]]) -> list[str]:
    """A list of ids that need each other in a circle (first id repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for need in needs.get(node, ()):
            if state.get(need) == 1:
                return path[path.index(need) :] + [need]
            if need in needs and state.get(need) is None:
                found = visit(need)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in needs:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


def topological(steps: Sequence[Step]) -> list[Step]:
    """The steps with every step after its needs, otherwise in the given order (stable)."""
    placed: set[str] = set()
    ordered: list[Step] = []
    pending = list(steps)
    while pending:
        for index, step in enumerate(pending):
            if all(need in placed for need in step.needs):
                ordered.append(pending.pop(index))
                placed.add(step.id)
                break
        else:  # a cycle; validate() reports it before this is reached
            raise UserInputError("the study's steps need each other in a circle")
    return ordered
