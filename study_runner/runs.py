"""A study's runs (a pretraining; a fine-tune with its tests) as the project's command lines and done-checks, and
the `Study` that holds them.

A `Pretraining` is one `tools/pretrain.py` run (always with `--resume`: a finished run is left alone, a stopped
one continues); a `FineTune` is one `tools/train.py` run from a pretraining's `final.pth` and its
`tools/test.py` calls, whose last checkpoint (`iter_<N>.pth` / `epoch_<N>.pth`) is known before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from etcore.formats import PRETRAIN_FINAL, SEG_MODES
from pretraining.curriculum import CURRICULUM_SUFFIXES, load_curriculum_file
from study_runner import checks

REPO = checks.REPO
TEST_MODES = {"single": SEG_MODES[0], "tta": SEG_MODES[1]}


@dataclass(frozen=True)
class Pretraining:
    """One tools/pretrain.py run of the study."""

    entry: str
    model: str
    curriculum: str
    epochs: int
    seed: int
    data: str
    final_size: int | None
    lowfreq: str | None
    args: tuple[str, ...]
    expect: Mapping[str, Any]
    tasks: int
    work_dir: Path

    @property
    def id(self) -> str:
        return self.work_dir.name

    @property
    def checkpoint(self) -> Path:
        return self.work_dir / PRETRAIN_FINAL

    def command(self) -> tuple[str, ...]:
        args = ["tools/pretrain.py", "--model", self.model, "--data", self.data, "--curriculum", self.curriculum]
        args += ["--epochs", str(self.epochs), "--seed", str(self.seed), "--work-dir", str(self.work_dir)]
        if self.final_size is not None:
            args += ["--final-size", str(self.final_size)]
        if self.lowfreq is not None:
            args += ["--lowfreq", self.lowfreq]
        return (*args, *self.args, "--resume")  # --resume: a finished run is left alone, a stopped one continues

    @property
    def curriculum_name(self) -> str:
        """The name a finished run records: a named curriculum's, or a curriculum file's own `name`."""
        if Path(self.curriculum).suffix.lower() not in CURRICULUM_SUFFIXES:
            return self.curriculum
        return load_curriculum_file(
            REPO / self.curriculum if not Path(self.curriculum).is_file() else self.curriculum
        ).name

    def is_done(self) -> bool:
        return checks.pretrain_is_done(
            self.work_dir, self.model, self.curriculum_name, self.epochs, self.seed, self.lowfreq, self.expect
        )


@dataclass(frozen=True)
class FineTune:
    """One tools/train.py run (and its tests) from one pretraining."""

    entry: str
    config: str
    segmentation: bool
    source: Pretraining
    data_root: str
    cfg_options: tuple[str, ...]
    tests: tuple[str, ...]
    final_name: str  # the last checkpoint: iter_<max_iters>.pth or epoch_<max_epochs>.pth
    tasks: int
    work_dir: Path
    check_images: bool = True
    bootstrap: int = 200  # resamples of the test images kept with the metrics (their sampling error); 0: none
    vis: tuple[str, ...] = ()  # tools/train.py --vis: tracking backends (tensorboard, wandb)

    @property
    def options(self) -> tuple[str, ...]:
        """--cfg-options of training and testing: the backbone, the seed and the data, then the spec's own."""
        own = (
            f"model.backbone.checkpoint={self.source.checkpoint}",
            f"randomness.seed={self.source.seed}",
            f"data_root={self.data_root.rstrip('/')}/",
        )
        return (*own, *self.cfg_options)

    @property
    def final(self) -> Path:
        return self.work_dir / self.final_name

    def train_command(self) -> tuple[str, ...]:
        images = ("--check-images",) if self.check_images else ()
        vis = ("--vis", *self.vis) if self.vis else ()
        return (
            "tools/train.py",
            self.config,
            "--work-dir",
            str(self.work_dir),
            *images,
            *vis,
            "--cfg-options",
            *self.options,
        )

    def test_command(self, mode: str) -> tuple[str, ...]:
        dump = ("--dump-predictions",) if self.segmentation else ("--dump-detections",)
        dump += ("--bootstrap", str(self.bootstrap)) if self.bootstrap else ()
        tta = ("--tta",) if mode == "tta" else ()
        images = ("--check-images",) if self.check_images else ()
        return (
            "tools/test.py",
            self.config,
            str(self.final),
            "--work-dir",
            str(self.work_dir),
            *dump,
            *tta,
            *images,
            "--cfg-options",
            *self.options,
        )

    def train_done(self) -> bool:
        return self.source.is_done() and checks.finetune_is_done(self.work_dir, self.final_name, self.source.checkpoint)

    def test_done(self, modes: Sequence[str]) -> bool:
        if not self.train_done():
            return False
        if self.segmentation:
            return checks.seg_metrics_are_current(self.work_dir, [TEST_MODES[m] for m in modes])
        return checks.metrics_are_current(self.work_dir)

    def verify(self) -> None:
        if self.segmentation:
            checks.verify_seg_predictions(self.work_dir, REPO)
        else:
            checks.verify_detections(self.work_dir, REPO)


@dataclass
class Study:
    """A parsed spec: its runs, and the executor settings it carries."""

    name: str
    path: Path
    root: Path
    lanes: int
    estimates: dict[str, float]
    prepare: list[tuple[str, tuple[str, ...]]]
    pretrainings: list[Pretraining]
    finetunes: list[FineTune]
    report: tuple[str, ...] | None
    slurm: dict[str, Any] = field(default_factory=dict)
