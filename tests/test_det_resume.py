"""Detection kill-and-resume: tools/train.py SIGKILLed mid-run resumes to bit-identical weights and metrics.

A tiny deterministic RetinaNet run (6 iterations, a checkpoint every 2, `randomness=dict(seed=0,
deterministic=True)`, no data workers) is killed (SIGKILL) from inside by a hook that the test
registers through a derived config in tmp_path (`custom_imports` of a module written there): exactly at
a chosen point, no timing races. The hook kills either after a training iteration or inside the
atomic checkpoint write (after the temporary file is written, before its rename). `--resume` must then
reach the same `iter_6.pth` weights and optimizer state as an uninterrupted run, bit for bit, and
tools/test.py the same coco_metrics.json numbers. mmengine replays the data order itself: its
InfiniteSampler is seeded from the run's seed and IterBasedTrainLoop advances the dataloader by the
resumed iteration count (re-running the pipeline, so any random transform's draws repeat too).

Preemption: a run whose hook sends itself SIGUSR1 after iteration 3 (between the interval checkpoints 2
and 4) must save iter_3.pth there through the CheckpointHook (`finetune.preemption`), point last_checkpoint
at it, exit with 75, and `--resume` must again reach the reference's iter_6.pth bit for bit.

Stops the iteration-based runs above do not reach (module fixture `exact_runs`, one uninterrupted reference
per config):
- inside an epoch of an epoch-based run: the tiny RetinaNet as the COCO configs train (EpochBasedTrainLoop,
  DefaultSampler + AspectRatioBatchSampler, 2 persistent workers) with a random flip, 3 epochs of 4
  batches, an iteration-based warm-up and a by-epoch LR step, validation at epochs 2 and 3. SIGUSR1 after
  iteration 6 (batch 2 of epoch 2) must save iter_6.pth and `--resume` must end with the reference's
  epoch_3.pth and log (`finetune.loops`);
- with dropout: the tiny UperNet (dropout 0.1 in both heads), SIGTERM after iteration 2 of 3: bit-identical
  only because the checkpoint carries the RNG states (`finetune.rng_state`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import EXIT_PREEMPTED, UserInputError
from finetune import checkpoints as det_checkpoints
from finetune.checkpoints import AtomicLocalBackend, resume_checkpoint
from finetune.rng_state import capture_rng_state, restore_rng_state

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"
ITERS = 6

KILL_HOOK = '''
"""Test-only hook: SIGKILL this process after training iteration N, or inside the rename of a file."""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class StopSignalHook(Hook):
    """Sends this process `signum` after training iteration `after_iter`, as a cluster would."""

    def __init__(self, after_iter, signum="SIGUSR1"):
        self.after_iter, self.signum = after_iter, signum

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.after_iter:
            os.kill(os.getpid(), getattr(signal, self.signum))


@HOOKS.register_module()
class SigkillHook(Hook):
    def __init__(self, after_iter=None, renaming=None):
        self.after_iter = after_iter
        if renaming:  # etcore.checkpoint_io.save_atomic renames its temporary file with os.replace
            real_replace = os.replace

            def replace(src, dst, *args, **kwargs):
                if os.path.basename(dst) == renaming:
                    _die()
                return real_replace(src, dst, *args, **kwargs)

            os.replace = replace

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.after_iter is not None and runner.iter + 1 == self.after_iter:
            _die()
'''


def _options(data_root: Path, iters: int = ITERS, val_interval: int = 100, checkpoint_every: int | None = 2) -> list:
    """The kill tests' settings for an iteration-based tiny config (checkpoint_every=None: the config's own)."""
    every = [f"default_hooks.checkpoint.interval={checkpoint_every}", "default_hooks.checkpoint.max_keep_ckpts=3"]
    return [
        "--cfg-options",
        f"data_root={data_root}/",
        "model.backbone.checkpoint=None",
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={val_interval}",
        "randomness.seed=0",
        "randomness.deterministic=True",
        *(every if checkpoint_every else []),
    ]


def _run(args: list[str], extra_path: Path | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join(str(p) for p in (ROOT, extra_path) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _train(
    config: Path, work: Path, data_root: Path, *extra: str, hook_dir: Path | None = None, options: list | None = None
) -> subprocess.CompletedProcess:
    options = _options(data_root) if options is None else options
    return _run(["tools/train.py", str(config), "--work-dir", str(work), *extra, *options], hook_dir)


def _killing_config(folder: Path, kind: str = "SigkillHook", base: Path = RETINANET, **hook: object) -> Path:
    """`base` (RETINANET) plus the SigkillHook or StopSignalHook (their module is written next to the config)."""
    (folder / "sigkill_hook.py").write_text(KILL_HOOK)
    hook_args = ", ".join(f"{k}={v!r}" for k, v in hook.items())
    config = folder / f"{kind}_{'_'.join(str(v) for v in hook.values())}.py".replace(".pth", "")
    config.write_text(
        f"_base_ = {str(base)!r}\n"
        "custom_imports = dict(imports=['backbones', 'sigkill_hook'], allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='PretrainProvenanceHook'), dict(type={kind!r}, {hook_args})]\n"
    )
    return config


def _test(work: Path, data_root: Path) -> dict:
    result = _run(
        [
            "tools/test.py",
            str(RETINANET),
            str(work / f"iter_{ITERS}.pth"),
            "--work-dir",
            str(work),
            "--dump-detections",
            "--cfg-options",
            f"data_root={data_root}/",
            "model.test_cfg.score_thr=0.0",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "metrics": json.loads((work / "coco_metrics.json").read_text())["metrics"],
        "detections": json.loads((work / "detections.bbox.json").read_text()),
    }


def _assert_same_run(reference: Path, resumed: Path, name: str = f"iter_{ITERS}.pth") -> None:
    """`name` (iter_6.pth): same weights, optimizer state and scheduler state, bit for bit."""
    ref, mine = (load_checkpoint_file(p / name) for p in (reference, resumed))
    assert ref["state_dict"].keys() == mine["state_dict"].keys()
    different = [k for k in ref["state_dict"] if not torch.equal(ref["state_dict"][k], mine["state_dict"][k])]
    assert not different, f"{len(different)} of {len(ref['state_dict'])} tensors differ, e.g. {different[:3]}"
    ref_state, my_state = ref["optimizer"]["state"], mine["optimizer"]["state"]
    assert ref_state.keys() == my_state.keys()
    for index in ref_state:
        for name, value in ref_state[index].items():
            assert torch.equal(value, my_state[index][name]), f"optimizer state {index}.{name} differs"
    assert ref["param_schedulers"] == mine["param_schedulers"]
    assert (ref["meta"]["epoch"], ref["meta"]["iter"]) == (mine["meta"]["epoch"], mine["meta"]["iter"])
    if name == f"iter_{ITERS}.pth":
        assert mine["meta"]["iter"] == ITERS


@pytest.fixture(scope="module")
def runs(module_tmp: Path, coco_small_objects: Path) -> dict:
    """Data, an uninterrupted reference run (+ its metrics), two killed runs and a signalled one, 2 at a time."""
    root = module_tmp / "det_resume"
    data = coco_small_objects
    hooks = root / "hooks"
    hooks.mkdir(parents=True)
    jobs = {
        "reference": lambda: _train(RETINANET, root / "reference", data),
        "killed_at_5": lambda: _train(_killing_config(hooks, after_iter=5), root / "killed_at_5", data, hook_dir=hooks),
        "killed_saving_4": lambda: _train(
            _killing_config(hooks, renaming="iter_4.pth"), root / "killed_saving_4", data, hook_dir=hooks
        ),
        "signalled_at_3": lambda: _train(
            _killing_config(hooks, "StopSignalHook", after_iter=3), root / "signalled_at_3", data, hook_dir=hooks
        ),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    assert results["reference"].returncode == 0, results["reference"].stderr[-3000:]
    for name in ("killed_at_5", "killed_saving_4"):
        assert results[name].returncode == -signal.SIGKILL, results[name].stderr[-3000:]
    return {"root": root, "data": data, "reference_metrics": _test(root / "reference", data), "results": results}


@pytest.mark.slow
@pytest.mark.subprocess
def test_killed_between_checkpoints_resumes_to_the_same_weights_and_metrics(runs: dict) -> None:
    root, data = runs["root"], runs["data"]
    work = root / "resume_at_5"
    shutil.copytree(root / "killed_at_5", work, symlinks=True)
    assert (work / "last_checkpoint").read_text().endswith("killed_at_5/iter_4.pth")
    assert not (work / f"iter_{ITERS}.pth").exists()

    resumed = _train(RETINANET, work, data, "--resume", str(work / "iter_4.pth"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(root / "reference", work)
    tested = _test(work, data)
    assert tested["metrics"] == runs["reference_metrics"]["metrics"]
    assert tested["detections"] == runs["reference_metrics"]["detections"]  # every box and score
    assert len(tested["detections"]) > 0 and tested["metrics"]["bbox"]["AP50"] > 0  # not trivially equal


@pytest.mark.slow
@pytest.mark.subprocess
def test_killed_while_writing_a_checkpoint_leaves_no_partial_file_and_resumes(runs: dict) -> None:
    root, data = runs["root"], runs["data"]
    work = root / "killed_saving_4"
    assert not (work / "iter_4.pth").exists()  # the kill came before the rename: no partial iter_4.pth
    assert list(work.glob(".iter_4.pth.*.tmp")), "the killed save should leave its temporary file"
    assert (work / "last_checkpoint").read_text().endswith("iter_2.pth")

    resumed = _train(RETINANET, work, data, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = max(work.glob("*/*.log")).read_text()
    assert "resumed epoch: 0, iter: 2" in log
    _assert_same_run(root / "reference", work)


@pytest.mark.slow
@pytest.mark.subprocess
def test_resume_skips_a_truncated_checkpoint_that_last_checkpoint_names(runs: dict) -> None:
    """What mmengine's own non-atomic writer leaves when killed mid-write: iter_4.pth cut short."""
    root, data = runs["root"], runs["data"]
    work = root / "truncated_4"
    shutil.copytree(root / "killed_at_5", work, symlinks=True)
    (work / "last_checkpoint").write_text(str(work / "iter_4.pth"))
    checkpoint = work / "iter_4.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])

    resumed = _train(RETINANET, work, data, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {work / 'iter_2.pth'}, the newest intact checkpoint" in resumed.stdout
    _assert_same_run(root / "reference", work)


@pytest.mark.slow
@pytest.mark.subprocess
def test_signalled_run_saves_at_that_iteration_exits_75_and_resumes_to_the_same_weights(runs: dict) -> None:
    root, data = runs["root"], runs["data"]
    stopped, work = runs["results"]["signalled_at_3"], root / "signalled_at_3"
    assert stopped.returncode == EXIT_PREEMPTED, stopped.stderr[-3000:]
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("stopped on")]
    assert lines == [
        f"stopped on SIGUSR1: saved {work / 'iter_3.pth'}; continue with the same tools/train.py command and "
        f"--resume (exit code {EXIT_PREEMPTED})"
    ]
    assert (work / "last_checkpoint").read_text() == str(work / "iter_3.pth")
    assert load_checkpoint_file(work / "iter_3.pth")["meta"]["iter"] == 3
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_2.pth", "iter_3.pth"]  # stopped before 4

    resumed = _train(RETINANET, work, data, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed epoch: 0, iter: 3" in max(work.glob("*/*.log")).read_text()
    _assert_same_run(root / "reference", work)


EPOCH_CONFIG = """
_base_ = {base!r}
# as the COCO configs load their data (DefaultSampler, AspectRatioBatchSampler, 2 persistent workers), plus
# a random flip so that the workers' random streams matter
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(192, 160), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(pipeline=train_pipeline))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=3, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=3, milestones=[2], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3))
log_processor = dict(by_epoch=True)
randomness = dict(seed=0, deterministic=True)
model = dict(backbone=dict(checkpoint=None))
"""
EPOCHS, EPOCH_BATCHES, STOP_ITER = 3, 4, 6  # 8 train images, batch 2; stop after batch 2 of epoch 2
SEG_ITERS = 3


def _train_seg(config: Path, work: Path, data_root: Path, *extra: str, hook_dir: Path | None = None):
    options = _options(data_root, SEG_ITERS, SEG_ITERS, checkpoint_every=None)
    return _train(config, work, data_root, *extra, hook_dir=hook_dir, options=options)


def _train_epochs(config: Path, work: Path, data_root: Path, *extra: str, hook_dir: Path | None = None):
    options = ["--cfg-options", f"data_root={data_root}/"]  # the rest is in the config file
    return _train(config, work, data_root, *extra, hook_dir=hook_dir, options=options)


def _logged(work: Path) -> dict:
    """Every logged training and validation record of a work dir's runs (LocalVisBackend's scalars.json), by
    (step, kind), without the timings."""
    records = {}
    for path in sorted(work.glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            kind = "val" if any(key.startswith(("coco/", "mIoU", "aAcc")) for key in record) else "train"
            records[(record["step"], kind)] = {
                k: v for k, v in record.items() if k not in ("time", "data_time", "eta", "memory")
            }
    return records


def _stop_then_resume(stop, resume, work: Path, saved: str) -> dict:
    """Run `stop` (a signalled run), note what it left in `work`, then `resume` there (if it exited with 75)."""
    stopped = stop()
    left = {
        "stopped": stopped,
        "files": sorted(p.name for p in work.glob("*.pth")),
        "pointer": (work / "last_checkpoint").read_text() if (work / "last_checkpoint").is_file() else None,
        "checkpoint": load_checkpoint_file(work / saved) if (work / saved).is_file() else None,
    }
    return {**left, "resumed": resume() if stopped.returncode == EXIT_PREEMPTED else None}


@pytest.fixture(scope="module")
def exact_runs(module_tmp: Path, coco_small_objects: Path, demo_data: Path) -> dict:
    """An epoch-based RetinaNet and a UperNet with dropout: each uninterrupted, and signalled inside then resumed
    with `--resume` (each a chain of two runs); 2 processes at a time."""
    root = module_tmp / "exact_resume"
    hooks = root / "hooks"
    hooks.mkdir(parents=True)
    epochs = root / "retinanet_epochs.py"
    epochs.write_text(EPOCH_CONFIG.format(base=str(RETINANET)))
    ade = demo_data / "ade"
    coco = coco_small_objects
    stop_epochs = _killing_config(hooks, "StopSignalHook", base=epochs, after_iter=STOP_ITER)
    stop_upernet = _killing_config(hooks, "StopSignalHook", base=UPERNET, after_iter=2, signum="SIGTERM")
    jobs = {
        "epochs": lambda: _stop_then_resume(
            lambda: _train_epochs(stop_epochs, root / "epochs", coco, hook_dir=hooks),
            lambda: _train_epochs(epochs, root / "epochs", coco, "--resume"),
            root / "epochs",
            f"iter_{STOP_ITER}.pth",
        ),
        "upernet": lambda: _stop_then_resume(
            lambda: _train_seg(stop_upernet, root / "upernet", ade, hook_dir=hooks),
            lambda: _train_seg(UPERNET, root / "upernet", ade, "--resume"),
            root / "upernet",
            "iter_2.pth",
        ),
        "epochs_reference": lambda: _train_epochs(epochs, root / "epochs_reference", coco),
        "upernet_reference": lambda: _train_seg(UPERNET, root / "upernet_reference", ade),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name in ("epochs_reference", "upernet_reference"):
        assert results[name].returncode == 0, results[name].stderr[-3000:]
    return {"root": root, **results}


def _resumed(exact_runs: dict, name: str) -> tuple[Path, dict]:
    """(work dir, what `_stop_then_resume` returned) of a run that stopped with 75 and resumed to the end."""
    run = exact_runs[name]
    assert run["stopped"].returncode == EXIT_PREEMPTED, run["stopped"].stderr[-3000:]
    assert run["resumed"].returncode == 0, run["resumed"].stderr[-3000:]
    return exact_runs["root"] / name, run


@pytest.mark.slow
@pytest.mark.subprocess
def test_epoch_based_run_signalled_inside_an_epoch_resumes_there_to_the_same_weights_and_log(exact_runs: dict) -> None:
    root, (work, run) = exact_runs["root"], _resumed(exact_runs, "epochs")
    saved = work / f"iter_{STOP_ITER}.pth"
    assert [line for line in run["stopped"].stderr.splitlines() if line.startswith("stopped on")] == [
        f"stopped on SIGUSR1: saved {saved}; continue with the same tools/train.py command and --resume "
        f"(exit code {EXIT_PREEMPTED})"
    ]
    assert run["pointer"] == str(saved)
    assert run["files"] == ["epoch_1.pth", saved.name]  # no epoch_2.pth: epoch 2 was not finished
    checkpoint = run["checkpoint"]
    assert (checkpoint["meta"]["epoch"], checkpoint["meta"]["iter"]) == (1, STOP_ITER)  # 0-based epoch 1
    info = checkpoint["message_hub"]["runtime_info"]
    assert info["batches_done_in_epoch"] == STOP_ITER - EPOCH_BATCHES
    assert len(info["worker_rng_at_epoch_start"]) == 1 and len(info["worker_rng_at_epoch_start"][0]) == 2
    assert len(checkpoint["meta"]["rng_states"]) == 1

    assert f"resumed epoch: 1, iter: {STOP_ITER}" in max(work.glob("*/*.log")).read_text()
    assert (work / "last_checkpoint").read_text() == str(work / f"epoch_{EPOCHS}.pth")  # the done-check's file
    _assert_same_run(root / "epochs_reference", work, f"epoch_{EPOCHS}.pth")
    reference, mine = _logged(root / "epochs_reference"), _logged(work)
    assert [key for key in reference if key[1] == "val"] == [(2, "val"), (3, "val")]
    assert mine == reference  # every iteration's losses and lr, and both validations


@pytest.mark.slow
@pytest.mark.subprocess
def test_upernet_with_dropout_signalled_mid_run_resumes_to_the_same_weights(exact_runs: dict) -> None:
    """Dropout draws after the resume are the uninterrupted run's only if the checkpoint restores the RNG states."""
    root, (work, run) = exact_runs["root"], _resumed(exact_runs, "upernet")
    assert run["pointer"] == str(work / "iter_2.pth")
    assert run["checkpoint"]["meta"]["rng_states"][0]["torch"].dtype == torch.uint8
    _assert_same_run(root / "upernet_reference", work, f"iter_{SEG_ITERS}.pth")
    reference, mine = _logged(root / "upernet_reference"), _logged(work)
    assert (SEG_ITERS, "val") in reference and mine == reference


def test_resume_checkpoint_choices(tmp_path: Path) -> None:
    """The fallback rules of finetune.checkpoints.resume_checkpoint, in process."""
    assert resume_checkpoint(tmp_path) == (None, None)  # nothing there: mmengine starts afresh
    torch.save({"w": torch.ones(2)}, tmp_path / "iter_2.pth")
    torch.save({"w": torch.ones(2)}, tmp_path / "iter_10.pth")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_10.pth"))
    assert resume_checkpoint(tmp_path) == (None, None)  # intact: mmengine's own auto-resume takes it
    (tmp_path / "last_checkpoint").write_text("")  # killed while writing the pointer
    for name in ("iter_2.pth", "iter_10.pth"):
        os.utime(tmp_path / name, ns=(10**18, 10**18))  # written within one clock tick
    found, note = resume_checkpoint(tmp_path)
    assert found == str(tmp_path / "iter_10.pth") and "empty" in note  # numeric order, not text order
    # an epoch-based run stopped inside epoch 2 (iter_6.pth), resumed, and past epoch 3: the newest file wins
    torch.save({"w": torch.ones(2)}, tmp_path / "epoch_3.pth")
    os.utime(tmp_path / "epoch_3.pth", ns=(10**18 + 1, 10**18 + 1))
    assert resume_checkpoint(tmp_path)[0] == str(tmp_path / "epoch_3.pth")
    for name in ("iter_2.pth", "iter_10.pth", "epoch_3.pth"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(UserInputError, match="no intact checkpoint is left"):
        resume_checkpoint(tmp_path)


def test_rng_states_round_trip_through_a_safely_loaded_checkpoint(tmp_path: Path) -> None:
    """What RngStateHook stores loads with weights_only=True (no allowlist entry) and restores every stream."""
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.normal()  # leave a cached Gaussian in both
    state = capture_rng_state()

    def draws() -> tuple:
        return random.random(), random.gauss(0, 1), np.random.normal(), np.random.rand(2).tolist(), torch.rand(2)

    expected = draws()
    torch.save({"meta": {"rng_states": [state]}}, tmp_path / "iter_1.pth")
    loaded = load_checkpoint_file(tmp_path / "iter_1.pth")["meta"]["rng_states"][0]
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    restore_rng_state(loaded)
    again = draws()
    assert again[:4] == expected[:4] and torch.equal(again[4], expected[4])


def test_tools_train_runs_the_resumable_loops() -> None:
    """The config rewrite: mmengine's two train loops (either spelling) become finetune.loops'; others stay."""
    from mmengine.registry import LOOPS

    from finetune.config import load_config
    from finetune.loops import use_resumable_loops

    coco = load_config(str(ROOT / "det_configs" / "retinanet" / "retinanet_r50_fpn_1x_coco_baseline.py"))
    assert coco.train_cfg.type == "EpochBasedTrainLoop"  # the official recipe, as written
    for train_cfg, expected in [
        (coco.train_cfg, "ResumableEpochBasedTrainLoop"),
        (dict(by_epoch=True, max_epochs=12), "ResumableEpochBasedTrainLoop"),
        (dict(type="IterBasedTrainLoop", max_iters=8), "ResumableIterBasedTrainLoop"),
        (dict(by_epoch=False, max_iters=8), "ResumableIterBasedTrainLoop"),
        (dict(type="MyLoop"), "MyLoop"),
    ]:
        cfg = Config(dict(train_cfg=train_cfg))
        use_resumable_loops(cfg)
        assert cfg.train_cfg.type == expected and "by_epoch" not in cfg.train_cfg
        assert expected == "MyLoop" or LOOPS.get(expected) is not None


def test_atomic_backend_keeps_the_old_file_when_a_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "iter_2.pth"
    backend = AtomicLocalBackend()
    backend.put(b"old", target)

    def failing_write(data: bytes, tmp: str) -> None:
        """Fails half-way through the write, like a full disk."""
        with open(tmp, "wb") as handle:
            handle.write(data[:2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(det_checkpoints, "_write_bytes", failing_write)
    with pytest.raises(OSError):
        backend.put(b"new content", target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["iter_2.pth"]
    monkeypatch.undo()
    backend.put_text("iter_2.pth", tmp_path / "last_checkpoint")
    assert (tmp_path / "last_checkpoint").read_text() == "iter_2.pth"


def test_train_main_handles_the_stop_signals_only_while_the_runner_trains(
    tmp_path: Path, coco_small_objects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tools/train.py's main, in-process: the runner trains under flag-setting handlers with a PreemptionHook
    registered, and the caller's handlers are back afterwards (the runner is a stand-in: no training here)."""
    from finetune import train
    from finetune.preemption import PreemptionHook
    from finetune.rng_state import RngStateHook

    class Runner:
        def __init__(self) -> None:
            self.hooks: list = []

        def register_hook(self, hook: object) -> None:
            self.hooks.append(hook)

        def train(self) -> None:
            self.handlers = (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM))

    runner = Runner()
    monkeypatch.setattr(train, "build_runner", lambda cfg: runner)

    def caller_handler(signum: int, frame: object) -> None:
        """The caller's own handler, which main must put back."""

    previous = {signum: signal.signal(signum, caller_handler) for signum in (signal.SIGUSR1, signal.SIGTERM)}
    try:
        assert train.main([str(RETINANET), "--work-dir", str(tmp_path / "work"), *_options(coco_small_objects)]) == 0
        after = (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert [type(hook) for hook in runner.hooks] == [PreemptionHook, RngStateHook]
    assert runner.handlers == (runner.hooks[0].request.set, runner.hooks[0].request.set)
    assert after == (caller_handler, caller_handler)
