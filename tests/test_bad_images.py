"""The bad-input catalogue's unreadable images (docs/RELIABILITY.md): each case runs the REAL command line, as the
cases of tests/test_bad_inputs.py do (its harness and rules), on copies of the generated COCO and ADE-layout sets
with damaged images: a truncated PNG, a truncated JPEG, an empty file and an HTML page saved as an image.

`--check-images` names every one of them before the run (tools/train.py and tools/test.py); a run that meets a
truncated training image stops in one `error:` line with its last checkpoint intact, and the same command with
`--resume` continues once the file is back; `--skip-unreadable` skips and counts, and tools/test.py names the skipped
images in coco_metrics.json. A module of its own, so that its runs (2 at a time) and those of test_bad_inputs.py each
stay within pytest's time limit per test. The in-process tests of the same code are in test_unreadable_images.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import pytest

from det_fixtures import coco_image_as_jpeg, damage_image
from etcore.checkpoint_io import load_checkpoint_file
from test_bad_inputs import RETINANET, Case, _det_train, _run_job, _seg_train, check_case

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def _resumed_after_the_fix(case: Case, result: subprocess.CompletedProcess) -> None:
    # the stopped run's last checkpoint, named by last_checkpoint, loaded whole (the stopped case's `kept` saw
    # iter_1.pth and last_checkpoint, and no iter_2.pth, right after it ended)
    log = max(case.work.glob("*/*.log")).read_text()
    assert f"Auto resumed from the latest checkpoint {case.work / 'iter_1.pth'}." in log
    assert "resumed epoch: 0, iter: 1" in log and "newest intact checkpoint" not in result.stdout
    assert load_checkpoint_file(case.work / "iter_2.pth")["meta"]["unreadable_images"] == []


def _skipped(*paths: Path) -> Callable[[Case, subprocess.CompletedProcess], None]:
    """The run skipped exactly `paths`: in its checkpoint's meta and in its last log line about them."""

    def check(case: Case, result: subprocess.CompletedProcess) -> None:
        assert load_checkpoint_file(case.work / "iter_2.pth")["meta"]["unreadable_images"] == sorted(map(str, paths))
        assert f"skipped {len(paths)} unreadable training image(s) (--skip-unreadable): " in result.stdout

    return check


def _named_in_metrics(*paths: Path) -> Callable[[Case, subprocess.CompletedProcess], None]:
    def check(case: Case, result: subprocess.CompletedProcess) -> None:
        metrics = json.loads((case.work / "coco_metrics.json").read_text())
        assert metrics["unreadable_images"] == sorted(map(str, paths)) and metrics["metrics"]["bbox"]

    return check


def _unreadable_sets(root: Path, coco: Path, ade: Path) -> dict[str, Path]:
    """Copies of the COCO and ADE-layout sets with damaged images: four kinds each for the check, one truncated
    training image for the run that meets it (the sampler reads it at iteration 2), two for skipping."""
    sets = {}
    coco_check = sets["coco_check"] = Path(shutil.copytree(coco, root / "coco_unreadable"))
    damage_image(coco_check / "train" / "train_0001.png", "truncated")
    damage_image(coco_image_as_jpeg(coco_check, "train", "train_0002.png"), "truncated")
    damage_image(coco_check / "train" / "train_0003.png", "empty")
    damage_image(coco_check / "val" / "val_0001.png", "not_an_image")
    ade_check = sets["ade_check"] = Path(shutil.copytree(ade, root / "ade_unreadable"))
    training = ade_check / "images" / "training"
    for image in sorted(training.glob("*.png")):  # ADE20K's images are JPEG (its label maps PNG)
        cv2.imwrite(str(image.with_suffix(".jpg")), cv2.imread(str(image)), [cv2.IMWRITE_JPEG_QUALITY, 90])
        image.unlink()
    damage_image(training / "000001.jpg", "truncated")
    damage_image(training / "000002.jpg", "empty")
    damage_image(training / "000003.jpg", "not_an_image")
    damage_image(ade_check / "images" / "validation" / "000001.png", "truncated")
    sets["coco_mid_run"] = Path(shutil.copytree(coco, root / "coco_mid_run"))
    sets["ade_mid_run"] = Path(shutil.copytree(ade, root / "ade_mid_run"))
    coco_skip = sets["coco_skip"] = Path(shutil.copytree(coco, root / "coco_skip"))
    damage_image(coco_skip / "train" / "train_0002.png", "truncated")
    damage_image(coco_skip / "train" / "train_0004.png", "not_an_image")
    ade_skip = sets["ade_skip"] = Path(shutil.copytree(ade, root / "ade_skip"))
    damage_image(ade_skip / "images" / "training" / "000002.png", "truncated")
    damage_image(ade_skip / "images" / "training" / "000005.png", "empty")
    return sets


def _build_cases(root: Path, coco: Path, ade: Path) -> list[list[Case]]:
    """Jobs (lists of cases run in order by one thread) over damaged copies of the shared sets, made under `root`."""
    unreadable = _unreadable_sets(root, coco, ade)
    coco_check, ade_check = unreadable["coco_check"], unreadable["ade_check"]
    coco_mid, ade_mid = unreadable["coco_mid_run"], unreadable["ade_mid_run"]
    coco_skip, ade_skip = unreadable["coco_skip"], unreadable["ade_skip"]
    coco_cut, ade_cut = coco_mid / "train" / "train_0006.png", ade_mid / "images" / "training" / "000006.png"
    coco_whole, ade_whole = damage_image(coco_cut, "truncated"), damage_image(ade_cut, "truncated")
    # images in file order, 4 a batch (mmdet's aspect-ratio batches off): iteration 2 reads the 5th and 6th
    in_order = (
        "train_dataloader.sampler.shuffle=False",
        "train_dataloader.batch_sampler=None",
        "default_hooks.checkpoint.interval=1",
    )
    placeholder = root / "iter_2.pth"  # tools/test.py checks the data before it reads the checkpoint
    placeholder.write_bytes(b"never read")

    def case(name: str, argv: list[str], *named: str, **kw) -> Case:
        work = kw.pop("work", root / "work" / name)
        argv = [str(work) if a == "{work}" else a for a in argv]
        return Case(name, argv, list(named), work, **kw)

    def stop_then_resume(kind: str, argv: list[str], cut: Path, whole: bytes) -> list[Case]:
        """The run that meets the truncated `cut` at iteration 2; then, the file put back, the same command with
        --resume. Its last checkpoint must outlive the error (`kept`, seen right after the run)."""
        work = root / "work" / f"{kind}_mid_run"
        return [
            case(
                f"{kind}_train_unreadable_image_mid_run",
                argv,
                f"image {cut} (train_dataloader) cannot be decoded (truncated PNG",
                "--resume to continue from the last checkpoint",
                "--skip-unreadable",
                work=work,
                kept=("iter_1.pth", "last_checkpoint"),
                library_warnings=True,
            ),
            case(
                f"{kind}_train_resumes_after_the_fix",
                argv + ["--resume"],
                work=work,
                exit_code=0,
                prepare=lambda: cut.write_bytes(whole),
                check=_resumed_after_the_fix,
            ),
        ]

    w = "{work}"
    det_skip_work = root / "work" / "det_skip"
    det_mid_run = _det_train(Path(w), coco_mid, *in_order)
    seg_mid_run = _seg_train(Path(w), ade_mid, *in_order)
    return [
        [
            case(
                "det_train_check_images_lists_every_unreadable_file",
                _det_train(Path(w), coco_check) + ["--check-images"],
                "4 of the 8 files the run reads cannot be decoded",
                "(all listed above)",
                "--skip-unreadable",
                listed=4,
            ),
            case(
                "det_test_check_images_names_the_unreadable_test_image",
                [
                    "tools/test.py",
                    str(RETINANET),
                    str(placeholder),
                    "--work-dir",
                    w,
                    "--check-images",
                    "--cfg-options",
                    f"data_root={coco_check}/",
                ],
                f"1 of the 2 files the run reads cannot be decoded: {coco_check}/val/val_0001.png (image, "
                "test_dataloader: not an image file",
            ),
            case(
                "seg_train_check_images_lists_every_unreadable_file",
                _seg_train(Path(w), ade_check, "train_dataloader.dataset.img_suffix=.jpg") + ["--check-images"],
                "4 of the 18 files the run reads cannot be decoded",
                "(all listed above)",
                listed=4,
            ),
        ],
        [
            *stop_then_resume("det", det_mid_run, coco_cut, coco_whole),
            case(
                "det_train_skip_unreadable_counts",
                _det_train(Path(w), coco_skip, *in_order) + ["--skip-unreadable"],
                work=det_skip_work,
                exit_code=0,
                check=_skipped(coco_skip / "train" / "train_0002.png", coco_skip / "train" / "train_0004.png"),
            ),
            case(
                "det_test_names_the_skipped_images_in_coco_metrics",
                [
                    "tools/test.py",
                    str(RETINANET),
                    str(det_skip_work / "iter_2.pth"),
                    "--work-dir",
                    w,
                    "--cfg-options",
                    f"data_root={coco_skip}/",
                ],
                work=det_skip_work,
                exit_code=0,
                check=_named_in_metrics(coco_skip / "train" / "train_0002.png", coco_skip / "train" / "train_0004.png"),
            ),
        ],
        [
            *stop_then_resume("seg", seg_mid_run, ade_cut, ade_whole),
            case(
                "seg_train_skip_unreadable_counts",
                _seg_train(Path(w), ade_skip, *in_order) + ["--skip-unreadable"],
                exit_code=0,
                check=_skipped(
                    ade_skip / "images" / "training" / "000002.png", ade_skip / "images" / "training" / "000005.png"
                ),
            ),
        ],
    ]


@pytest.fixture(scope="module")
def catalogue(module_tmp: Path, coco_tiny: Path, demo_data: Path) -> dict:
    """Run every case (2 at a time); {name: (case, result, seconds, trusted files left)}."""
    start = time.perf_counter()
    jobs = _build_cases(module_tmp, coco_tiny, demo_data / "ade")
    cases = {c.name: c for job in jobs for c in job}
    results: dict = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in pool.map(_run_job, jobs):
            results.update(done)
    print(f"\nunreadable-image cases: {len(cases)}, {time.perf_counter() - start:.0f} s wall on 2 threads")
    for name, (result, seconds, _) in results.items():  # the table of docs/RELIABILITY.md (pytest -s)
        print(f"  {name} [exit {result.returncode}, {seconds:.1f} s] {result.stderr.strip()[-400:]}")
    return {name: (cases[name], *results[name]) for name in cases}


CASE_NAMES = [
    "det_train_check_images_lists_every_unreadable_file",
    "det_test_check_images_names_the_unreadable_test_image",
    "seg_train_check_images_lists_every_unreadable_file",
    "det_train_unreadable_image_mid_run",
    "det_train_resumes_after_the_fix",
    "det_train_skip_unreadable_counts",
    "det_test_names_the_skipped_images_in_coco_metrics",
    "seg_train_unreadable_image_mid_run",
    "seg_train_resumes_after_the_fix",
    "seg_train_skip_unreadable_counts",
]


def test_the_catalogue_lists_every_case(catalogue: dict) -> None:
    assert sorted(CASE_NAMES) == sorted(catalogue)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_unreadable_image(catalogue: dict, name: str) -> None:
    case, result, seconds, trusted = catalogue[name]
    check_case(name, case, result, trusted)
