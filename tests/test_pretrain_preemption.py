"""Preemption: SIGUSR1/SIGTERM stop a pretraining at the next optimizer-update boundary with a resumable last.pth
(exit code 75, one stderr line), and `--resume` ends bit for bit where an uninterrupted run ends: final.pth
weights and EMA (torch.equal on every tensor) and log.jsonl's losses, LRs and top-1.

The signal is sent by a training callback at a chosen point (`tests/fault_callbacks.py`), so there is no
timing race. Shown to fail (docs/RELIABILITY.md): a resumed epoch that starts its sampler one batch too
early, or that does not restore the epoch's loss sum, breaks these tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import EXIT_PREEMPTED
from fault_callbacks import FaultCallback, fault_command
from pretrain_fixtures import assert_same_run, read_log, tiny_args, write_two_stage_curriculum
from pretraining.callbacks import TrainingCallback
from pretraining.cli import main
from pretraining.data import EpochKeySampler

REPO = Path(__file__).resolve().parents[1]
MODEL = "swin_tiny_patch4_window7_224"  # size-bound tables and their AdamW moments are resampled at the switch
# 24 train images, --batch-size 2 --accum-steps 2 (effective 4, 6 updates an epoch). Stage 0 (epochs 0-1, 32 px)
# runs 4 x 1 (the official batch scaling below full size): 6 micro-batches an epoch; stage 1 (epoch 2, 64 px)
# runs 2 x 2: 12 micro-batches, two per update. Mixup/cutmix and drop path draw from the RNGs every step.
UPDATES_PER_EPOCH = 6


class _HandlerProbe(TrainingCallback):
    """Records the SIGUSR1/SIGTERM handlers in place while the run trains."""

    def __init__(self) -> None:
        self.seen: set = set()

    def before_update(self, update: int) -> None:
        self.seen.add((signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)))


def _sentinel(signum: int, frame: object) -> None:
    """A handler of the caller's that main must put back."""


@pytest.fixture(scope="module")
def setup(module_tmp: Path, image_folder: Path) -> dict:
    root = module_tmp
    curriculum = write_two_stage_curriculum(root / "two.json", small_epochs=2, final_epochs=1)

    def args(work: Path) -> list[str]:
        return tiny_args(
            MODEL,
            image_folder,
            work,
            curriculum,
            epochs=3,
            ema=True,
            deterministic=True,
            drop_path=0.1,
            batch_size=2,
            accum_steps=2,
        )

    reference = root / "reference"
    probe = _HandlerProbe()
    previous = {signum: signal.signal(signum, _sentinel) for signum in (signal.SIGUSR1, signal.SIGTERM)}
    try:
        assert main(args(reference), callbacks=[probe]) == 0
        after = (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return {"root": root, "args": args, "reference": reference, "during": probe.seen, "after": after}


def test_main_handles_the_stop_signals_only_while_it_runs(setup: dict) -> None:
    """main (called in-process here) installs its handlers for the run and gives the caller's back afterwards."""
    assert len(setup["during"]) == 1
    during_usr1, during_term = next(iter(setup["during"]))
    assert during_usr1 is not _sentinel and during_term is not _sentinel
    assert setup["after"] == (_sentinel, _sentinel)


def _run_signalled(args: list[str], fault: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit code, stderr) of a run with `fault`'s signal: in a subprocess with its own session when the signal
    goes to the process group (data-loader workers included, nothing else), else in this process."""
    if not fault.split("@")[0].endswith("-group"):
        code = main(args, callbacks=[FaultCallback(fault)])
        return code, capsys.readouterr().err
    # the in-process reference run's thread count: float sums differ across counts
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(
        fault_command(fault, args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    return done.returncode, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, extra, epoch, step, updates",
    [
        # just before update 9 (epoch 1, inside stage 0), to the whole process group: the persistent
        # data-loader worker gets it too and must survive; stops after update 9; stage 1 starts after the resume
        pytest.param("sigusr1-group@iter=9", ["--workers", "1"], 1, 3, 9, marks=pytest.mark.subprocess),
        # during the first micro-batch of update 15 (epoch 2, 2 micro-batches an update): the accumulation
        # finishes, the run stops after update 15, at micro-batch 6 of the epoch
        ("sigterm@micro=17", [], 2, 6, 15),
        # while the end-of-epoch-0 last.pth is written: that write completes, and the run stops right after it
        ("sigusr1@save=1", [], 1, 0, UPDATES_PER_EPOCH),
    ],
)
def test_stopped_run_resumes_to_the_same_weights_and_log(
    setup: dict, capsys: pytest.CaptureFixture, fault: str, extra: list[str], epoch: int, step: int, updates: int
) -> None:
    work = setup["root"] / fault.replace("@", "_").replace("=", "")
    code, stderr = _run_signalled(setup["args"](work) + extra, fault, capsys)
    assert code == EXIT_PREEMPTED, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("stopped on ")]
    name = "SIGTERM" if fault.startswith("sigterm") else "SIGUSR1"
    assert len(lines) == 1 and lines[0].startswith(f"stopped on {name}: saved {work / 'last.pth'}"), stderr
    assert "--resume" in lines[0]
    assert not (work / "final.pth").exists() and not list(work.glob(".*.tmp"))

    state = load_checkpoint_file(work / "last.pth")["resume"]
    assert (state["epoch"], state["progress"]["updates"]) == (epoch, updates)
    if step:
        assert state["position"]["step"] == step and len(state["position"]["ranks"]) == 1
        assert step % (2 if epoch == 2 else 1) == 0  # an update boundary: never inside an accumulation
    else:
        assert state["position"] is None  # the end-of-epoch last.pth
    assert [row["epoch"] for row in read_log(work)] == list(range(epoch))

    assert main(setup["args"](work) + extra + ["--resume"]) == 0
    assert_same_run(setup["reference"], work, epochs=3, images_per_epoch=24)


def test_sampler_resumes_inside_an_epoch_without_touching_the_skipped_samples() -> None:
    """`set_epoch(epoch, start)` yields exactly the rest of the epoch's keys: nothing before `start` is drawn."""
    dataset = list(range(24))
    for rank in (0, 1):
        sampler = EpochKeySampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(5)
        whole = list(sampler)
        sampler.set_epoch(5, start=4)
        assert list(sampler) == whole[4:] and len(sampler) == len(whole) == 12
        sampler.set_epoch(6)  # the next epoch starts at its beginning again
        assert len(list(sampler)) == 12 and all(epoch == 6 for epoch, _ in sampler)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two(command: list[str]) -> list[subprocess.CompletedProcess]:
    """`command` as ranks 0 and 1 of a gloo group (one process a rank, as srun starts them)."""
    port = str(_free_port())
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2")
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.slow
@pytest.mark.subprocess
def test_one_signalled_rank_stops_both_ranks_at_the_same_update(tmp_path: Path, image_folder: Path) -> None:
    """Two gloo processes; only rank 1 gets SIGUSR1 (before update 2): both stop after update 2, rank 0 writes
    last.pth with both ranks' positions and RNG states, and the resumed pair ends as the uninterrupted pair."""
    curriculum = write_two_stage_curriculum(tmp_path / "two.json")  # epoch 0 at 32 px, epoch 1 at 64 px

    def args(work: Path) -> list[str]:  # 24 images / (4 x 2 processes) = 3 updates an epoch
        return tiny_args(MODEL, image_folder, work, curriculum, epochs=2, ema=True, deterministic=True, drop_path=0.1)

    pretrain = [sys.executable, str(REPO / "tools" / "pretrain.py")]
    reference, work = tmp_path / "reference", tmp_path / "stopped"
    assert [r.returncode for r in _launch_two(pretrain + args(reference))] == [0, 0]

    stopped = _launch_two(fault_command("sigusr1@iter=2@rank=1", args(work)))
    assert [r.returncode for r in stopped] == [EXIT_PREEMPTED, EXIT_PREEMPTED], stopped[1].stderr[-3000:]
    assert "stopped on a stop signal to another rank: saved" in stopped[0].stderr  # rank 0 reports ...
    assert "stopped on" not in stopped[1].stderr  # ... and only rank 0
    state = load_checkpoint_file(work / "last.pth")["resume"]
    assert (state["epoch"], state["position"]["step"], state["progress"]["updates"]) == (0, 2, 2)
    assert len(state["position"]["ranks"]) == len(state["rng"]) == 2

    resumed = _launch_two(pretrain + args(work) + ["--resume"])
    assert [r.returncode for r in resumed] == [0, 0], resumed[0].stderr[-3000:]
    assert_same_run(reference, work, epochs=2, images_per_epoch=24)
