"""Shared, generated test data: made once per test session, read-only for the tests that use it.

Tests that change a data set copy it first (`shutil.copytree`). Helper modules (`pretrain_fixtures`,
`det_fixtures`, `fault_callbacks`) sit next to this file and are imported by their plain names.
Markers (pyproject.toml): `slow` (more than about 10 s on 2 cores), `subprocess` (starts processes),
`manual` (not in make test) and `gpu` (skipped without a CUDA GPU, unless ETDET_GPU_TESTS=cpu asks for the
tiny CPU run); `make test-fast` runs the rest. A config sweep (a test parametrized over every
config file of `CONFIG_SWEEPS`) keeps its first case in `make test-fast`; its other cases are marked slow
here, so `make test` still checks every config.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gpu_report import GPU_TESTS_ENV
from det_fixtures import TINY_DEMO_DATA, write_coco_instances
from pretrain_fixtures import make_image_folder

REPO = Path(__file__).resolve().parents[1]
CONFIG_SWEEPS = {"test_det_configs.py", "test_det_recipes.py", "test_seg_configs.py"}
TINY_RETINANET = REPO / "det_configs" / "tiny" / "retinanet_convnext-atto_fpn_tiny-demo_baseline.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every case of a config sweep but its first as slow (make test-fast checks one config per test);
    skip the gpu-marked tests without a GPU."""
    _skip_gpu_tests_without_a_gpu(items)
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.path.name not in CONFIG_SWEEPS or getattr(item, "callspec", None) is None:
            continue
        key = (item.path.name, getattr(item, "originalname", item.name))
        if key in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(key)


def _skip_gpu_tests_without_a_gpu(items: list[pytest.Item]) -> None:
    """A gpu test without CUDA is a skip with its reason (not a pass), unless ETDET_GPU_TESTS=cpu (the dry run)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items or os.environ.get(GPU_TESTS_ENV) == "cpu":
        return
    import torch

    if torch.cuda.is_available():
        return
    reason = (
        f"needs a CUDA GPU (torch.cuda.is_available() is False); {GPU_TESTS_ENV}=cpu runs it on the CPU at tiny "
        "sizes, as bash tools/gpu_check.sh --dry-run does"
    )
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=reason))


KEEP_TMP_ENV = "ETDET_KEEP_TMP"


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for one test module's shared runs, removed when the module ends (ETDET_KEEP_TMP=1 keeps it).

    The trained detectors' and backbones' checkpoints fill gigabytes when every module's folder stays to the
    session's end (a CI disk ran out so). A passing test's own folder goes at its end (tmp_path_retention_policy).
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield path
    if not os.environ.get(KEEP_TMP_ENV):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageNet-style train/ and val/ folders: 3 classes x 8 images of 40 px (pretraining tests)."""
    return make_image_folder(tmp_path_factory.mktemp("image_folder"))


@pytest.fixture(scope="session")
def demo_classes() -> list[str]:
    """The class names of the tiny detection configs (the demo generator's classes)."""
    from mmengine.config import Config

    return list(Config.fromfile(str(TINY_RETINANET)).classes)


@pytest.fixture(scope="session")
def coco_tiny(tmp_path_factory: pytest.TempPathFactory, demo_classes: list[str]) -> Path:
    """COCO instances with the tiny configs' classes: 6 train and 2 val images."""
    return write_coco_instances(tmp_path_factory.mktemp("coco_tiny"), demo_classes, train_images=6, val_images=2)


@pytest.fixture(scope="session")
def coco_small_objects(tmp_path_factory: pytest.TempPathFactory, demo_classes: list[str]) -> Path:
    """8 train / 6 val images whose objects are about the size of RetinaNet's smallest anchors."""
    return write_coco_instances(
        tmp_path_factory.mktemp("coco_small"), demo_classes, train_images=8, val_images=6, object_scale=(0.08, 0.14)
    )


@pytest.fixture(scope="session")
def coco_large_objects(tmp_path_factory: pytest.TempPathFactory, demo_classes: list[str]) -> Path:
    """8 train / 6 val images of large objects: a barely trained detector already overlaps some of them."""
    return write_coco_instances(
        tmp_path_factory.mktemp("coco_large"), demo_classes, train_images=8, val_images=6, object_scale=(0.35, 0.48)
    )


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedded-demo data set (tools/make_demo_data.py's generator with test sizes)."""
    from embedded_demo.data import make_demo_data

    out = tmp_path_factory.mktemp("demo") / "demo"
    make_demo_data(out, seed=0, verbose=False, **TINY_DEMO_DATA)
    return out
