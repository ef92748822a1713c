"""Bad input and divergence end in one clear line (UserInputError -> exit 2), never half-written files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import UserInputError
from fault_callbacks import fault_command
from pretrain_fixtures import make_image_folder, read_log, tiny_args, write_two_stage_curriculum
from pretraining.cli import main
from pretraining.distributed import init_distributed

REPO = Path(__file__).resolve().parents[1]
MODEL = "convnext_atto"


@pytest.fixture(scope="module")
def data(image_folder: Path) -> Path:
    return image_folder


@pytest.fixture()
def curriculum(tmp_path: Path) -> Path:
    return write_two_stage_curriculum(tmp_path / "two.json")


def test_missing_data_folder_and_split(tmp_path: Path, curriculum: Path) -> None:
    with pytest.raises(UserInputError, match=r"--data .*nowhere does not exist"):
        main(tiny_args(MODEL, tmp_path / "nowhere", tmp_path / "w", curriculum, epochs=2))
    make_image_folder(tmp_path / "only_train", per_class=1)
    shutil.rmtree(tmp_path / "only_train" / "val", ignore_errors=True)
    with pytest.raises(UserInputError, match=r"has no 'val' folder: expected .*only_train/val/<class>"):
        main(tiny_args(MODEL, tmp_path / "only_train", tmp_path / "w", curriculum, epochs=2))
    assert not (tmp_path / "w" / "last.pth").exists()


def test_empty_class_folder_is_named(data: Path, tmp_path: Path, curriculum: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "train" / "class_9").mkdir()
    with pytest.raises(UserInputError, match=r"class folder .*train/class_9 holds no images"):
        main(tiny_args(MODEL, copy, tmp_path / "w", curriculum, epochs=2))


def test_unknown_model_lists_close_matches(data: Path, tmp_path: Path, curriculum: Path) -> None:
    args = tiny_args(MODEL, data, tmp_path / "w", curriculum, epochs=2)
    args[args.index(MODEL)] = "convnxt_atto"
    with pytest.raises(UserInputError, match=r"'convnxt_atto' is not a timm model \(close matches: convnext_atto"):
        main(args)


def test_bad_curriculum_and_bad_settings(data: Path, tmp_path: Path, curriculum: Path) -> None:
    with pytest.raises(UserInputError, match="unknown curriculum 'efficienttrian'"):
        main(tiny_args(MODEL, data, tmp_path / "w", "efficienttrian", epochs=2))
    with pytest.raises(UserInputError, match="stages cover 2 epochs but the run's --epochs is 3"):
        main(tiny_args(MODEL, data, tmp_path / "w", curriculum, epochs=3))
    config = tmp_path / "bad.yaml"
    config.write_text("clip_gard: 1.0\n")
    with pytest.raises(UserInputError, match=r"unknown setting 'clip_gard' \(did you mean clip_grad"):
        main(tiny_args(MODEL, data, tmp_path / "w", curriculum, epochs=2, config=config))
    with pytest.raises(UserInputError, match="--batch-size 3 is odd"):
        main(tiny_args(MODEL, data, tmp_path / "w", curriculum, epochs=2, batch_size=3))
    with pytest.raises(UserInputError, match="trains at 16 px, below convnext_atto's total stride of 32 px"):
        main(
            [
                "--model",
                MODEL,
                "--data",
                str(data),
                "--work-dir",
                str(tmp_path / "w"),
                "--curriculum",
                "efficienttrain",
                "--epochs",
                "5",
                "--final-size",
                "32",
                "--size-multiple",
                "16",
            ]
        )


@pytest.mark.slow
@pytest.mark.subprocess
def test_nan_loss_stops_with_exit_2_and_keeps_the_last_good_checkpoint(
    data: Path, tmp_path: Path, curriculum: Path
) -> None:
    work = tmp_path / "w"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        fault_command("nan@iter=8", tiny_args(MODEL, data, work, curriculum, epochs=2)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training diverged: the loss became nan at epoch 1 step 1")
    assert "Traceback" not in result.stderr
    assert load_checkpoint_file(work / "last.pth")["resume"]["epoch"] == 1  # epoch 0's state, intact
    assert not (work / "final.pth").exists() and not list(work.glob(".*.tmp"))
    assert [row["epoch"] for row in read_log(work)] == [0]

    # The interrupted work dir refuses a silent restart and a resume with another curriculum.
    with pytest.raises(UserInputError, match="last.pth exists from an earlier run: pass --resume"):
        main(tiny_args(MODEL, data, work, curriculum, epochs=2))
    other = write_two_stage_curriculum(tmp_path / "other.json", small=64)
    with pytest.raises(UserInputError, match=r"was trained with other settings \(curriculum: "):
        main(tiny_args(MODEL, data, work, other, epochs=2) + ["--resume"])
    # ... and resumes cleanly once the cause is gone.
    assert main(tiny_args(MODEL, data, work, curriculum, epochs=2) + ["--resume"]) == 0
    assert [row["epoch"] for row in read_log(work)] == [0, 1]


@pytest.mark.slow
def test_corrupt_image_stops_or_is_skipped_and_counted(data: Path, tmp_path: Path, curriculum: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    broken = copy / "train" / "class_1" / "3.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserInputError, match=r"image .*class_1/3.png cannot be read .*--corrupt-images skip"):
        main(tiny_args(MODEL, copy, tmp_path / "stop", curriculum, epochs=2))
    assert main(tiny_args(MODEL, copy, tmp_path / "skip", curriculum, epochs=2, corrupt_images="skip")) == 0
    provenance = load_checkpoint_file(tmp_path / "skip" / "final.pth")["provenance"]
    assert provenance["unreadable_images"] == 1 and provenance["images_seen"] == 48


@pytest.mark.slow
def test_finished_run_with_other_settings_is_refused(data: Path, tmp_path: Path, curriculum: Path) -> None:
    work = tmp_path / "w"
    assert main(tiny_args(MODEL, data, work, curriculum, epochs=2, mixup=0.0, cutmix=0.0)) == 0
    with pytest.raises(UserInputError, match=r"final.pth holds a finished run with other settings \(cutmix: 0.0 "):
        main(tiny_args(MODEL, data, work, curriculum, epochs=2, mixup=0.0))


def test_launcher_environment_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    with pytest.raises(UserInputError, match="Slurm job without MASTER_ADDR"):
        init_distributed("cpu")
    assert "RANK" not in os.environ and "WORLD_SIZE" not in os.environ  # nothing leaks into the process
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserInputError, match="WORLD_SIZE=2 but MASTER_ADDR is not set"):
        init_distributed("cpu")
