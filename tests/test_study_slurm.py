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


@pytest.mark.timeout(1800)
def test_the_smoke_demo_study_on_slurm_gives_the_local_numbers(cluster, tmp_path: Path) -> None:
    data = tmp_path / "data"
    local_root, slurm_root = tmp_path / "local", tmp_path / "slurm"
    common = ["--var", f"data={data}"]
    ran = study("run", str(SMOKE), "--root", str(local_root), *common)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    submitted = study("run", str(SMOKE), "--root", str(slurm_root), "--executor", "slurm", *common, env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    assert "15 jobs submitted" in submitted.stdout or "16 jobs submitted" in submitted.stdout
    record = wait_for_jobs(cluster, slurm_root, timeout_s=900)
    assert all(entry["state"] != "failed" for entry in record.values())
    status = study("status", str(SMOKE), "--root", str(slurm_root), *common, env=cluster.env)
    assert status.returncode == 0 and "16/16 steps done" in status.stdout, status.stdout + status.stderr
    ours, theirs = numbers(local_root), numbers(slurm_root)
    assert len(ours) == 2 + 4 + 2 and ours == theirs  # 2 pretrainings, 4 detectors, 2 UperNets: number for number
    assert (slurm_root / "report.md").is_file()
    again = study("run", str(SMOKE), "--root", str(slurm_root), "--executor", "slurm", *common, env=cluster.env)
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


def _preemption_spec(tmp_path: Path, tasks: int = 1) -> Path:
    """A study of one EfficientTrain pretraining (5 stages, ~12 updates an epoch) and one RetinaNet fine-tune of
    40 iterations: long enough to be stopped in the middle of both."""
    spec = tmp_path / "preempt.yaml"
    retinanet_40 = [
        "train_cfg.max_iters=40",
        "train_cfg.val_interval=40",
        "default_hooks.checkpoint.interval=40",
        "default_hooks.logger.interval=1",
        "param_scheduler.0.end=5",
        "param_scheduler.1.end=40",
        "train_cfg.val_begin=41",
        "param_scheduler.1.milestones=[26,36]",
    ]
    spec.write_text(
        yaml.safe_dump(
            {
                "base": str(SMOKE),
                "name": "preempt",
                "prepare": [
                    {
                        "name": "data",
                        "command": [
                            "tools/make_demo_data.py",
                            "--out",
                            "{data}",
                            "--train-per-class",
                            "20",
                            "--val-per-class",
                            "2",
                            "--image-size",
                            "64",
                            "--coco-train",
                            "6",
                            "--coco-val",
                            "4",
                        ],
                    }
                ],
                "pretrain": [{"name": "resnet18", "curricula": ["efficienttrain"], "epochs": 5, "tasks": tasks}],
                "finetune": [
                    {"name": "retinanet", "cfg_options": retinanet_40},
                    {"name": "cascade_mask_rcnn", "drop": True},
                    {"name": "upernet", "drop": True},
                ],
                "report": False,
            }
        )
    )
    return spec


def _weights(path: Path) -> dict:
    state = load_checkpoint_file(path)
    return state.get("state_dict") or state["model"]


@pytest.mark.timeout(1800)
def test_preempted_steps_resume_to_the_weights_of_an_uninterrupted_run(cluster, tmp_path: Path) -> None:
    """`scontrol requeue` in the middle of the pretraining (Slurm's SIGTERM), then the warning signal (B:USR1 to
    the batch script, as --signal sends it before the time limit) in the middle of the fine-tune: each job saves,
    is requeued, resumes, and the final weights equal those of the same study run here without a stop."""
    import torch

    spec, data = _preemption_spec(tmp_path), ["--var", f"data={tmp_path / 'data'}"]
    local_root, slurm_root = tmp_path / "local", tmp_path / "slurm"
    ran = study("run", str(spec), "--root", str(local_root), *data)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    submitted = study("run", str(spec), "--root", str(slurm_root), "--executor", "slurm", *data, env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    jobs = {k: v["job"] for k, v in json.loads((slurm_root / "study.json").read_text())["steps"].items()}
    pretrain_log = slurm_root / "pretrain" / "resnet18_efficienttrain_e5_s0" / "log.jsonl"
    wait_for(lambda: pretrain_log.is_file() and pretrain_log.read_text().strip(), 600, "the first epoch")
    first = json.loads(pretrain_log.read_text().splitlines()[0])
    time.sleep(0.5 * first["train_s"])  # about the middle of the second epoch
    cluster.run("scontrol", "requeue", jobs["pretrain/resnet18_efficienttrain_e5_s0"])
    release_when_requeued(cluster, jobs["pretrain/resnet18_efficienttrain_e5_s0"])
    train_log = slurm_root / "logs" / "train_retinanet_resnet18_efficienttrain_e5_s0.log"
    wait_for(lambda: train_log.is_file() and "Iter(train) [12/40]" in train_log.read_text(), 900, "iteration 12")
    cluster.run("scancel", "--batch", "--signal=USR1", jobs["train/retinanet_resnet18_efficienttrain_e5_s0"])
    release_when_requeued(cluster, jobs["train/retinanet_resnet18_efficienttrain_e5_s0"])
    record = wait_for_jobs(cluster, slurm_root, timeout_s=900)
    assert all(entry["state"] != "failed" for entry in record.values()), record
    for job in (jobs["pretrain/resnet18_efficienttrain_e5_s0"], jobs["train/retinanet_resnet18_efficienttrain_e5_s0"]):
        shown = cluster.run("scontrol", "show", "job", job, "-o").stdout
        assert "JobState=COMPLETED" in shown and "Restarts=1" in shown, shown
    pretrain_text = (slurm_root / "logs" / "pretrain_resnet18_efficienttrain_e5_s0.log").read_text()
    assert "exit 75" in pretrain_text and "start 1 on" in pretrain_text  # stopped, saved, and restarted
    assert "resumes at epoch 1 step" in pretrain_text  # inside the second epoch, not at its start
    assert "exit 75" in train_log.read_text() and "start 1 on" in train_log.read_text()
    for relative in (
        "pretrain/resnet18_efficienttrain_e5_s0/final.pth",
        "det/retinanet_resnet18_efficienttrain_e5_s0/iter_40.pth",
    ):
        ours, theirs = _weights(local_root / relative), _weights(slurm_root / relative)
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), relative


@pytest.mark.timeout(1200)
def test_srun_starts_a_two_process_pretraining_that_matches_one_process(cluster, tmp_path: Path) -> None:
    """`tasks: 2` runs the pretraining as two srun tasks (gloo on CPU, ranks from Slurm's variables) at the same
    effective batch; it ends where one process does (the DDP test's tolerance: tests/test_pretrain_ddp.py).
    ConvNeXt-Atto: LayerNorm only, so the two processes' statistics are the one process's."""
    import torch

    spec = _preemption_spec(tmp_path, tasks=2)
    text = yaml.safe_load(spec.read_text())
    text["pretrain"][0].update(model="convnext_atto", epochs=2, recipe={"batch_size": 8, "accum_steps": 1})
    text["slurm"] = {"resources": {"pretrain": {"gpus": 0, "cpus": 1, "mem": "3G", "time": "00:30:00"}}}
    text["finetune"] = [{"name": name, "drop": True} for name in ("retinanet", "cascade_mask_rcnn", "upernet")]
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
    final = "pretrain/resnet18_efficienttrain_e2_s0/final.pth"  # the entry keeps its name
    a, b = load_checkpoint_file(tmp_path / "one" / final), load_checkpoint_file(tmp_path / "two" / final)
    assert b["provenance"]["devices"] == 2 and a["provenance"]["effective_batch"] == b["provenance"]["effective_batch"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
