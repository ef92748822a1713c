"""The bad-input catalogue: each case runs the REAL command line (`python tools/X.py ...`) in a subprocess.

A user error must end in exactly one stderr line `error: ...` that names the input, exit code 2, no
traceback, and leave nothing a later run would trust (final.pth, last.pth, iter_*/epoch_*.pth,
last_checkpoint, coco_metrics.json, seg_metrics.json). The cases run up front on a pool of 2 threads (each subprocess
spends most of its ~5 s importing torch/mmdet); the tests then check one case each.
In-process versions of some cases live in test_pretrain_errors.py / test_det_tools.py; these prove the
command lines. docs/RELIABILITY.md lists the catalogue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from det_fixtures import write_coco_instances
from etcore.checkpoint_io import load_checkpoint_file
from pretrain_fixtures import tiny_args, write_two_stage_curriculum

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
REAL_RETINANET = ROOT / "det_configs" / "retinanet" / "retinanet_r50_fpn_1x_coco_baseline.py"
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"
TRUSTED = (
    "final.pth",
    "last.pth",
    "last_checkpoint",
    "coco_metrics.json",
    "seg_metrics.json",
    "iter_*.pth",
    "epoch_*.pth",
)
MODEL = "convnext_atto"


@dataclass
class Case:
    """One bad input: the command line, the text its error line must contain, what else to check."""

    name: str
    argv: list[str]
    named: list[str]  # substrings the error line must contain (the input, the fix)
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int = 2
    check: Callable[["Case", subprocess.CompletedProcess], None] | None = None
    before: dict[str, bytes] = field(default_factory=dict)  # filled just before the run, for `check`
    prepare: Callable[[], None] | None = None  # run just before the command (e.g. put a fixed file back)
    listed: int = 0  # stderr lines `unreadable: ...` expected before the error line
    kept: tuple[str, ...] = ()  # trusted files under `work` that must survive the error (the last checkpoint)
    library_warnings: bool = False  # a run that reached the runner: mmseg's UserWarnings may precede the error


# what Python's warnings module writes: "file:line: SomeWarning: message" and the indented source line(s)
_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: .*\n(?:  .*\n)*", re.M)


def _run(case: Case) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **case.env}
    return subprocess.run([sys.executable, *case.argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _pretrain(data: Path, work: Path, curriculum: Path | str, *extra: str, **options) -> list[str]:
    return ["tools/pretrain.py", *tiny_args(MODEL, data, work, curriculum, epochs=2, **options), *extra]


def _det_train(work: Path, coco: Path, *options: str) -> list[str]:
    return [
        "tools/train.py",
        str(RETINANET),
        "--work-dir",
        str(work),
        "--cfg-options",
        f"data_root={coco}/",
        "model.backbone.checkpoint=None",
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        *options,
    ]


def _seg_train(work: Path, ade: Path, *options: str) -> list[str]:
    return [
        "tools/train.py",
        str(UPERNET),
        "--work-dir",
        str(work),
        "--cfg-options",
        f"data_root={ade}/",
        "model.backbone.checkpoint=None",
        "train_cfg.max_iters=2",
        "train_cfg.val_interval=2",
        *options,
    ]


def _ade_variant(base: Path, dest: Path, name: str, edit: Callable[[Path], None]) -> Path:
    """A copy of the generated ADE-layout set whose label map `name` went through `edit` (given its path)."""
    shutil.copytree(base, dest)
    edit(dest / "annotations" / name)
    return dest


def _relabel(path: Path, value: int) -> None:
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    labels[3, 4] = value
    cv2.imwrite(str(path), labels)


def _coco_variant(base: Path, dest: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the generated COCO set whose train annotations went through `edit`."""
    shutil.copytree(base, dest)
    path = dest / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return dest


def _own_categories(root: Path) -> tuple[Path, Path]:
    """A COCO-format set whose categories are not the configs' (tiny layout), and its COCO-2017-named copy."""
    own = write_coco_instances(root / "coco_own", ("forklift", "pallet", "person"), train_images=4, val_images=2)
    coco_2017 = root / "coco_own_2017"
    for split in ("train", "val"):
        shutil.copytree(own / split, coco_2017 / f"{split}2017")
        (coco_2017 / "annotations").mkdir(exist_ok=True)
        shutil.copy(
            own / "annotations" / f"instances_{split}.json", coco_2017 / "annotations" / f"instances_{split}2017.json"
        )
    return own, coco_2017


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _truncated(src: Path, dest: Path) -> Path:
    dest.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dest


def _nothing_trusted_left(work: Path) -> list[str]:
    """Trusted files under the work dir (or the output file itself, for the convert tool)."""
    if work.is_file():
        return [str(work)]
    return [str(p) for pattern in TRUSTED for p in work.rglob(pattern)] if work.is_dir() else []


def _skip_counts_the_image(case: Case, result: subprocess.CompletedProcess) -> None:
    provenance = load_checkpoint_file(case.work / "final.pth")["provenance"]
    assert provenance["unreadable_images"] == 1 and provenance["images_seen"] == 2 * 24


def _keeps_epoch_0(case: Case, result: subprocess.CompletedProcess) -> None:
    assert load_checkpoint_file(case.work / "last.pth")["resume"]["epoch"] == 1  # epoch 0's state, intact
    assert not (case.work / "final.pth").exists() and not list(case.work.glob(".*.tmp"))


def _resume_target_untouched(case: Case, result: subprocess.CompletedProcess) -> None:
    assert (case.work / "last.pth").read_bytes() == case.before["last.pth"]
    assert not (case.work / "final.pth").exists()


def _build_cases(root: Path, data: Path, coco: Path, ade: Path) -> list[list[Case]]:
    """Jobs (lists of cases run in order by one thread) over the shared data and inputs made under `root`."""
    curriculum = write_two_stage_curriculum(root / "two.json")
    other_curriculum = write_two_stage_curriculum(root / "other.json", small=64)

    empty_class = root / "empty_class"
    shutil.copytree(data, empty_class)
    (empty_class / "train" / "class_9").mkdir()
    (empty_class / "val" / "class_9").mkdir()
    (empty_class / "val" / "class_9" / "0.png").write_bytes((data / "val" / "class_0" / "0.png").read_bytes())
    corrupt = root / "corrupt"
    shutil.copytree(data, corrupt)
    jpeg = corrupt / "train" / "class_1" / "broken.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40)  # a JPEG header, then nothing
    (corrupt / "train" / "class_1" / "7.png").unlink()  # keep 8 images in the class: 24 per epoch

    overlap = root / "overlap.json"
    overlap.write_text(
        json.dumps(
            {
                "name": "overlap",
                "final_size": 64,
                "stages": [
                    {"start_epoch": 0, "end_epoch": 2, "input_size": 32, "randaug_magnitude": 2},
                    {"start_epoch": 1, "end_epoch": 2, "input_size": 64, "randaug_magnitude": 6},
                ],
            }
        )
    )
    off_stride = write_two_stage_curriculum(root / "off_stride.json", small=48)

    malformed = shutil.copytree(coco, root / "coco_malformed")
    (malformed / "annotations" / "instances_train.json").write_text('{"images": [}')
    unknown_cat = _coco_variant(coco, root / "coco_unknown_cat", lambda d: d["annotations"][2].update(category_id=77))
    zero_area = _coco_variant(
        coco, root / "coco_zero_area", lambda d: d["annotations"][1].update(bbox=[10.0, 12.0, 0.0, 0.0], area=0.0)
    )
    missing_image = shutil.copytree(coco, root / "coco_missing_image")
    (missing_image / "train" / "train_0003.png").unlink()

    def shrink(path: Path) -> None:
        cv2.imwrite(str(path), np.zeros((30, 40), np.uint8))

    small_label = _ade_variant(ade, root / "ade_small_label", "training/000002.png", shrink)
    high_label = _ade_variant(ade, root / "ade_high_label", "training/000003.png", lambda p: _relabel(p, 11))
    no_label = _ade_variant(ade, root / "ade_no_label", "validation/000001.png", lambda p: p.unlink())
    placeholder = root / "iter_2.pth"  # tools/test.py checks the data before it reads the checkpoint
    placeholder.write_bytes(b"never read")

    atto = root / "convnext_atto.pth"
    import timm

    state = timm.create_model(MODEL, pretrained=False).state_dict()
    torch.save(state, atto)
    other_arch = root / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), other_arch)
    missing_key = root / "convnext_atto_missing_key.pth"
    torch.save({k: v for k, v in state.items() if k != "stages.2.blocks.0.conv_dw.weight"}, missing_key)
    truncated = _truncated(atto, root / "truncated.pth")
    code_in_args = root / "checkpoint-best.pth"  # EfficientTrain's save_model layout, args hiding os.system
    args = argparse.Namespace(model=MODEL, end_epoch=300, base_input_size=224, output_dir=_RunsCode())
    torch.save({"model": state, "optimizer": {}, "epoch": "best", "scaler": {}, "args": args}, code_in_args)
    own_categories, own_categories_2017 = _own_categories(root)
    blocker = root / "a_file"
    blocker.write_text("a regular file where the work dir should go\n")

    def case(name: str, argv: list[str], *named: str, **kw) -> Case:
        work = kw.pop("work", root / "work" / name)
        argv = [str(work) if a == "{work}" else a for a in argv]
        return Case(name, argv, list(named), work, **kw)

    w = "{work}"
    nan_work = root / "work" / "nan_loss"
    jobs: list[list[Case]] = [
        [
            case(
                "pretrain_missing_data",
                _pretrain(root / "nowhere", Path(w), curriculum),
                "--data",
                "nowhere does not exist",
            )
        ],
        [case("pretrain_empty_class_folder", _pretrain(empty_class, Path(w), curriculum), "class_9 holds no images")],
        [
            case(
                "pretrain_corrupt_jpeg_stops",
                _pretrain(corrupt, Path(w), curriculum),
                "broken.jpg cannot be read",
                "--corrupt-images skip",
            )
        ],
        [
            case(
                "pretrain_corrupt_jpeg_skipped_and_counted",
                _pretrain(corrupt, Path(w), curriculum, corrupt_images="skip", mixup=0.0, cutmix=0.0),
                exit_code=0,
                check=_skip_counts_the_image,
            )
        ],
        [
            case(
                "pretrain_unknown_timm_model",
                [
                    "tools/pretrain.py",
                    "--model",
                    "convnxt_atto",
                    "--data",
                    str(data),
                    "--work-dir",
                    w,
                    "--curriculum",
                    str(curriculum),
                    "--epochs",
                    "2",
                    "--final-size",
                    "64",
                    "--device",
                    "cpu",
                ],
                "'convnxt_atto' is not a timm model",
                "convnext_atto",
            )
        ],
        [
            case(
                "pretrain_curriculum_overlapping_stages",
                _pretrain(data, Path(w), overlap),
                "overlap.json",
                "overlaps or comes before the previous stage",
            )
        ],
        [
            case(
                "pretrain_curriculum_size_off_stride",
                _pretrain(data, Path(w), off_stride),
                "off_stride.json",
                "input_size 48 is not a multiple of 32",
            )
        ],
        [
            case(
                "pretrain_work_dir_under_a_file",
                _pretrain(data, blocker / "sub", curriculum),
                str(blocker),
                work=blocker / "sub",
            )
        ],
        [
            case(
                "pretrain_nan_loss",
                ["tests/fault_callbacks.py", "nan@iter=8", "--", *_pretrain(data, Path(w), curriculum)[1:]],
                "training diverged: the loss became nan",
                work=nan_work,
                check=_keeps_epoch_0,
            ),
            case(
                "pretrain_resume_with_another_curriculum",
                _pretrain(data, nan_work, other_curriculum, "--resume"),
                "was trained with other settings (curriculum",
                work=nan_work,
                check=_resume_target_untouched,
            ),
        ],
        [
            case(
                "det_train_malformed_coco_json",
                _det_train(Path(w), malformed),
                "instances_train.json is not valid JSON",
                "line 1",
            )
        ],
        [
            case(
                "det_train_unknown_category_id",
                _det_train(Path(w), unknown_cat),
                'has category id 77, which is not in "categories"',
            )
        ],
        [
            case(
                "det_train_zero_area_box",
                _det_train(Path(w), zero_area),
                "instances_train.json",
                "have zero area",
                "fix or delete them",
            )
        ],
        [case("det_train_image_file_missing", _det_train(Path(w), missing_image), "missing from", "train_0003.png")],
        [
            case(
                "det_train_own_categories_without_switch",
                _det_train(Path(w), own_categories),
                "instances_train.json: none of its 3 category names (forklift, pallet, person)",
                "circle_hstripes",
                "--classes-from-annotations",
            )
        ],
        [
            case(
                "det_train_real_config_own_categories",
                [
                    "tools/train.py",
                    str(REAL_RETINANET),
                    "--work-dir",
                    w,
                    "--cfg-options",
                    f"data_root={own_categories_2017}/",
                    "model.backbone.checkpoint=None",
                ],
                "instances_train2017.json has no category named bicycle, car, motorcycle and 76 more",
                "forklift, pallet",
                "--classes-from-annotations",
            )
        ],
        [
            case(
                "det_train_pretrained_checkpoint_of_another_model",
                _det_train(Path(w), coco, f"model.backbone.checkpoint={other_arch}"),
                str(other_arch),
            )
        ],
        [
            case(
                "det_train_pretrained_checkpoint_missing_key",
                _det_train(Path(w), coco, f"model.backbone.checkpoint={missing_key}"),
                str(missing_key),
                "stages.2.blocks.0.conv_dw.weight",
            )
        ],
        [
            case(
                "det_train_resume_from_truncated_checkpoint",
                _det_train(Path(w), coco) + ["--resume", str(truncated)],
                str(truncated),
                "corrupt or truncated",
            )
        ],
        [
            case(
                "det_train_work_dir_under_a_file",
                _det_train(blocker / "sub2", coco),
                str(blocker),
                work=blocker / "sub2",
            )
        ],
        [
            case(
                "seg_train_label_map_of_the_wrong_size",
                _seg_train(Path(w), small_label),
                f"label map {small_label}/annotations/training/000002.png",
                "is 40x30 but its image",
                "a label map has its image's size",
            )
        ],
        [
            case(
                "seg_train_label_above_the_class_count",
                _seg_train(Path(w), high_label),
                f"label map {high_label}/annotations/training/000003.png",
                "holds value 11",
                "not the ignore value 255",
            )
        ],
        [
            case(
                "seg_test_annotation_file_missing",
                [
                    "tools/test.py",
                    str(UPERNET),
                    str(placeholder),
                    "--work-dir",
                    w,
                    "--cfg-options",
                    f"data_root={no_label}/",
                    "model.backbone.checkpoint=None",
                ],
                f"annotation file {no_label}/annotations/validation/000001.png (test_dataloader) does not exist",
            )
        ],
        [
            case(
                "det_test_truncated_checkpoint",
                [
                    "tools/test.py",
                    str(RETINANET),
                    str(truncated),
                    "--work-dir",
                    w,
                    "--cfg-options",
                    f"data_root={coco}/",
                ],
                str(truncated),
                "corrupt or truncated",
            )
        ],
        [
            case(
                "convert_checkpoint_of_another_model",
                ["tools/convert_checkpoint.py", str(other_arch), str(root / "out1.pth"), "--model", MODEL],
                str(other_arch),
                work=root / "out1.pth",
            )
        ],
        [
            case(
                "convert_checkpoint_missing_key",
                ["tools/convert_checkpoint.py", str(missing_key), str(root / "out2.pth"), "--model", MODEL],
                str(missing_key),
                "stages.2.blocks.0.conv_dw.weight",
                work=root / "out2.pth",
            )
        ],
        [
            case(
                "convert_official_checkpoint_with_code_in_args",
                ["tools/convert_checkpoint.py", str(code_in_args), str(root / "out4.pth"), "--model", MODEL],
                str(code_in_args),
                "refused for safety",
                work=root / "out4.pth",
            )
        ],
        [
            case(
                "convert_truncated_checkpoint",
                ["tools/convert_checkpoint.py", str(truncated), str(root / "out3.pth"), "--model", MODEL],
                str(truncated),
                "corrupt or truncated",
                work=root / "out3.pth",
            )
        ],
    ]
    return jobs


def _run_job(job: list[Case]) -> dict[str, tuple[subprocess.CompletedProcess, float, list[str]]]:
    done = {}
    for case in job:
        if case.prepare is not None:
            case.prepare()
        if case.check is _resume_target_untouched:
            case.before["last.pth"] = (case.work / "last.pth").read_bytes()
        start = time.perf_counter()
        result = _run(case)
        done[case.name] = (result, time.perf_counter() - start, _nothing_trusted_left(case.work))
    return done


@pytest.fixture(scope="module")
def catalogue(module_tmp: Path, image_folder: Path, coco_tiny: Path, demo_data: Path) -> dict:
    """Run every case (2 at a time); {name: (case, result, seconds, trusted files left)} + total seconds."""
    start = time.perf_counter()
    jobs = _build_cases(module_tmp, image_folder, coco_tiny, demo_data / "ade")
    cases = {c.name: c for job in jobs for c in job}
    results: dict = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in pool.map(_run_job, jobs):
            results.update(done)
    wall = time.perf_counter() - start
    print(f"\nbad-input catalogue: {len(cases)} cases, {wall:.0f} s wall on 2 threads")
    for name, (result, seconds, _) in results.items():  # the table of docs/RELIABILITY.md (pytest -s)
        print(f"  {name} [exit {result.returncode}, {seconds:.1f} s] {result.stderr.strip()[-400:]}")
    return {name: (cases[name], *results[name]) for name in cases} | {"_wall_s": wall}


CASE_NAMES = [
    "pretrain_missing_data",
    "pretrain_empty_class_folder",
    "pretrain_corrupt_jpeg_stops",
    "pretrain_corrupt_jpeg_skipped_and_counted",
    "pretrain_unknown_timm_model",
    "pretrain_curriculum_overlapping_stages",
    "pretrain_curriculum_size_off_stride",
    "pretrain_work_dir_under_a_file",
    "pretrain_nan_loss",
    "pretrain_resume_with_another_curriculum",
    "det_train_malformed_coco_json",
    "det_train_unknown_category_id",
    "det_train_zero_area_box",
    "det_train_image_file_missing",
    "det_train_own_categories_without_switch",
    "det_train_real_config_own_categories",
    "det_train_pretrained_checkpoint_of_another_model",
    "det_train_pretrained_checkpoint_missing_key",
    "det_train_resume_from_truncated_checkpoint",
    "det_train_work_dir_under_a_file",
    "seg_train_label_map_of_the_wrong_size",
    "seg_train_label_above_the_class_count",
    "seg_test_annotation_file_missing",
    "det_test_truncated_checkpoint",
    "convert_checkpoint_of_another_model",
    "convert_checkpoint_missing_key",
    "convert_official_checkpoint_with_code_in_args",
    "convert_truncated_checkpoint",
]


def test_the_catalogue_lists_every_case(catalogue: dict) -> None:
    assert sorted(CASE_NAMES) == sorted(k for k in catalogue if not k.startswith("_"))


def check_case(name: str, case: Case, result: subprocess.CompletedProcess, trusted: list[str]) -> None:
    """The catalogue's rules for one finished case (tests/test_bad_images.py checks its cases with them too)."""
    assert result.returncode == case.exit_code, f"{name}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if case.exit_code == 2:
        stderr = _WARNING.sub("", result.stderr) if case.library_warnings else result.stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 + case.listed and lines[-1].startswith("error: "), (
            f"{name}: stderr is\n{result.stderr[-3000:]}"
        )
        assert all(line.startswith("unreadable: ") for line in lines[:-1]), result.stderr[-3000:]
        for text in case.named:
            assert text in lines[-1], f"{name}: {text!r} not in {lines[-1]!r}"
        allowed = {str(case.work / "last.pth")} if case.check in (_keeps_epoch_0, _resume_target_untouched) else set()
        kept = {str(case.work / file) for file in case.kept}  # the last checkpoint of a run stopped midway
        assert set(trusted) <= allowed | kept and kept <= set(trusted), f"{name} left {trusted}"
    if case.check is not None:
        case.check(case, result)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input(catalogue: dict, name: str) -> None:
    case, result, seconds, trusted = catalogue[name]
    check_case(name, case, result, trusted)
