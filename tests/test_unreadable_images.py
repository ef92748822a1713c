"""Unreadable images in detection and segmentation sets (finetune/images.py), in-process: the decoding rule, the
`--check-images` report on a COCO set and an ADE-layout set, the error raised in a dataloader worker, skipping and
counting, and the config rewriting. The command lines (mid-run error, --resume after the fix, --skip-unreadable's
count in the metrics file) are cases of tests/test_bad_inputs.py."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from det_fixtures import as_jpeg, coco_image_as_jpeg, damage_image
from etcore.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
RETINANET = ROOT / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"
CASCADE = (
    ROOT
    / "det_configs"
    / "cascade_mask_rcnn"
    / "cascade-mask-rcnn_swin-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco_baseline.py"
)
UPERNET_REAL = ROOT / "seg_configs" / "upernet" / "upernet_swin-t_8xb2-160k_ade20k-512x512_baseline.py"
UPERNET = ROOT / "seg_configs" / "tiny" / "upernet_resnet18_tiny-demo_baseline.py"


def _picture(height: int = 96, width: int = 128) -> np.ndarray:
    """A textured picture, so that a third of its JPEG stops mid-scan."""
    rng = np.random.default_rng(0)
    noise = cv2.resize(rng.normal(0, 1, (height // 4, width // 4, 3)), (width, height)) * 50 + 120
    return np.clip(noise + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def _encoded() -> dict[str, bytes]:
    picture = _picture()
    return {
        "PNG": cv2.imencode(".png", picture)[1].tobytes(),
        "JPEG": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(),
        "progressive JPEG": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
    }


def test_the_decoding_rule_refuses_every_damage_and_accepts_whole_files():
    from finetune.images import UndecodableImage, decode_image

    for kind, data in _encoded().items():
        assert decode_image(data).shape == (96, 128, 3)
        assert decode_image(data + b"\0\0trailer").shape == (96, 128, 3), kind  # bytes after the end marker
        for keep in (len(data) // 3, len(data) - 2):
            with pytest.raises(UndecodableImage, match=f"truncated {kind.split()[-1]}, {keep} bytes"):
                decode_image(data[:keep])
    with pytest.raises(UndecodableImage, match="empty file, 0 bytes"):
        decode_image(b"")
    with pytest.raises(UndecodableImage, match=r"not an image file \(49 bytes of unknown format\)"):
        decode_image(b"<html><body><h1>404 Not Found</h1></body></html>\n")


def test_cv2_alone_trains_on_a_truncated_baseline_jpeg():
    """Why the rule checks the end marker: mmcv's default backend returns a third of a JPEG as a whole picture."""
    data = _encoded()["JPEG"]
    partial = cv2.imdecode(np.frombuffer(data[: len(data) // 3], np.uint8), cv2.IMREAD_COLOR)
    assert partial is not None and partial.shape == (96, 128, 3)


@pytest.fixture
def damaged_coco(tmp_path: Path, coco_tiny: Path) -> Path:
    """The tiny COCO set with one truncated PNG, one truncated JPEG and one empty training image, and a
    validation image that is an HTML page."""
    root = Path(shutil.copytree(coco_tiny, tmp_path / "coco"))
    damage_image(root / "train" / "train_0001.png", "truncated")
    damage_image(coco_image_as_jpeg(root, "train", "train_0002.png"), "truncated")
    damage_image(root / "train" / "train_0003.png", "empty")
    damage_image(root / "val" / "val_0001.png", "not_an_image")
    return root


@pytest.mark.slow
def test_check_images_names_every_unreadable_file_of_a_coco_set(damaged_coco: Path, capsys):
    from finetune.config import load_config
    from finetune.images import check_images

    cfg = load_config(str(RETINANET), {"data_root": f"{damaged_coco}/"})
    keys = ["train_dataloader", "val_dataloader"]
    with pytest.raises(UserInputError) as raised:
        check_images(cfg, keys)
    message = str(raised.value)
    assert message.startswith("4 of the 8 files the run reads cannot be decoded: ")
    assert "(all listed above)" in message and "--skip-unreadable" in message
    listed = capsys.readouterr().err.strip().splitlines()
    expected = {
        f"{damaged_coco}/train/train_0001.png": "truncated PNG",
        f"{damaged_coco}/train/train_0002.jpg": "truncated JPEG",
        f"{damaged_coco}/train/train_0003.png": "empty file",
        f"{damaged_coco}/val/val_0001.png": "not an image file",
    }
    assert len(listed) == 4
    for line, (path, reason) in zip(listed, expected.items()):
        assert line.startswith(f"unreadable: {path} (image, ") and reason in line, line

    # with --skip-unreadable the training images are noted (the run skips them); a validation image still stops
    with pytest.raises(UserInputError, match=r"^1 of the 8 files .*/val_0001.png \(image, val_dataloader: not an"):
        check_images(cfg, keys, skip_training=True)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("will be skipped (--skip-unreadable)") == 3


@pytest.mark.slow
def test_check_images_on_an_ade_layout_set_reports_images_and_label_maps(tmp_path: Path, demo_data: Path, capsys):
    from finetune.config import load_config
    from finetune.images import check_images
    from finetune.segmentation import check_seg_data

    root = Path(shutil.copytree(demo_data / "ade", tmp_path / "ade"))
    training = root / "images" / "training"
    for image in sorted(training.glob("*.png")):  # ADE20K's own images are JPEG
        as_jpeg(image)
    damage_image(training / "000001.jpg", "truncated")
    damage_image(training / "000002.jpg", "empty")
    damage_image(training / "000003.jpg", "not_an_image")
    damage_image(root / "images" / "validation" / "000001.png", "truncated")
    damage_image(root / "annotations" / "validation" / "000002.png", "truncated")
    cfg = load_config(str(UPERNET), {"data_root": f"{root}/", "train_dataloader.dataset.img_suffix": ".jpg"})
    keys = ["train_dataloader", "val_dataloader"]

    with pytest.raises(UserInputError, match=r"image .*training/000002.jpg \(train_dataloader\) cannot be read"):
        check_seg_data(cfg, keys)  # without --check-images: the first file that does not open, as before
    check_seg_data(cfg, keys, images_checked=True)  # leaves them all to the full report
    with pytest.raises(UserInputError, match=r"^5 of the \d+ files the run reads cannot be decoded"):
        check_images(cfg, keys)
    listed = capsys.readouterr().err.strip().splitlines()
    assert [line.split()[1].split("/ade/")[1] for line in listed] == [
        "images/training/000001.jpg",
        "images/training/000002.jpg",
        "images/training/000003.jpg",
        "images/validation/000001.png",
        "annotations/validation/000002.png",
    ]
    assert "truncated JPEG" in listed[0] and "(label map, val_dataloader: truncated PNG" in listed[4]


def test_a_truncated_label_map_is_one_line_without_the_check(tmp_path: Path, demo_data: Path, capfd):
    from finetune.config import load_config
    from finetune.segmentation import check_seg_data

    root = Path(shutil.copytree(demo_data / "ade", tmp_path / "ade"))
    label = root / "annotations" / "training" / "000004.png"
    damage_image(label, "truncated")
    cfg = load_config(str(UPERNET), {"data_root": f"{root}/"})
    with pytest.raises(
        UserInputError, match=rf"annotation file {label} \(train_dataloader\) cannot be decoded \(trunc"
    ):
        check_seg_data(cfg, ["train_dataloader"])
    assert "libpng" not in capfd.readouterr().err  # cv2 is never handed the cut file


class _LoadOne(torch.utils.data.Dataset):
    def __init__(self, path: Path, loader: str) -> None:
        from finetune.images import CheckedLoadImageFromFile

        self.path, self.step = str(path), CheckedLoadImageFromFile(loader=loader)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        return self.step(dict(img_path=self.path))


@pytest.mark.parametrize("loader", ["train_dataloader", "val_dataloader"])
def test_an_unreadable_image_in_a_dataloader_worker_becomes_one_line(tmp_path: Path, loader: str):
    from finetune.images import UnreadableImageError, fix_for_testing, fix_for_training, stop_on_unreadable

    image = tmp_path / "000045.png"
    image.write_bytes(_encoded()["PNG"])
    damage_image(image, "truncated")
    batches = torch.utils.data.DataLoader(_LoadOne(image, loader), num_workers=1, collate_fn=lambda batch: batch)
    with pytest.raises(UnreadableImageError) as raised:
        next(iter(batches))  # a worker process: torch rebuilds the error from the worker's traceback text
    err = raised.value
    assert (err.path, err.loader) == (str(image), loader) and err.reason.startswith("truncated PNG")
    assert str(err) == f"image {image} ({loader}) cannot be decoded ({err.reason})"
    with pytest.raises(UserInputError) as converted, stop_on_unreadable(fix_for_training):
        raise err
    assert str(converted.value).startswith(f"image {image} ({loader}) cannot be decoded (truncated PNG")
    assert "--resume" in str(converted.value)
    if loader == "train_dataloader":
        assert "--skip-unreadable" in str(converted.value)
    else:
        assert "evaluation images are never skipped" in str(converted.value)
    assert "--resume" not in fix_for_testing(loader) and "--check-images" in fix_for_testing(loader)


def test_skipped_images_are_recorded_counted_once_and_kept_in_checkpoints(tmp_path: Path):
    from finetune.images import CheckedLoadImageFromFile, UnreadableImagesHook, read_record, skipped_in_training

    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    good.write_bytes(_encoded()["PNG"])
    bad.write_bytes(b"")
    record = tmp_path / "unreadable_images.txt"
    record.write_text("/earlier/run.png\ttrain_dataloader\tempty file, 0 bytes\n")
    offset = record.stat().st_size
    step = CheckedLoadImageFromFile(loader="train_dataloader", skip=True, record=str(record))
    assert step(dict(img_path=str(good)))["img"].shape == (96, 128, 3)
    assert step(dict(img_path=str(bad))) is None and step(dict(img_path=str(bad))) is None  # met twice
    found, end = read_record(str(record), offset)
    assert found == {str(bad): "empty file, 0 bytes"} and end == record.stat().st_size

    runner = SimpleNamespace(logger=logging.getLogger("test_unreadable_images"))
    hook = UnreadableImagesHook(record=str(record), offset=offset)
    hook.after_load_checkpoint(runner, {"meta": {"unreadable_images": ["/before/resume.png"]}})
    hook.after_train_iter(runner, 0)
    checkpoint: dict = {"meta": {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert skipped_in_training(checkpoint) == ["/before/resume.png", str(bad)]
    assert skipped_in_training({"meta": {}}) is None  # a checkpoint of another tool does not say


def test_the_tools_swap_every_image_loader_of_the_real_configs(tmp_path: Path):
    from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
    from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

    from finetune.config import load_config
    from finetune.images import CheckedLoadImageFromFile, _steps, use_checked_loading

    configs = [(RETINANET, DET_TRANSFORMS), (CASCADE, DET_TRANSFORMS), (UPERNET, SEG_TRANSFORMS)]
    for config, registry in configs + [(UPERNET_REAL, SEG_TRANSFORMS)]:
        for keys in (["train_dataloader", "val_dataloader"], ["test_dataloader"]):  # tools/train.py, tools/test.py
            cfg = load_config(str(config))
            cfg.work_dir = str(tmp_path / "work")
            for _ in range(2):  # a config rewritten twice (e.g. read back from a work dir) keeps one hook
                use_checked_loading(cfg, keys, skip_training=True)
            for key in keys:
                assert not list(_steps(cfg.get(key), ("LoadImageFromFile",))), (config.name, key)
                (step,) = _steps(cfg.get(key), ("CheckedLoadImageFromFile",))
                assert (step["loader"], step["skip"]) == (key, key == "train_dataloader"), (config.name, key)
                assert isinstance(registry.build(step), CheckedLoadImageFromFile)
            if keys == ["test_dataloader"] and cfg.get("tta_pipeline"):
                assert next(_steps(cfg.tta_pipeline, ("CheckedLoadImageFromFile",)))["loader"] == "test_dataloader"
            assert cfg.custom_imports["imports"].count("finetune.images") == 1
            hooks = [h["type"] for h in cfg.get("custom_hooks") or []]
            assert hooks.count("UnreadableImagesHook") == (1 if "train_dataloader" in keys else 0)
