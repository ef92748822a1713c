"""The study runner against a real single-node Slurm (tests/slurm_cluster.py): the smoke demo study on Slurm gives
the local executor's numbers, a failing step leaves its dependents unrun and `status` names it, preempted steps
resume to the same weights, srun starts a two-process pretraining, and bad input submits nothing.

The cluster starts once per session. On a machine without root or Slurm these tests skip and say why; in CI
(CI=true) they must run, so there a missing cluster fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from etcore.checkpoint_io import load_checkpoint_file
from etcore.formats import METRICS_FILE, PRETRAIN_FINAL, SEG_METRICS_FILE
from slurm_cluster import ClusterUnavailable, start_cluster, wait_for

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "studies" / "demo_smoke.yaml"
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    try:
        running = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI runs the Slurm tests, but no cluster could be started: {why}")
        pytest.skip(f"no single-node Slurm here: {why}")
    yield running
    running.stop()


def study(*args: str, env: dict | None = None, threads: int = 2) -> subprocess.CompletedProcess:
    """`python tools/study.py ARGS` from the repository root."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
    return subprocess.run(
        [sys.executable, "tools/study.py", *args], cwd=REPO, capture_output=True, text=True, env=environment
    )


def wait_for_jobs(cluster, root: Path, timeout_s: float) -> dict:
    """Wait until none of the study's jobs is pending or running; return its record."""

    def settled():
        record = json.loads((root / "study.json").read_text())["steps"]
        jobs = [entry["job"] for entry in record.values() if entry.get("job")]
        queued = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
        return record if not set(jobs) & set(queued) else None

    return wait_for(settled, timeout_s, f"the jobs of {root}")


def release_when_requeued(cluster, job: str, timeout_s: float = 300) -> None:
    """A requeued job waits out a BeginTime delay (about 2 minutes here); start it now instead."""

    def held() -> bool:
        shown = cluster.run("scontrol", "show", "job", job, "-o", check=False).stdout
        return "JobState=PENDING" in shown and "Reason=BeginTime" in shown

    wait_for(held, timeout_s, f"job {job} to be requeued", every_s=1.0)
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")


def numbers(root: Path) -> dict:
    """Every metric a study wrote: pretraining top-1 and every COCO / ADE20K number, by work dir name."""
    found = {}
    for final in sorted((root / "pretrain").glob(f"*/{PRETRAIN_FINAL}")):
        prov = load_checkpoint_file(final)["provenance"]
        found[final.parent.name] = (prov["final_top1"], prov["final_top5"])
    for name in (METRICS_FILE, SEG_METRICS_FILE):
        for path in sorted(root.glob(f"*/*/{name}")):
            found[path.parent.name] = json.loads(path.read_text())["metrics"]
    return found


SAME_AS_LOCAL = {"gpus": 0, "cpus": 2, "mem": "4G", "time": "01:00:00"}


def _smoke_spec(tmp_path: Path) -> Path:
    """The smoke demo study's EfficientTrain arm, long enough to be stopped in the middle of a pretraining and of
    a fine-tune: 24 training images a class (15 updates an epoch, 3-4 s here), 2 epochs, a RetinaNet of 12
    iterations logging each one. The baseline arm runs the same code: it is left out for the suite's time."""
    retinanet_12 = [
        "train_cfg.max_iters=12",
        "train_cfg.val_interval=12",
        "default_hooks.checkpoint.interval=12",
        "default_hooks.logger.interval=1",
        "param_scheduler.0.end=3",
        "param_scheduler.1.end=12",
        "train_cfg.val_begin=13",
        "param_scheduler.1.milestones=[8,10]",
    ]
    spec = tmp_path / "smoke.yaml"
    prepare = yaml.safe_load(SMOKE.read_text())["prepare"][0]["command"]
    prepare[prepare.index("--train-per-class") + 1] = "24"
    spec.write_text(
        yaml.safe_dump(
            {
                "base": str(SMOKE),
                "name": "smoke-slurm",
                "prepare": [{"name": "data", "command": prepare}],
                "pretrain": [{"name": "resnet18", "curricula": ["efficienttrain"], "epochs": 2}],
                "finetune": [
                    {"name": "retinanet", "cfg_options": retinanet_12},
                    {"name": "cascade_mask_rcnn", "drop": True},
                ],
                # The local executor gives one checkpoint's fine-tunes and tests both cores: so do these jobs
                # (float sums in another thread count would end the same run with other last bits).
                "slurm": {
                    "resources": {kind: {**SAME_AS_LOCAL} for kind in ("train", "test", "seg_train", "seg_test")}
                },
            }
        )
    )
    return spec


def _weights(path: Path) -> dict:
    state = load_checkpoint_file(path)
    return state.get("state_dict") or state["model"]


@pytest.mark.timeout(2400)
def test_the_smoke_demo_study_on_slurm_survives_preemption_and_gives_the_local_numbers(cluster, tmp_path: Path) -> None:
    """The smoke demo study (RetinaNet and UperNet from an EfficientTrain pretraining, tested; the report) run
    here and on Slurm. On Slurm, `scontrol requeue` stops the EfficientTrain pretraining in its second epoch (Slurm's
    SIGTERM) and the warning signal (B:USR1, as --signal sends it before the time limit) stops its RetinaNet
    at iteration 6: each job saves, is requeued and resumes. Every number equals the local run's, and the two
    stopped runs end with the same weights, tensor for tensor."""
    import torch

    spec, data = _smoke_spec(tmp_path), ["--var", f"data={tmp_path / 'data'}"]
    local_root, slurm_root = tmp_path / "local", tmp_path / "slurm"
    ran = study("run", str(spec), "--root", str(local_root), *data)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    submitted = study("run", str(spec), "--root", str(slurm_root), "--executor", "slurm", *data, env=cluster.env)
    assert submitted.returncode == 0 and "7 jobs submitted" in submitted.stdout, submitted.stdout + submitted.stderr
    jobs = {k: v["job"] for k, v in json.loads((slurm_root / "study.json").read_text())["steps"].items()}
    pretrain, train = "pretrain/resnet18_efficienttrain_e2_s0", "train/retinanet_resnet18_efficienttrain_e2_s0"
    pretrain_log = slurm_root / "pretrain" / "resnet18_efficienttrain_e2_s0" / "log.jsonl"
    wait_for(lambda: pretrain_log.is_file() and pretrain_log.read_text().strip(), 900, "the first epoch", 0.1)
    time.sleep(0.4 * json.loads(pretrain_log.read_text().splitlines()[0])["train_s"])  # the second epoch's middle
    cluster.run("scontrol", "requeue", jobs[pretrain])
    release_when_requeued(cluster, jobs[pretrain])
    train_log = slurm_root / "logs" / "train_retinanet_resnet18_efficienttrain_e2_s0.log"
    wait_for(lambda: train_log.is_file() and "Iter(train) [ 6/12]" in train_log.read_text(), 900, "iteration 6", 0.1)
    cluster.run("scancel", "--batch", "--signal=USR1", jobs[train])
    release_when_requeued(cluster, jobs[train])
    record = wait_for_jobs(cluster, slurm_root, timeout_s=1200)
    assert all(entry["state"] != "failed" for entry in record.values()), record
    for step in (pretrain, train):
        shown = cluster.run("scontrol", "show", "job", jobs[step], "-o").stdout
        assert "JobState=COMPLETED" in shown and "Restarts=1" in shown, shown
    pretrain_text = (slurm_root / "logs" / "pretrain_resnet18_efficienttrain_e2_s0.log").read_text()
    assert "stopped on SIGTERM" in pretrain_text and "start 1 on" in pretrain_text  # saved, requeued, restarted
    assert "resumes at epoch 1 step" in pretrain_text  # inside the second epoch, not at its start
    assert "stopped on SIGUSR1" in train_log.read_text() and "start 1 on" in train_log.read_text()
    status = study("status", str(spec), "--root", str(slurm_root), *data, env=cluster.env)
    assert status.returncode == 0 and "7/7 steps done" in status.stdout, status.stdout + status.stderr
    ours, theirs = numbers(local_root), numbers(slurm_root)
    assert len(ours) == 3 and ours == theirs  # the pretraining, its RetinaNet and its UperNet: number for number
    for relative in (f"{pretrain}/final.pth", "det/retinanet_resnet18_efficienttrain_e2_s0/iter_12.pth"):
        a, b = _weights(local_root / relative), _weights(slurm_root / relative)
        assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a), relative
    assert (slurm_root / "report.md").is_file()
    again = study("run", str(spec), "--root", str(slurm_root), "--executor", "slurm", *data, env=cluster.env)
    assert "0 jobs submitted" in again.stdout  # a rerun submits only what is missing: nothing


def test_a_failing_step_leaves_its_dependents_unrun_and_status_names_it(cluster, tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "base": str(SMOKE),
                "name": "broken",
                "prepare": [{"name": "data", "drop": True}],
                "pretrain": [{"name": "resnet18", "curricula": ["baseline"], "data": str(tmp_path / "missing")}],
                "finetune": [{"name": "cascade_mask_rcnn", "drop": True}, {"name": "upernet", "drop": True}],
            }
        )
    )
    root = tmp_path / "w"
    submitted = study("run", str(spec), "--root", str(root), "--executor", "slurm", env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    failed_job = json.loads((root / "study.json").read_text())["steps"]["pretrain/resnet18_baseline_e2_s0"]["job"]

    def pretraining_failed():
        shown = cluster.run("scontrol", "show", "job", failed_job, "-o", check=False).stdout
        return "JobState=FAILED" in shown

    wait_for(pretraining_failed, 300, "the pretraining job to fail")
    status = study("status", str(spec), "--root", str(root), env=cluster.env)
    assert status.returncode == 1
    log = root / "logs" / "pretrain_resnet18_baseline_e2_s0.log"
    assert f"error: step pretrain/resnet18_baseline_e2_s0 failed: see {log}" in status.stderr
    assert status.stderr.count("error:") == 1 and "does not exist" in log.read_text()  # the tool's own line
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:-1]}
    for dependent in ("train/retinanet_resnet18_baseline_e2_s0", "test/retinanet_resnet18_baseline_e2_s0", "report"):
        assert "DependencyNeverSatisfied" in lines[dependent] or "PENDING" in lines[dependent], lines[dependent]
    assert not (root / "det").exists()  # nothing downstream ever ran
    cancelled = study("cancel", str(spec), "--root", str(root), env=cluster.env)
    assert "3 jobs cancelled" in cancelled.stdout, cancelled.stdout + cancelled.stderr


def test_bad_input_submits_nothing(cluster, tmp_path: Path) -> None:
    root = tmp_path / "w"
    unknown = study(
        "run", str(SMOKE), "--root", str(root), "--executor", "slurm", "--partition", "nope", env=cluster.env
    )
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "Slurm refuses the study's jobs" in unknown.stderr and "nope" in unknown.stderr
    assert not (root / "study.json").exists()
    no_slurm = study(
        "run", str(SMOKE), "--root", str(root), "--executor", "slurm", env={**cluster.env, "PATH": "/nowhere"}
    )
    assert no_slurm.returncode == 2 and "sbatch is not on PATH" in no_slurm.stderr
    assert not (root / "study.json").exists()


@pytest.mark.timeout(1200)
def test_srun_starts_a_two_process_pretraining_that_matches_one_process(cluster, tmp_path: Path) -> None:
    """`tasks: 2` runs the pretraining as two srun tasks (gloo on CPU, ranks from Slurm's variables) at the same
    effective batch; it ends where one process does (the DDP test's tolerance: tests/test_pretrain_ddp.py).
    ConvNeXt-Atto: LayerNorm only, so the two processes' statistics are the one process's."""
    import torch

    spec = _smoke_spec(tmp_path)
    text = yaml.safe_load(spec.read_text())
    text["pretrain"][0].update(
        model="convnext_atto",
        curricula=["efficienttrain"],
        epochs=2,
        tasks=2,
        recipe={"batch_size": 8, "accum_steps": 1},
    )
    text["slurm"] = {"resources": {"pretrain": {"gpus": 0, "cpus": 1, "mem": "3G", "time": "00:30:00"}}}
    text["finetune"] = [{"name": name, "drop": True} for name in ("retinanet", "cascade_mask_rcnn", "upernet")]
    text["report"] = False
    spec.write_text(yaml.safe_dump(text))
    data = ["--var", f"data={tmp_path / 'data'}"]
    two = study("run", str(spec), "--root", str(tmp_path / "two"), "--executor", "slurm", *data, env=cluster.env)
    assert two.returncode == 0, two.stderr
    wait_for_jobs(cluster, tmp_path / "two", timeout_s=600)
    assert "--ntasks=2" in (tmp_path / "two" / "slurm" / "pretrain__resnet18_efficienttrain_e2_s0.sh").read_text()
    text["pretrain"][0].update(tasks=1, recipe={"batch_size": 16, "accum_steps": 1})
    spec.write_text(yaml.safe_dump(text))
    one = study("run", str(spec), "--root", str(tmp_path / "one"), *data)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
    final = "pretrain/resnet18_efficienttrain_e2_s0/final.pth"  # the entry keeps its name, the model changed
    a, b = load_checkpoint_file(tmp_path / "one" / final), load_checkpoint_file(tmp_path / "two" / final)
    assert b["provenance"]["devices"] == 2 and a["provenance"]["effective_batch"] == b["provenance"]["effective_batch"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
