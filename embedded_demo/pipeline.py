"""`tools/demo.py`: the embedded demo: pretrain a backbone two ways, fine-tune two detectors and a segmentor from
each, compare on COCO and on the ADE20K-layout set of the same scenes.

    python tools/demo.py [--profile quick|full|smoke] [--seeds 0 1 2] [--work-root work_dirs/demo]

Runs the project's real command lines in order (each step printed, so it can be copied):
`tools/make_demo_data.py` -> `tools/pretrain.py` (baseline and efficienttrain) -> `tools/train.py` and
`tools/test.py` (tiny RetinaNet, Cascade Mask R-CNN and UperNet from each checkpoint) -> `tools/compare.py`
-> `<work root>/report.md` with plots. Every step whose output is already complete and valid is
skipped, so a rerun only redoes what is missing. The AP of every detection run is re-computed with
pycocotools from its own dumped detections, the mIoU of every segmentation run with a numpy confusion
matrix from its saved predictions; both must agree with the metrics JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from etcore.checkpoint_io import file_sha256, load_checkpoint_file
from etcore.errors import UserInputError
from etcore.formats import (
    METRICS_FILE,
    PRETRAIN_FINAL,
    PROVENANCE_FILE,
    SEG_METRICS_FILE,
    SEG_MODES,
)
from etcore.process import python_command, run_process
from finetune.det_metrics import verify_detections
from finetune.seg_metrics import verify_seg_predictions
from reporting.report import write_report

REPO = Path(__file__).resolve().parents[1]

CURRICULA = ("baseline", "efficienttrain")
DETECTORS = ("retinanet", "cascade_mask_rcnn")


@dataclass(frozen=True)
class Profile:
    """Everything a demo size decides; `quick` is the `make demo` default (README gives its measured time)."""

    name: str
    data_args: tuple[str, ...]
    model: str
    epochs: int
    final_size: int
    pretrain_args: tuple[str, ...]
    det_iters: int | None  # None: the tiny configs' own length
    est_seconds: dict = field(default_factory=dict)  # rough cost of each kind of step, for the ETA
    seg_iters: int | None = None  # the tiny UperNet's length (None: the config's own)
    seg_tta: bool = False  # also test the UperNet at 6 scales (the tiny config's --tta; no flip, see data)
    # The loader mode of both pretrainings: `direct` does every per-image operation at the stage size, so the
    # curriculum's saving reaches the clock; tools/loader_parity.py checks it against the faithful `fft`.
    lowfreq: str = "direct"
    # Fine-tunes of different checkpoints run this many side by side, the cores split between them: on 2 cores
    # two 1-thread RetinaNet runs took 44 s where one 2-thread run took 31 s (1.41x the throughput; see
    # `lane_threads` for how the threads are split). The pretrainings always run alone: their wall time is
    # the cost the table compares.
    lanes: int = 2


# The demo recipe keeps the curriculum (input size and RandAugment ramp) and the optimiser family of the
# paper but drops what only pays off over hundreds of epochs (mixup/cutmix, random erasing, EMA), and
# crops at least 35% of the image so the small objects survive (convnext_atto stayed at chance where resnet18
# learned). No horizontal flip: triangle_dstripes and triangle_astripes are mirror images, so a flip gave
# half of each class the other's look under its own label; without it resnet18 reaches 67.5% top-1 on the
# 10 demo classes in 12 epochs where it reached 43.5% with it (BENCHMARKS.md section 7).
_DEMO_HFLIP = 0  # flip probability; recorded as 0.0, which compares equal
_DEMO_RECIPE = (
    "--lr",
    "2e-3",
    "--warmup-epochs",
    "1",
    "--mixup",
    "0",
    "--cutmix",
    "0",
    "--reprob",
    "0",
    "--crop-scale",
    "0.35",
    "--no-ema",
    "--hflip",
    str(_DEMO_HFLIP),
    "--size-multiple",
    "16",
)

# Recipe settings a finished demo pretraining must have recorded: a run from before the flip fix is redone.
_DEMO_RECIPE_RECORDED = {"hflip": _DEMO_HFLIP}

PROFILES = {
    "quick": Profile(
        name="quick",
        data_args=(),
        model="resnet18",
        epochs=12,
        final_size=64,
        pretrain_args=("--batch-size", "32", "--workers", "1", *_DEMO_RECIPE),
        det_iters=None,
        # measured in make demo on 2 cores (fine-tunes side by side: per lane); "train" averages both detectors
        est_seconds={
            "data": 5,
            "pretrain": 75,
            "train": 150,
            "test": 15,
            "seg_train": 45,
            "seg_test": 12,
            "report": 15,
        },
    ),
    "full": Profile(
        name="full",
        data_args=(
            "--train-per-class",
            "300",
            "--val-per-class",
            "50",
            "--image-size",
            "96",
            "--coco-train",
            "800",
            "--coco-val",
            "200",
        ),
        model="resnet18",
        epochs=60,
        final_size=96,
        pretrain_args=("--batch-size", "64", "--workers", "2", *_DEMO_RECIPE),
        det_iters=1500,
        est_seconds={
            "data": 40,
            "pretrain": 1500,
            "train": 600,
            "test": 40,
            "seg_train": 400,
            "seg_test": 150,
            "report": 10,
        },
        seg_iters=600,
        seg_tta=True,
    ),
    "smoke": Profile(
        name="smoke",
        data_args=(
            "--classes",
            "10",
            "--train-per-class",
            "4",
            "--val-per-class",
            "2",
            "--image-size",
            "64",
            "--coco-train",
            "6",
            "--coco-val",
            "4",
        ),
        model="resnet18",
        epochs=2,
        final_size=64,
        pretrain_args=("--batch-size", "16", "--workers", "0", *_DEMO_RECIPE),
        det_iters=4,
        est_seconds={
            "data": 5,
            "pretrain": 15,
            "train": 25,
            "test": 10,
            "seg_train": 20,
            "seg_test": 10,
            "report": 5,
        },
        seg_iters=4,
    ),
}

_TINY_CONFIGS = {
    "retinanet": "det_configs/tiny/retinanet_{slug}_fpn_tiny-demo_{curriculum}.py",
    "cascade_mask_rcnn": "det_configs/tiny/cascade-mask-rcnn_{slug}_fpn_4conv1fc-giou_tiny-demo_{curriculum}.py",
}
_SEG_CONFIG = "seg_configs/tiny/upernet_{slug}_tiny-demo_{curriculum}.py"
_MODEL_SLUGS = {"convnext_atto": "convnext-atto", "resnet18": "resnet18"}


@dataclass
class Step:
    """One unit of work: a description, a cost estimate, a completeness check and the action.

    Steps that share a `lane` run in order; steps of different lanes may run side by side (`execute`).
    A step without a lane runs alone.
    """

    kind: str
    label: str
    is_done: Callable[[], bool]
    run: Callable[[], None]
    lane: str | None = None


# ------------------------------------------------------------------------------------------ the steps


_LANE = threading.local()  # .threads: the CPU threads a tool started from this lane may use


def _run_tool(args: Sequence[str], log: Path | None = None) -> None:
    """Run `python tools/...` from the repo root, streaming its output; a failure stops the demo.

    Inside a lane of `execute` the tool gets that lane's share of the threads (`lane_threads`).
    """
    print("  $ " + " ".join(args), flush=True)
    result = run_process(python_command(args), cwd=REPO, log=log, threads=getattr(_LANE, "threads", None))
    if not result.ok:
        where = f"; its output is in {log}" if log else ""
        raise RuntimeError(f"step failed (exit {result.rc}): {' '.join(args)}{where}. {result.tail()}")


@dataclass(frozen=True)
class Layout:
    """Where every output of one demo run lives."""

    root: Path
    data: Path

    def pretrain(self, model: str, curriculum: str, seed: int) -> Path:
        return self.root / "pretrain" / f"{model}_{curriculum}_s{seed}"

    def det(self, detector: str, curriculum: str, seed: int) -> Path:
        return self.root / "det" / f"{detector}_{curriculum}_s{seed}"

    def seg(self, curriculum: str, seed: int) -> Path:
        return self.root / "seg" / f"upernet_{curriculum}_s{seed}"


def pretrain_is_done(
    work_dir: Path,
    model: str,
    curriculum: str,
    epochs: int,
    seed: int,
    lowfreq: str | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> bool:
    """A finished pretraining run: final.pth readable with the provenance we asked for.

    `lowfreq` and every `recipe` setting (e.g. {"hflip": 0.0}) are checked when given.
    """
    final = work_dir / PRETRAIN_FINAL
    if not final.is_file():
        return False
    try:
        prov = load_checkpoint_file(final).get("provenance", {})
    except UserInputError:
        return False
    return (
        prov.get("model_name") == model
        and prov.get("curriculum", {}).get("name") == curriculum
        and prov.get("epochs") == epochs
        and prov.get("seed") == seed
        and (lowfreq is None or prov.get("lowfreq") == lowfreq)
        and all(prov.get("recipe", {}).get(key) == value for key, value in (recipe or {}).items())
    )


def final_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's `last_checkpoint` points at, if the run reached its last iteration."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    path = path if path.is_absolute() else REPO / path
    return path if path.is_file() else None


def train_is_done(work_dir: Path, max_iters: int) -> bool:
    ckpt = final_checkpoint(work_dir)
    return ckpt is not None and ckpt.name == f"iter_{max_iters}.pth"


def finetune_is_done(work_dir: Path, max_iters: int, backbone: Path) -> bool:
    """The fine-tune reached its last iteration from this very backbone file (the SHA-256 its provenance recorded).

    After the pretraining changed (another recipe, more epochs, a rerun) the fine-tune trains again rather
    than reporting numbers of the old weights beside the new pretraining's cost.
    """
    if not train_is_done(work_dir, max_iters) or not backbone.is_file():
        return False
    try:
        recorded = json.loads((work_dir / PROVENANCE_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == file_sha256(backbone)


def metrics_are_current(work_dir: Path) -> bool:
    """coco_metrics.json exists, belongs to the final checkpoint, and pycocotools agrees with it."""
    metrics, ckpt = work_dir / METRICS_FILE, final_checkpoint(work_dir)
    if not metrics.is_file() or ckpt is None or metrics.stat().st_mtime < ckpt.stat().st_mtime:
        return False
    try:
        verify_detections(work_dir, REPO)
    except (RuntimeError, OSError, ValueError, KeyError):
        return False
    return True


def seg_metrics_are_current(work_dir: Path, modes: Sequence[str]) -> bool:
    """seg_metrics.json exists, belongs to the final checkpoint, holds `modes`, and the numpy check agrees."""
    metrics, ckpt = work_dir / SEG_METRICS_FILE, final_checkpoint(work_dir)
    if not metrics.is_file() or ckpt is None or metrics.stat().st_mtime < ckpt.stat().st_mtime:
        return False
    try:
        if not set(modes) <= set(json.loads(metrics.read_text())["metrics"]):
            return False
        verify_seg_predictions(work_dir, REPO)
    except (RuntimeError, OSError, ValueError, KeyError, TypeError):
        return False
    return True


# ------------------------------------------------------------------------------------------ planning


def plan(profile: Profile, seeds: Sequence[int], layout: Layout) -> list[Step]:
    """Every step of the demo, in order; nothing runs here."""
    steps = [
        Step(
            "data",
            f"demo data in {layout.data}",
            is_done=lambda: False,  # make_demo_data checks its own stamp in well under a second
            run=lambda: _run_tool(["tools/make_demo_data.py", "--out", str(layout.data), *profile.data_args]),
        )
    ]
    for seed in seeds:
        for curriculum in CURRICULA:
            steps.append(pretrain_step(profile, layout, curriculum, seed))
    for seed in seeds:
        for detector in DETECTORS:
            for curriculum in CURRICULA:
                steps.extend(detection_steps(profile, layout, detector, curriculum, seed))
    for seed in seeds:
        for curriculum in CURRICULA:
            steps.extend(segmentation_steps(profile, layout, curriculum, seed))
    return steps


def pretrain_step(profile: Profile, layout: Layout, curriculum: str, seed: int) -> Step:
    work_dir = layout.pretrain(profile.model, curriculum, seed)
    args = [
        "tools/pretrain.py",
        "--model",
        profile.model,
        "--data",
        str(layout.data / "imagenet"),
        "--curriculum",
        curriculum,
        "--epochs",
        str(profile.epochs),
        "--final-size",
        str(profile.final_size),
        "--work-dir",
        str(work_dir),
        "--seed",
        str(seed),
        "--lowfreq",
        profile.lowfreq,
        *profile.pretrain_args,
    ]
    return Step(
        "pretrain",
        f"pretrain {profile.model} with {curriculum} (seed {seed}, --lowfreq {profile.lowfreq})",
        is_done=lambda: _pretraining_done(profile, layout, curriculum, seed),
        run=lambda: _run_tool(args),
    )


def _pretraining_done(profile: Profile, layout: Layout, curriculum: str, seed: int) -> bool:
    work_dir = layout.pretrain(profile.model, curriculum, seed)
    return pretrain_is_done(
        work_dir, profile.model, curriculum, profile.epochs, seed, profile.lowfreq, _DEMO_RECIPE_RECORDED
    )


def _finetune_step(
    kind: str,
    label: str,
    source: tuple[Profile, Layout, str, int],
    config: str,
    work_dir: Path,
    options: list[str],
    max_iters: int,
) -> Step:
    """Train `config` into `work_dir` (`options`: its --cfg-options) from the demo checkpoint `source` names
    (profile, layout, curriculum, seed).

    Done only when the pretraining it builds on is done and the run finished from that very file. Before
    training, `last_checkpoint` goes, so a killed retrain never looks finished with the old weights.
    """
    profile, layout, curriculum, seed = source
    backbone = layout.pretrain(profile.model, curriculum, seed) / PRETRAIN_FINAL

    def run() -> None:
        (work_dir / "last_checkpoint").unlink(missing_ok=True)
        args = ["tools/train.py", config, "--work-dir", str(work_dir), "--check-images", "--cfg-options", *options]
        _run_tool(args, log=work_dir / "demo_train.log")

    return Step(
        kind,
        label,
        is_done=lambda: (
            _pretraining_done(profile, layout, curriculum, seed) and finetune_is_done(work_dir, max_iters, backbone)
        ),
        run=run,
        lane=_finetune_lane(profile, layout, curriculum, seed),
    )


def _finetune_options(
    profile: Profile, layout: Layout, curriculum: str, seed: int, data: str, iters: int | None
) -> list[str]:
    """--cfg-options every fine-tune of the demo shares: its checkpoint, seed and data, and a shorter run's length."""
    checkpoint = layout.pretrain(profile.model, curriculum, seed) / PRETRAIN_FINAL
    options = [
        f"model.backbone.checkpoint={checkpoint}",
        f"randomness.seed={seed}",
        f"data_root={layout.data / data}/",
    ]
    if iters:
        options += [
            f"train_cfg.max_iters={iters}",
            f"train_cfg.val_interval={iters}",
            f"default_hooks.checkpoint.interval={iters}",
        ]
    return options


def _finetune_lane(profile: Profile, layout: Layout, curriculum: str, seed: int) -> str:
    """Fine-tunes of one checkpoint share a lane (they run in order); other checkpoints' may run beside them."""
    return str(layout.pretrain(profile.model, curriculum, seed))


def detection_steps(profile: Profile, layout: Layout, detector: str, curriculum: str, seed: int) -> list[Step]:
    config = _TINY_CONFIGS[detector].format(slug=_MODEL_SLUGS[profile.model], curriculum=curriculum)
    work_dir = layout.det(detector, curriculum, seed)
    options = _finetune_options(profile, layout, curriculum, seed, "coco", profile.det_iters)
    max_iters = profile.det_iters or _config_max_iters(config)
    if profile.det_iters:
        iters = profile.det_iters
        options += [
            f"param_scheduler.0.end={min(50, iters // 2)}",
            f"param_scheduler.1.end={iters}",
            f"train_cfg.val_begin={iters + 1}",  # the test step evaluates the final checkpoint once
            f"param_scheduler.1.milestones=[{iters * 2 // 3},{iters * 11 // 12}]",
        ]
    train = _finetune_step(
        "train",
        f"train {detector} from the {curriculum} backbone (seed {seed})",
        (profile, layout, curriculum, seed),
        config,
        work_dir,
        options,
        max_iters,
    )
    test = Step(
        "test",
        f"evaluate {detector} from the {curriculum} backbone (seed {seed})",
        is_done=lambda: train.is_done() and metrics_are_current(work_dir),
        run=lambda: (
            _run_tool(
                [
                    "tools/test.py",
                    config,
                    str(final_checkpoint(work_dir)),
                    "--work-dir",
                    str(work_dir),
                    "--dump-detections",
                    "--check-images",
                    "--cfg-options",
                    *options,
                ],
                log=work_dir / "demo_test.log",
            ),
            verify_detections(work_dir, REPO),
        ),
        lane=train.lane,
    )
    return [train, test]


def segmentation_steps(profile: Profile, layout: Layout, curriculum: str, seed: int) -> list[Step]:
    """Train the tiny UperNet from this checkpoint on the ADE-layout scenes; test single scale (and multi-scale)."""
    config = _SEG_CONFIG.format(slug=_MODEL_SLUGS[profile.model], curriculum=curriculum)
    work_dir = layout.seg(curriculum, seed)
    options = _finetune_options(profile, layout, curriculum, seed, "ade", profile.seg_iters)
    max_iters = profile.seg_iters or _config_max_iters(config)
    if profile.seg_iters:
        iters = profile.seg_iters
        options += [
            f"param_scheduler.0.end={max(1, min(15, iters // 8))}",
            f"param_scheduler.1.end={iters}",
        ]
    modes = SEG_MODES if profile.seg_tta else SEG_MODES[:1]

    def test() -> None:
        for mode in modes:
            tta = ["--tta"] if mode == SEG_MODES[1] else []
            args = [
                config,
                str(final_checkpoint(work_dir)),
                "--work-dir",
                str(work_dir),
                "--dump-predictions",
                "--check-images",
            ]
            _run_tool(["tools/test.py", *args, *tta, "--cfg-options", *options], log=work_dir / f"demo_test_{mode}.log")
        verify_seg_predictions(work_dir, REPO)

    train = _finetune_step(
        "seg_train",
        f"train upernet from the {curriculum} backbone (seed {seed})",
        (profile, layout, curriculum, seed),
        config,
        work_dir,
        options,
        max_iters,
    )
    evaluate = Step(
        "seg_test",
        f"evaluate upernet from the {curriculum} backbone (seed {seed})",
        is_done=lambda: train.is_done() and seg_metrics_are_current(work_dir, modes),
        run=test,
        lane=train.lane,
    )
    return [train, evaluate]


def _config_max_iters(config: str) -> int:
    from mmengine.config import Config

    return int(Config.fromfile(str(REPO / config)).train_cfg["max_iters"])


# ------------------------------------------------------------------------------------------ running


def execute(steps: Sequence[Step], profile: Profile) -> None:
    """Run the steps that are not done, with progress and an ETA that learns from measured steps.

    A run of consecutive steps with lanes is split by lane, and up to `profile.lanes` lanes run at once,
    each tool with its share of the CPU cores; the first failure stops every lane after its current step.
    """
    pending = [step for step in steps if not step.is_done()]
    print(f"demo ({profile.name}): {len(steps)} steps, {len(steps) - len(pending)} already complete", flush=True)
    progress = _Progress(pending, profile, time.monotonic())
    for group in _groups(pending):
        if len(group) == 1 or profile.lanes <= 1:
            for step in (s for lane in group for s in lane):
                progress.run(step)
            continue
        threads = lane_threads(min(profile.lanes, len(group)))
        failed = threading.Event()

        def run_lane(lane: list[Step]) -> None:
            _LANE.threads = threads
            for step in lane:
                if failed.is_set():
                    return
                try:
                    progress.run(step)
                except BaseException:
                    failed.set()
                    raise

        with ThreadPoolExecutor(max_workers=profile.lanes) as pool:
            futures = [pool.submit(run_lane, lane) for lane in group]
        for future in futures:
            future.result()  # re-raises the first lane's failure, in plan order
    print(f"\nall steps complete in {_clock(time.monotonic() - progress.started)}", flush=True)


def lane_threads(lanes: int) -> int:
    """Each of `lanes` side-by-side tools' threads: OMP_NUM_THREADS (else the cores) is the budget of all of them.

    Two tools that each take the whole budget on 2 cores spin against each other: measured, 1.6-2.2 s per
    RetinaNet iteration against 0.3 s with one thread each.
    """
    budget = os.environ.get("OMP_NUM_THREADS", "")
    total = int(budget) if budget.isdigit() and int(budget) > 0 else (os.cpu_count() or 1)
    return max(1, total // max(1, lanes))


def _groups(steps: Sequence[Step]) -> list[list[list[Step]]]:
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


class _Progress:
    """Numbered step headers with an ETA; lanes running side by side count once in the remaining time."""

    def __init__(self, pending: Sequence[Step], profile: Profile, started: float) -> None:
        self.pending, self.profile, self.started = list(pending), profile, started
        self.position = {id(step): index for index, step in enumerate(self.pending)}
        self.lock = threading.Lock()
        self.begun: set[int] = set()
        self.spent_est, self.spent_real = 0.0, 0.0

    def _remaining_estimate(self) -> float:
        est = self.profile.est_seconds
        lanes: dict[str, float] = {}
        serial = 0.0
        for index, step in enumerate(self.pending):
            if index in self.begun:
                continue
            if step.lane is None or self.profile.lanes <= 1:
                serial += est[step.kind]
            else:
                lanes[step.lane] = lanes.get(step.lane, 0.0) + est[step.kind]
        side_by_side = sorted(lanes.values(), reverse=True)
        return serial + sum(side_by_side[:: max(1, self.profile.lanes)])  # the longest lane of each batch

    def run(self, step: Step) -> None:
        with self.lock:
            index = self.position[id(step)]
            remaining = self._remaining_estimate()
            self.begun.add(index)
            pace = (self.spent_real + _PACE_PRIOR_S) / (self.spent_est + _PACE_PRIOR_S)  # trust estimates first
            print(
                f"\n[{len(self.begun)}/{len(self.pending)}] {step.label}  (elapsed "
                f"{_clock(time.monotonic() - self.started)}, ETA {_clock(remaining * pace)})",
                flush=True,
            )
        t0 = time.monotonic()
        step.run()
        with self.lock:
            self.spent_real += time.monotonic() - t0
            self.spent_est += self.profile.est_seconds[step.kind]


_PACE_PRIOR_S = 120.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def enter_repo() -> None:
    """Work from the repository root: the steps' command lines and the configs' data paths are relative to it."""
    os.chdir(REPO)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="quick",
        help="quick: the make demo default (~10 min on 2 CPU cores); full: longer, more faithful; smoke: seconds",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help="one pretraining + detection run per seed and curriculum (tables show mean +- std)",
    )
    parser.add_argument("--work-root", default=None, help="default: work_dirs/demo (quick) or work_dirs/demo-<profile>")
    parser.add_argument("--data", default=None, help="default: data/demo (quick) or data/demo-<profile>")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.profile]
    suffix = "" if profile.name == "quick" else f"-{profile.name}"
    layout = Layout(
        root=Path(args.work_root or f"work_dirs/demo{suffix}"), data=Path(args.data or f"data/demo{suffix}")
    )
    enter_repo()
    started = time.monotonic()
    execute(plan(profile, args.seeds, layout), profile)
    text = write_report(
        layout.root,
        layout.det(DETECTORS[0], CURRICULA[0], 0).parent,
        [layout.pretrain(profile.model, c, s) for s in args.seeds for c in CURRICULA],
        profile_name=profile.name,
        elapsed_s=time.monotonic() - started,
        seg_root=layout.seg(CURRICULA[0], 0).parent,
    )
    print("\n" + text)
    print(f"report: {layout.root / 'report.md'}")
    return 0
