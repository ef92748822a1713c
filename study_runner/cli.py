"""`tools/study.py`: plan, run, follow and cancel a study (a YAML spec of pretrainings, fine-tunes and a report).

    python tools/study.py plan   SPEC [--executor local|slurm] [--seeds 0 1 2] [--root DIR] [--var KEY=VALUE]
    python tools/study.py run    SPEC [--executor local|slurm] [--partition P] [--account A] [--qos Q] ...
    python tools/study.py status SPEC
    python tools/study.py cancel SPEC
    python tools/study.py check  SPEC --step STEP       (a step's done-check; every Slurm job ends with it)

`plan` prints every step (its command line, what it needs, whether it is finished) and, for Slurm, the
resources each job asks for; nothing runs. `run` runs what is not finished: here (`local`: processes with
lanes and an ETA) or on Slurm (`slurm`: one job per step with afterok dependencies, requeued on preemption).
A rerun skips finished steps, and on Slurm steps whose jobs are still queued or running. `status` says each
step's state (from the done-checks and from Slurm) with its log; `cancel` cancels the study's Slurm jobs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from etcore.errors import UserInputError
from study_runner import local, slurm
from study_runner.graph import Graph
from study_runner.plan import build_graph
from study_runner.runs import Study
from study_runner.spec import load_study
from study_runner.state import StudyState

VERBS = ("plan", "run", "status", "cancel", "check")
EXECUTORS = ("local", "slurm")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/study.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument("spec", help="the study's YAML file, e.g. studies/demo.yaml")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--seeds", nargs="+", type=int, help="replace every pretraining's seeds")
    parser.add_argument("--root", help="replace the spec's root (where every step writes)")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="set one of the spec's vars")
    parser.add_argument("--partition", help="Slurm partition (over the spec's slurm.partition)")
    parser.add_argument("--account", help="Slurm account")
    parser.add_argument("--qos", help="Slurm quality of service")
    parser.add_argument("--step", help="check: the step (its id, as plan prints it)")
    return parser.parse_args(argv)


def _vars(pairs: Sequence[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserInputError(f"--var {pair}: give KEY=VALUE, e.g. --var data=data/demo")
        values[key] = value
    return values


def load(args: argparse.Namespace) -> Study:
    return load_study(args.spec, seeds=args.seeds, root=args.root, variables=_vars(args.var))


def check_command(args: argparse.Namespace) -> list[str]:
    """`tools/study.py check SPEC` with this invocation's overrides: what every Slurm job ends with."""
    command = ["tools/study.py", "check", str(args.spec)]
    if args.seeds:
        command += ["--seeds", *map(str, args.seeds)]
    if args.root:
        command += ["--root", args.root]
    for pair in args.var:
        command += ["--var", pair]
    return command


def slurm_options(study: Study, args: argparse.Namespace) -> slurm.SlurmOptions:
    return slurm.SlurmOptions.from_spec(
        study.slurm, f"study spec {study.path}", partition=args.partition, account=args.account, qos=args.qos
    )


def plan(study: Study, graph: Graph, executor: str, args: argparse.Namespace) -> int:
    done = [step.id for step in graph.steps if step.is_done()]
    print(graph.describe(done))
    if executor == "slurm":
        options = slurm_options(study, args)
        print("\nSlurm jobs (one per unfinished step; none is submitted by plan):")
        for step in graph.steps:
            if step.id not in done:
                print(f"  {step.id}: sbatch {' '.join(slurm.sbatch_options(step, options, graph.name))}")
    return 0


def run(study: Study, graph: Graph, executor: str, args: argparse.Namespace) -> int:
    if executor == "slurm":
        jobs = slurm.submit(graph, slurm_options(study, args), check_command(args))
        for step_id, job in jobs.items():
            print(f"  {job}  {step_id}")
        print(f"follow it with: python tools/study.py status {args.spec}")
        return 0
    outcome = local.execute(graph, study.lanes, study.estimates)
    return report_failures(graph, outcome.failed, outcome.blocked)


def report_failures(graph: Graph, failed: Sequence[tuple[str, str]], blocked: Sequence[str]) -> int:
    """One line per failed step (and how many steps it left unrun); 0 when nothing failed."""
    for _, reason in failed:
        print(f"error: {reason}", file=sys.stderr, flush=True)
    if blocked:
        print(f"study {graph.name}: {len(blocked)} steps not run because a step they need failed", file=sys.stderr)
    return 1 if failed else 0


def status(graph: Graph) -> int:
    record = StudyState.load(graph.root)
    on_slurm = any(record.get(step.id).get("job") for step in graph.steps)
    if on_slurm:
        rows = slurm.status(graph)
    else:
        rows = []
        for step in graph.steps:
            entry = record.get(step.id)
            state = "done" if step.is_done() else entry.get("state", "not run")
            stale = state == "done" and step.checked and not step.is_done()  # unchecked steps: their run's word
            rows.append((step, "ended (not finished)" if stale else state, ""))
    width = max(len(step.id) for step, _, _ in rows)
    print(f"study {graph.name} ({'slurm' if on_slurm else 'local'}), {graph.root}:")
    failed = []
    for step, state, detail in rows:
        log = f"  log {step.log}" if state != "done" and step.log is not None else ""
        print(f"  {step.id:<{width}}  {state:<22} {detail}{log}".rstrip())
        if state in ("failed", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "ended (not finished)"):
            failed.append((step, state))
    for step, state in failed[:1]:
        print(f"error: step {step.id} {state.lower()}: see {step.log}", file=sys.stderr)
    done = sum(state == "done" for _, state, _ in rows)
    print(f"{done}/{len(rows)} steps done" + (f", {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


def check(graph: Graph, step_id: str | None) -> int:
    steps = graph.by_id()
    if step_id not in steps:
        raise UserInputError(f"--step {step_id}: no such step in study {graph.name} (plan lists them)")
    step = steps[step_id]
    if not step.checked or step.is_done():
        return 0
    print(f"error: step {step_id} ended but its outputs are not whole or disagree with their check", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    study = load(args)
    graph = build_graph(study)
    if args.verb == "plan":
        return plan(study, graph, args.executor, args)
    if args.verb == "run":
        return run(study, graph, args.executor, args)
    if args.verb == "status":
        return status(graph)
    if args.verb == "cancel":
        cancelled = slurm.cancel(graph)
        print(
            f"study {graph.name}: {len(cancelled)} jobs cancelled" + (f" ({', '.join(cancelled)})" if cancelled else "")
        )
        return 0
    return check(graph, args.step)
