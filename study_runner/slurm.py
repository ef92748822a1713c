"""The Slurm executor: one batch script per step, submitted with `afterok` dependencies, requeued on preemption.

Every step that is not finished gets `<root>/slurm/<step>.sh` and one `sbatch --parsable` whose
`--dependency=afterok:...` names the jobs of the steps it needs; a step whose job is still pending or running
keeps that job (a rerun submits only what is missing). The job ids are kept in `<root>/study.json`, so
`status` reads each step's state from squeue / `scontrol show job` and `cancel` knows what to cancel.

A batch script runs the step's own command line from the repository root with `--requeue`, append-mode logs
and a warning signal before the time limit (`--signal=B:USR1@<grace>`). The script passes the warning on to
the tool, which saves a checkpoint at its next step and exits with `EXIT_PREEMPTED`; the script then requeues
its own job, and the restarted job continues with the step's resume arguments. On preemption Slurm itself
sends SIGTERM and requeues: the tool saves the same way. After the command the script runs the step's
done-check (`tools/study.py check`), so a job succeeds only when its outputs are whole and agree with an
outside evaluation, and its dependents never run otherwise. Multi-process steps start their tasks with srun,
as tools/slurm_pretrain.sh and tools/slurm_train.sh do.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from etcore.checkpoint_io import write_text_atomic
from etcore.errors import EXIT_PREEMPTED, UserInputError
from study_runner.graph import PRETRAIN, SEG_TEST, SEG_TRAIN, TEST, TRAIN, Graph, Step
from study_runner.state import StudyState

REPO = Path(__file__).resolve().parents[1]
# Resources a step kind asks for when the spec says nothing: a real study's pretraining is a multi-GPU job.
DEFAULT_RESOURCES: dict[str, dict[str, Any]] = {
    "prepare": {"cpus": 4, "mem": "16G", "time": "02:00:00"},
    PRETRAIN: {"gpus": 8, "cpus": 8, "mem": "0", "time": "3-00:00:00"},
    TRAIN: {"gpus": 8, "cpus": 5, "mem": "0", "time": "2-00:00:00"},
    SEG_TRAIN: {"gpus": 8, "cpus": 5, "mem": "0", "time": "2-00:00:00"},
    TEST: {"gpus": 1, "cpus": 8, "mem": "64G", "time": "04:00:00"},
    SEG_TEST: {"gpus": 1, "cpus": 8, "mem": "64G", "time": "04:00:00"},
    "report": {"cpus": 1, "mem": "8G", "time": "00:30:00"},
}
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "SUSPENDED"}
NEVER = "DependencyNeverSatisfied"  # squeue's reason for a job behind a failed one (kill_invalid_depend off)
RESOURCE_KEYS = {"gpus", "cpus", "mem", "time", "nodes", "constraint"}  # cpus: per task (process)


@dataclass
class SlurmOptions:
    """Where and with what a study's jobs run (command line over spec over defaults)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    grace_s: int = 120  # the warning signal comes this long before the time limit
    python: str = sys.executable

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], where: str, **given: Any) -> "SlurmOptions":
        """The spec's `slurm:` block, with the command line's partition/account/qos (when given) on top."""
        known = {"partition", "account", "qos", "resources", "grace_s"}
        extra = sorted(set(spec) - known)
        if extra:
            raise UserInputError(
                f"{where}: slurm: unknown key(s) {', '.join(extra)}: allowed are {', '.join(sorted(known))}"
            )
        resources: dict[str, dict[str, Any]] = {}
        for kind, values in (spec.get("resources") or {}).items():
            if not isinstance(values, Mapping) or set(values) - RESOURCE_KEYS:
                raise UserInputError(
                    f"{where}: slurm.resources.{kind} must be a mapping of {', '.join(sorted(RESOURCE_KEYS))}"
                )
            resources[str(kind)] = dict(values)
        chosen = {key: given.get(key) or spec.get(key) for key in ("partition", "account", "qos")}
        return cls(**chosen, resources=resources, grace_s=int(spec.get("grace_s", 120)))

    def resources_of(self, step: Step) -> dict[str, Any]:
        merged = dict(DEFAULT_RESOURCES.get(step.kind, DEFAULT_RESOURCES["report"]))
        merged.update(self.resources.get(step.kind, {}))
        return merged


# ------------------------------------------------------------------------------------------------ slurm calls


def require_slurm() -> None:
    """sbatch, squeue, scontrol and scancel on PATH, or one line saying where to run."""
    missing = [tool for tool in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(tool) is None]
    if missing:
        raise UserInputError(
            f"{missing[0]} is not on PATH: run the study on a Slurm login node, or use --executor local"
        )


def _slurm(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split()) or f"exit {result.returncode}"
        raise UserInputError(f"{args[0]}: {message}")
    return result


def check_submission(options: SlurmOptions) -> None:
    """Ask Slurm whether a job with these partition/account/qos would be accepted (`sbatch --test-only`);
    Slurm's own message when not, before anything is submitted."""
    result = _slurm(["sbatch", "--test-only", *_placement(options), "--wrap", "true"], check=False)
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit {result.returncode}"
        raise UserInputError(f"Slurm refuses the study's jobs: {message}: check --partition, --account and --qos")


def job_states(job_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{job id: {state, reason, exit_code, restarts}} for the jobs Slurm still knows (squeue, then scontrol)."""
    wanted = {str(job) for job in job_ids if job}
    states: dict[str, dict[str, str]] = {}
    if not wanted:
        return states
    listing = _slurm(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i|%T|%r"], check=False).stdout
    for line in listing.splitlines():
        job, _, rest = line.strip().partition("|")
        if job in wanted:
            state, _, reason = rest.partition("|")
            states[job] = {"state": state, "reason": reason}
    for job in sorted(wanted - set(states)):  # finished jobs: slurmctld keeps them for MinJobAge
        shown = _slurm(["scontrol", "show", "job", job, "-o"], check=False)
        if shown.returncode == 0:
            fields = dict(re.findall(r"(\w+)=(\S*)", shown.stdout))
            states[job] = {
                "state": fields.get("JobState", "UNKNOWN"),
                "reason": fields.get("Reason", ""),
                "exit_code": fields.get("ExitCode", ""),
                "restarts": fields.get("Restarts", "0"),
            }
    return states


# ------------------------------------------------------------------------------------------------ the scripts


def job_name(step: Step, study: str) -> str:
    """The Slurm job name of a step: its output folder when it has one (so a study that shares a pretraining
    folder with another finds that study's queued job and waits for it instead of training twice), else the
    study and the step."""
    if step.work_dir is None:
        return f"{study}:{step.id}"
    folder = str(step.work_dir.resolve())
    return f"{step.kind}:{step.work_dir.name}:{hashlib.sha1(folder.encode()).hexdigest()[:10]}"


def queued_by_name() -> dict[str, str]:
    """{job name: job id} of this user's pending or running jobs."""
    listing = _slurm(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i|%j|%T"], check=False).stdout
    found = {}
    for line in listing.splitlines():
        job, _, rest = line.strip().partition("|")
        name, _, state = rest.rpartition("|")
        if state in ACTIVE:
            found[name] = job
    return found


def _placement(options: SlurmOptions) -> list[str]:
    args = []
    for flag, value in (("--partition", options.partition), ("--account", options.account), ("--qos", options.qos)):
        if value:
            args.append(f"{flag}={value}")
    return args


def sbatch_options(step: Step, options: SlurmOptions, study: str) -> list[str]:
    """The #SBATCH lines of a step: name, log, requeue, warning signal, placement and the kind's resources."""
    res = options.resources_of(step)
    lines = [
        f"--job-name={job_name(step, study)}",
        f"--output={step.log}",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{options.grace_s}",
        *_placement(options),
        f"--time={res['time']}",
        f"--mem={res['mem']}",
    ]
    gpus = int(res.get("gpus", 0))
    tasks = max(step.tasks, gpus) if step.kind in (PRETRAIN, TRAIN, SEG_TRAIN) else step.tasks
    if res.get("nodes"):
        lines.append(f"--nodes={res['nodes']}")
    lines.append(f"--ntasks={tasks}")
    if gpus:
        per_node = gpus // int(res.get("nodes", 1) or 1)
        lines += [f"--gres=gpu:{per_node}", f"--ntasks-per-node={min(tasks, per_node)}"]
    cpus = res.get("cpus")
    if cpus:
        lines.append(f"--cpus-per-task={cpus}")
    if res.get("constraint"):
        lines.append(f"--constraint={res['constraint']}")
    return lines


def batch_script(
    step: Step, options: SlurmOptions, study: str, check: Sequence[str] | None, ended: Path | None = None
) -> str:
    """The whole batch script of one step (see the module docstring for what it does and why). A step without
    a done-check (prepare, report) writes its job id to `ended` when it succeeds instead."""
    command = [options.python, *step.command]
    sbatch = sbatch_options(step, options, study)
    tasks = int(next(line.split("=")[1] for line in sbatch if line.startswith("--ntasks=")))
    if tasks > 1:  # one process per task, ranks from Slurm's variables (tools/slurm_pretrain.sh's way)
        launcher = ["--launcher", "slurm"] if step.kind in (TRAIN, SEG_TRAIN, TEST, SEG_TEST) else []
        command = [
            "srun",
            "--kill-on-bad-exit=1",
            "bash",
            "-c",
            'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"; exec "$0" "$@"',
            *command,
            *launcher,
        ]
    fresh = " ".join(shlex.quote(str(path)) for path in step.fresh_files)
    resume = " ".join(shlex.quote(arg) for arg in step.resume_args)
    lines = ["#!/bin/bash", *(f"#SBATCH {line}" for line in sbatch), ""]
    lines += [
        f"# step {step.id} of study {study}, written by tools/study.py; its command line:",
        f"#   {step.shell()}",
        f"cd {shlex.quote(str(REPO))}",
        "export PYTHONUNBUFFERED=1",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}" MKL_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        'export MASTER_PORT="${MASTER_PORT:-$(( 20000 + ${SLURM_JOB_ID:-0} % 20000 ))}"',
        'restarts="${SLURM_RESTART_COUNT:-0}"',
        'echo "[study] $(date -Is) job ${SLURM_JOB_ID:-?} start ${restarts} on $(hostname)"',
        "extra=()",
        'if [ "$restarts" -eq 0 ]; then',
        f"  rm -f {fresh}" if fresh else "  :",
        "else",
        f"  extra=({resume})" if resume else "  :",
        "fi",
        "warned=0",
        'on_warning() { warned=1; [ -n "${child:-}" ] && kill -USR1 "$child" 2>/dev/null; }',
        'on_term() { [ -n "${child:-}" ] && kill -TERM "$child" 2>/dev/null; }',
        "trap on_warning USR1",
        "trap on_term TERM",
        f'{shlex.join(command)} "${{extra[@]}}" &',
        "child=$!",
        'while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done',
        f'if [ "$rc" -eq {EXIT_PREEMPTED} ]; then',
        '  echo "[study] $(date -Is) stopped and saved (exit $rc)"',
        '  if [ "$warned" -eq 1 ]; then scontrol requeue "$SLURM_JOB_ID"; fi',
        "  exit $rc",
        "fi",
        'if [ "$rc" -ne 0 ]; then echo "[study] $(date -Is) failed (exit $rc)"; exit "$rc"; fi',
    ]
    if check:
        lines.append(shlex.join([options.python, *check]))
    if ended is not None:
        lines.append(f'echo "$SLURM_JOB_ID" > {shlex.quote(str(ended))}')
    lines.append("")
    return "\n".join(lines)


def _script_path(graph: Graph, step: Step) -> Path:
    return graph.root / "slurm" / (re.sub(r"[^\w.-]+", "__", step.id) + ".sh")


def _ended_path(graph: Graph, step: Step) -> Path:
    """Where a step without a done-check records the job that ran it to the end."""
    return _script_path(graph, step).with_suffix(".ended")


def _ended_well(graph: Graph, step: Step, job: str | None) -> bool:
    """Whether `job` ran the unchecked `step` to its successful end (Slurm forgets finished jobs; this stays)."""
    marker = _ended_path(graph, step)
    return bool(job) and not step.checked and marker.is_file() and marker.read_text().strip() == str(job)


# ------------------------------------------------------------------------------------------------ verbs


def submit(graph: Graph, options: SlurmOptions, check_args: Sequence[str] | None = None) -> dict[str, str]:
    """Submit every unfinished step that has no pending or running job; return {step id: job id} of the graph.

    `check_args` is the `tools/study.py check ...` command (without the step) the scripts end with.
    """
    require_slurm()
    check_submission(options)
    record = StudyState.load(graph.root)
    recorded = {step.id: record.get(step.id).get("job") for step in graph.steps}
    states = job_states([job for job in recorded.values() if job])
    stuck = [job for job, known in states.items() if known.get("reason") == NEVER]
    if stuck:  # pending behind a job that failed: they would never start; their steps are submitted anew
        _slurm(["scancel", *stuck])
        states = {job: known for job, known in states.items() if job not in stuck}
    by_name = queued_by_name()
    jobs: dict[str, str] = {}
    submitted = kept = finished = 0
    fresh: set[str] = set()  # steps submitted in this round: what needs them runs again
    for step in graph.steps:
        job = recorded.get(step.id)
        if not (job and states.get(job, {}).get("state") in ACTIVE):
            job = by_name.get(job_name(step, graph.name))  # queued by another study for the same folder
        if job and job not in stuck:
            jobs[step.id] = job
            record.set(step.id, "submitted", job=job, log=step.log)
            kept += 1
            continue
        ran = recorded.get(step.id)
        if step.is_done() or (_ended_well(graph, step, ran) and not fresh & set(step.needs)):
            record.set(step.id, "done", log=step.log)  # the entry keeps its job id
            finished += 1
            continue
        check = [*check_args, "--step", step.id] if check_args is not None and step.checked else None
        script = _script_path(graph, step)
        if step.log is not None:
            step.log.parent.mkdir(parents=True, exist_ok=True)  # Slurm does not make the log's folder
        ended = None if step.checked else _ended_path(graph, step)
        write_text_atomic(batch_script(step, options, graph.name, check, ended), script)
        script.chmod(0o755)
        after = [jobs[need] for need in step.needs if need in jobs]
        dependency = [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=no"] if after else []
        job = _slurm(["sbatch", "--parsable", *dependency, str(script)]).stdout.strip().split(";")[0]
        jobs[step.id] = job
        record.set(step.id, "submitted", job=job, log=step.log, script=script)
        fresh.add(step.id)
        submitted += 1
    print(
        f"study {graph.name}: {submitted} jobs submitted, {kept} still queued or running, {finished} steps finished",
        flush=True,
    )
    return jobs


def status(graph: Graph) -> list[tuple[Step, str, str]]:
    """(step, state, detail) for every step: finished by its done-check, else its job's state from Slurm."""
    record = StudyState.load(graph.root)
    states = job_states([record.get(step.id).get("job") for step in graph.steps])
    rows = []
    for step in graph.steps:
        entry = record.get(step.id)
        job = entry.get("job")
        if step.is_done() or _ended_well(graph, step, job):
            rows.append((step, "done", f"job {job}" if job else ""))
            continue
        known = states.get(str(job), {}) if job else {}
        state = known.get("state") or entry.get("state", "not submitted")
        detail = f"job {job}" if job else ""
        if known.get("reason") and known["reason"] not in ("None", "(null)"):
            detail += f", {known['reason']}"
        if known.get("exit_code") and known["exit_code"] != "0:0":
            detail += f", exit {known['exit_code']}"
        if known.get("restarts") and known["restarts"] != "0":
            detail += f", restarted {known['restarts']}x"
        if job and not known and entry.get("state") in ("submitted", "running"):
            state = "ended (not finished)"  # Slurm forgot the job and its outputs are not whole
        if state in ("COMPLETED",):  # the job ended but the done-check disagrees (outputs gone or changed)
            state = "ended (not finished)"
        rows.append((step, state, detail))
    return rows


def cancel(graph: Graph) -> list[str]:
    """scancel every pending or running job of the study; return the cancelled ids."""
    require_slurm()
    record = StudyState.load(graph.root)
    jobs = {step.id: record.get(step.id).get("job") for step in graph.steps}
    states = job_states([job for job in jobs.values() if job])
    active = [job for job in jobs.values() if job and states.get(job, {}).get("state") in ACTIVE]
    if active:
        _slurm(["scancel", *active])
    for step_id, job in jobs.items():
        if job in active:
            record.set(step_id, "cancelled", job=job)
    return active
