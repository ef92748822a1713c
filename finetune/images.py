"""Images that cannot be decoded, in detection and segmentation sets: found before a run, one `error:` line during
it, or skipped and counted.

Why: mmcv's `LoadImageFromFile` (mmdet's and mmseg's image loader) fails on an undecodable file with an
`AssertionError: failed to load image` traceback whenever the sampler reaches it, hours into a run and again after
`--resume`; and its default cv2 backend decodes a truncated baseline JPEG without a word (the rows past the cut
hold whatever the memory held, often the previous image's pixels).
The tools' checks before a run read image headers only, which a truncated file keeps. So:

- One rule says whether a file is readable, before and during a run (`decode_image`): not empty, a PNG or JPEG
  whole (its end marker present, or else a strict PIL decode that refuses truncated data), and decoded by the
  backend and flag of the config's own loading step. Hand-written: mmcv and cv2 have no strict mode, and PIL's
  strictness alone would not decode as the pipeline's backend does.
- Before the run, `--check-images` (`check_images`): every image (and label map) of every dataset the run reads,
  listed by the dataset classes themselves, is decoded with that rule on a thread pool (cv2 and PIL release the
  GIL while decoding); all unreadable files are named, then one `UserInputError`.
- During the run, the tools swap the configs' `LoadImageFromFile` for `CheckedLoadImageFromFile` (config rewriting,
  so the config files stay the official recipes): an unreadable file raises `UnreadableImageError`, which
  `stop_on_unreadable` turns into one `error:` line naming the file, its dataloader and the fix. With
  `--skip-unreadable` a training image is skipped instead: the transform returns None, and mmengine's
  `BaseDataset` draws another index (its own retry), the path is appended to `<work_dir>/unreadable_images.txt`
  (dataloader workers are processes), and `UnreadableImagesHook` logs it, keeps the list in every checkpoint's
  meta (so `--resume` carries it on), names all at the end, and `tools/test.py` copies it into the metrics file.
  Evaluation images are never skipped: a metric over fewer images is not the benchmark's number (and CocoMetric
  would score a skipped image as all misses).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import os.path as osp
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, TRANSFORMS
from PIL import Image

from etcore.errors import UserInputError
from etcore.formats import UNREADABLE_IMAGES_FILE, UNREADABLE_IMAGES_KEY
from finetune.coco_validation import first_few
from finetune.config import datasets_of

TRAIN_LOADER = "train_dataloader"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"  # signature; the IEND chunk's type and fixed CRC
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"  # start- and end-of-image markers
_LOADERS = ("LoadImageFromFile", "CheckedLoadImageFromFile")
_MESSAGE = re.compile(r"image (?P<path>.+) \((?P<loader>\w+)\) cannot be decoded \((?P<reason>.*)\)", re.S)


class UndecodableImage(ValueError):
    """Why a file's bytes are not a readable image (a short reason, no path)."""


def _strict_pil_problem(data: bytes) -> str | None:
    """None if PIL decodes `data` completely, else its reason (PIL refuses truncated data by default)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as err:  # noqa: BLE001  (any failure to decode untrusted bytes means unreadable)
        return " ".join(str(err).split()) or type(err).__name__
    return None


def _truncation(data: bytes) -> str | None:
    """Why `data` is a cut-off PNG or JPEG, else None.

    A PNG is whole when it holds its IEND chunk (mandatory; bytes may follow it). A JPEG is whole when it ends
    with its end-of-image marker; one that does not (valid files may carry bytes after the marker) is decided by
    a strict PIL decode. cv2 would return a cut baseline JPEG as a whole picture, and print libpng's complaint
    about a cut PNG on stderr before failing.
    """
    if data.startswith(_PNG_START):
        return None if _PNG_END in data else f"truncated PNG, {len(data)} bytes: no IEND chunk"
    if data.startswith(_JPEG_START) and not data.endswith(_JPEG_END):
        problem = _strict_pil_problem(data)
        return None if problem is None else f"truncated JPEG, {len(data)} bytes: {problem}"
    return None


def _undecoded_reason(data: bytes, backend: str) -> str:
    """Why the pipeline's decoder returned nothing: not an image at all, or one this backend cannot decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
    except Exception:  # noqa: BLE001  (PIL does not know the bytes either)
        return f"not an image file ({len(data)} bytes of unknown format)"
    return f"the {backend} decoder cannot decode this {kind} file"


def decode_image(data: bytes, flag: str = "color", backend: str = "cv2") -> np.ndarray:
    """Decode `data` as mmcv's loading step with this flag and backend would, refusing what it would let through
    (a truncated JPEG) or fail on with a traceback; raises `UndecodableImage` with the reason."""
    if not data:
        raise UndecodableImage("empty file, 0 bytes")
    problem = _truncation(data)
    if problem:
        raise UndecodableImage(problem)
    try:
        image = mmcv.imfrombytes(data, flag=flag, backend=backend)
    except Exception:  # noqa: BLE001  (every decoder raises its own kinds)
        image = None
    if image is None:
        raise UndecodableImage(_undecoded_reason(data, backend))
    return image


def unreadable_reason(path: str, flag: str = "color", backend: str = "cv2") -> str | None:
    """None if the file at `path` decodes under `decode_image`'s rule, else why not."""
    try:
        data = fileio.get(path)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    try:
        decode_image(data, flag, backend)
    except UndecodableImage as err:
        return str(err)
    return None


class UnreadableImageError(Exception):
    """An image of a dataset cannot be decoded during a run: `path`, `loader` (the dataloader key) and `reason`.

    Raised in a dataloader worker it reaches the main process rebuilt by torch from the whole worker traceback;
    the constructor keeps the original message (its last line).
    """

    def __init__(self, text: str) -> None:
        if "Traceback" in text:  # torch's ExceptionWrapper.reraise: "Caught ... Original Traceback ...: <ours>"
            last = text.strip().splitlines()[-1]
            text = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(text)
        found = _MESSAGE.fullmatch(text)
        self.path, self.loader, self.reason = found.group("path", "loader", "reason") if found else (text, "", "")


def _append_line(path: str, line: str) -> None:
    """Append one line with a single O_APPEND write, so lines of several worker processes never interleave."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(handle, line.encode("utf-8"))
    finally:
        os.close(handle)


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's `LoadImageFromFile` with `decode_image`'s rule: an unreadable file raises `UnreadableImageError`
    (naming `loader`), or with `skip` is appended to `record` and skipped (None: mmengine's dataset draws
    another index). Every other argument and result is mmcv's."""

    def __init__(self, *args: Any, loader: str = "", skip: bool = False, record: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loader, self.skip, self.record = loader, skip, record

    def transform(self, results: dict) -> dict | None:
        filename = results["img_path"]
        try:
            if self.file_client_args is not None:
                data = fileio.FileClient.infer_client(self.file_client_args, filename).get(filename)
            else:
                data = fileio.get(filename, backend_args=self.backend_args)
            image = decode_image(data, self.color_type, self.imdecode_backend)
        except (OSError, UndecodableImage) as err:
            reason = str(err) if isinstance(err, UndecodableImage) else f"cannot be read: {err.strerror or err}"
            if self.skip and self.record:
                _append_line(self.record, f"{filename}\t{self.loader}\t{reason}\n")
            if self.skip or self.ignore_empty:
                return None
            raise UnreadableImageError(f"image {filename} ({self.loader}) cannot be decoded ({reason})") from None
        if self.to_float32:
            image = image.astype(np.float32)
        results["img"] = image
        results["img_shape"] = results["ori_shape"] = image.shape[:2]
        return results


def read_record(path: str, offset: int = 0) -> tuple[dict[str, str], int]:
    """({path: reason} of the skipped images appended to `path` after byte `offset`, the new offset)."""
    if not osp.isfile(path):
        return {}, offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
    found = {}
    for line in complete.decode("utf-8", "replace").splitlines():
        image, _, rest = line.partition("\t")
        found[image] = rest.partition("\t")[2]
    return found, offset + len(complete)


@HOOKS.register_module()
class UnreadableImagesHook(Hook):
    """Count the training images `CheckedLoadImageFromFile` skipped (from `record`, past byte `offset`: what this
    run appended), log each once, keep the list in every checkpoint's meta, and name them all at the end."""

    priority = "VERY_LOW"

    def __init__(self, record: str, offset: int = 0) -> None:
        self.record, self.offset = record, offset
        self.skipped: dict[str, str] = {}

    def _refresh(self, runner: Any) -> None:
        found, self.offset = read_record(self.record, self.offset)
        for path, reason in found.items():
            if path not in self.skipped:
                runner.logger.warning(f"skipped unreadable training image {path} ({reason})")
                self.skipped[path] = reason

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        for path in (checkpoint.get("meta") or {}).get(UNREADABLE_IMAGES_KEY) or []:
            self.skipped.setdefault(path, "skipped before the resume")

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if osp.isfile(self.record) and os.path.getsize(self.record) > self.offset:
            self._refresh(runner)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._refresh(runner)
        checkpoint.setdefault("meta", {})[UNREADABLE_IMAGES_KEY] = sorted(self.skipped)

    def after_train(self, runner: Any) -> None:
        self._refresh(runner)
        if self.skipped:
            runner.logger.warning(
                f"skipped {len(self.skipped)} unreadable training image(s) (--skip-unreadable): "
                + ", ".join(sorted(self.skipped))
            )


def skipped_in_training(checkpoint: dict) -> list[str] | None:
    """The training images the run that wrote `checkpoint` skipped; None for a checkpoint of another tool."""
    skipped = (checkpoint.get("meta") or {}).get(UNREADABLE_IMAGES_KEY)
    return None if skipped is None else [str(path) for path in skipped]


# ------------------------------------------------------------------------------------ the configs' loaders


def record_path(work_dir: str) -> str:
    return osp.join(work_dir, UNREADABLE_IMAGES_FILE)


def use_checked_loading(cfg: Config, loader_keys: Sequence[str], skip_training: bool = False) -> None:
    """Swap every `LoadImageFromFile` of the loaders (and the TTA pipeline) for `CheckedLoadImageFromFile`.

    With `skip_training`, the training loader skips and records unreadable images; `tools/train.py` runs also get
    `UnreadableImagesHook`. A config dumped from the run names this module in `custom_imports`.
    """
    for key in loader_keys:
        parts = [cfg.get(key)] + ([cfg.get("tta_pipeline")] if key == "test_dataloader" else [])
        skip = skip_training and key == TRAIN_LOADER
        for step in _steps(parts, _LOADERS):
            step["type"] = "CheckedLoadImageFromFile"
            step.update(loader=key, skip=skip, record=record_path(cfg.work_dir) if skip else None)
    imports = dict(cfg.get("custom_imports") or {})
    names = list(imports.get("imports") or [])
    imports["imports"] = names + [__name__] * (__name__ not in names)
    cfg.custom_imports = imports
    if TRAIN_LOADER in loader_keys:
        record = record_path(cfg.work_dir)
        offset = os.path.getsize(record) if osp.isfile(record) else 0  # lines before it are earlier runs'
        hooks = [
            h
            for h in cfg.get("custom_hooks") or []
            if not (isinstance(h, dict) and h.get("type") == "UnreadableImagesHook")
        ]
        cfg.custom_hooks = hooks + [dict(type="UnreadableImagesHook", record=record, offset=offset)]


@contextlib.contextmanager
def stop_on_unreadable(fix: Callable[[str], str]) -> Iterator[None]:
    """Turn an `UnreadableImageError` of the run into a `UserInputError` (one `error:` line, exit code 2);
    `fix(loader)` says what to do."""
    try:
        yield
    except UnreadableImageError as err:
        raise UserInputError(f"{err}: {fix(err.loader)}") from None


def fix_for_training(loader: str) -> str:
    """What to do when tools/train.py meets an unreadable image of `loader`."""
    fix = (
        "replace the file (tools/train.py --check-images lists every unreadable image before a run), then run the "
        "same command with --resume to continue from the last checkpoint"
    )
    if loader == TRAIN_LOADER:
        return fix + ", or pass --skip-unreadable to skip unreadable training images and count them"
    return fix + " (evaluation images are never skipped: the metric would be over other images)"


def fix_for_testing(loader: str) -> str:
    """What to do when tools/test.py meets an unreadable image."""
    return "replace the file and test again (tools/test.py --check-images lists every unreadable image first)"


# ---------------------------------------------------------------------------------- the check before a run


def add_arguments(parser: argparse.ArgumentParser, training: bool) -> None:
    """--check-images (tools/train.py and tools/test.py) and --skip-unreadable (tools/train.py)."""
    parser.add_argument(
        "--check-images",
        action="store_true",
        help="before the run, decode every image (and label map) it reads, in parallel over the cores, and stop "
        "(exit 2) listing every unreadable or truncated file",
    )
    if training:
        parser.add_argument(
            "--skip-unreadable",
            action="store_true",
            help="skip a training image that cannot be decoded instead of stopping; skipped files are logged, "
            "named at the end, kept in the checkpoints and in tools/test.py's metrics file (evaluation images "
            "are never skipped)",
        )


def _steps(node: Any, names: Sequence[str]) -> Iterator[dict]:
    """Every pipeline step whose type (a name, maybe scope-prefixed, or a class) is one of `names`, anywhere below
    `node`: dataset pipelines, wrappers' datasets, TestTimeAug's transform lists."""
    if isinstance(node, dict):
        kind = node.get("type")
        name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else getattr(kind, "__name__", None)
        if name in names:
            yield node
        for value in node.values():
            yield from _steps(value, names)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _steps(value, names)


def _decode_rules(loader: dict) -> dict[str, tuple[str, str]]:
    """(flag, backend) by kind of file, as the loader's pipeline decodes them: images as its loading step,
    label maps as mmseg's LoadAnnotations (flag 'unchanged', default backend pillow)."""
    image = next(_steps(loader, _LOADERS), None) or {}
    labels = next(_steps(loader, ("LoadAnnotations",)), None) or {}
    return {
        "image": (image.get("color_type", "color"), image.get("imdecode_backend", "cv2")),
        "label map": ("unchanged", labels.get("imdecode_backend", "pillow")),
    }


def files_read(cfg: Config, loader_key: str) -> list[tuple[str, str]]:
    """(path, 'image' | 'label map') of every file the loader's dataset reads, as the dataset class lists them
    (mmdet's CocoDataset after its filters, mmseg's BaseSegDataset from its folders or split file)."""
    from mmengine.registry import DATASETS, init_default_scope

    dataset = copy.deepcopy(cfg.get(loader_key)["dataset"])
    for leaf in [dataset, *datasets_of({"dataset": dataset})]:
        if "pipeline" in leaf:
            leaf["pipeline"] = []
    init_default_scope(cfg.get("default_scope") or "mmdet")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' progress lines
        built = DATASETS.build(dataset)
    files: dict[str, str] = {}
    for index in range(len(built)):
        info = built.get_data_info(index)
        files.setdefault(info["img_path"], "image")
        if info.get("seg_map_path"):
            files.setdefault(info["seg_map_path"], "label map")
    return list(files.items())


class DatasetFile(NamedTuple):
    """A file a run reads: its path, 'image' or 'label map', the dataloader that reads it, and how it is decoded."""

    path: str
    kind: str
    loader: str
    flag: str
    backend: str


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def find_unreadable(files: Sequence[DatasetFile], workers: int | None = None) -> list[tuple[DatasetFile, str]]:
    """(file, reason) of every unreadable file among `files`, in their order.

    Threads: reading and decoding release the GIL (cv2, PIL), so the pool keeps every core busy.
    """
    with ThreadPoolExecutor(max_workers=workers or _cores()) as pool:
        reasons = pool.map(lambda f: unreadable_reason(f.path, f.flag, f.backend), files, chunksize=32)
        return [(file, reason) for file, reason in zip(files, reasons) if reason]


def check_images(
    cfg: Config, loader_keys: Sequence[str], skip_training: bool = False, say: Callable[[str], None] = print
) -> None:
    """`--check-images`: decode every image and label map the loaders read; raise one `UserInputError` naming
    them all if any is unreadable (more than a few: one stderr line each before it). With `skip_training`,
    unreadable training images are only noted (the run skips them)."""
    files = []
    for key in loader_keys:
        rules = _decode_rules(cfg.get(key))
        files += [DatasetFile(path, kind, key, *rules[kind]) for path, kind in files_read(cfg, key)]
    start, workers = time.perf_counter(), _cores()
    bad = find_unreadable(files, workers)
    say(
        f"note: --check-images: {len(files)} files of {', '.join(loader_keys)} decoded in "
        f"{time.perf_counter() - start:.1f} s on {workers} threads, {len(bad)} unreadable"
    )

    def skippable(file: DatasetFile) -> bool:
        return file.kind == "image" and file.loader == TRAIN_LOADER

    for file, reason in bad:
        if skip_training and skippable(file):
            say(f"note: unreadable training image {file.path} ({reason}) will be skipped (--skip-unreadable)")
    stopping = [(file, reason) for file, reason in bad if not (skip_training and skippable(file))]
    if not stopping:
        return
    named = [f"{file.path} ({file.kind}, {file.loader}: {reason})" for file, reason in stopping]
    if len(stopping) > 3:
        for line in named:
            print(f"unreadable: {line}", file=sys.stderr, flush=True)
    advice = (
        ", or pass --skip-unreadable to skip unreadable training images"
        if any(skippable(file) for file, _ in stopping)
        else ""
    )
    listed = first_few(named) + " (all listed above)" if len(stopping) > 3 else ", ".join(named)
    them = "it" if len(stopping) == 1 else "them"
    raise UserInputError(
        f"{len(stopping)} of the {len(files)} files the run reads cannot be decoded: {listed}: replace {them} "
        f"(copy or download {them} again){advice}"
    )
