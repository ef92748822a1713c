"""The lent machine's wheel set (bench/gpu_wheels.py), offline: pins, pip's resolver over stub wheels, what
travels, which wheels a tier installs, and a wheel cut into parts and joined again."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from bench import gpu_wheels as gw
from etcore.errors import UserInputError


def _the_set(folder: Path, extra_requires: dict[str, tuple[str, ...]] | None = None) -> Path:
    """Every wanted (name, version) as a stub wheel; mmdet needs numpy (the image's) and shapely (ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    requires = {"mmdet": ("numpy", "shapely"), "mmcv-lite": ("opencv-python>=3",), **(extra_requires or {})}
    for name, version in gw.wanted().items():
        gw.stub_wheel(folder, name, version, requires.get(name, ()))
    return folder


def test_the_set_takes_the_locks_pins_and_keeps_the_images_packages_out() -> None:
    want = gw.wanted()
    assert want["timm"] == gw.lock_pins()["timm"] == "1.0.31"
    assert want["mmdet"] == "3.3.0" and want["mmcv-lite"] == "2.1.0" and want["pillow"] == gw.lock_pins()["pillow"]
    assert not (set(want) & set(gw.IMAGE_PACKAGES)) - set(gw.OVERRIDES)
    assert gw.canonical("importlib_metadata") == "importlib-metadata" and gw.canonical("Pillow") == "pillow"


@pytest.mark.subprocess
def test_pips_resolver_accepts_the_set_and_names_what_the_image_gives(tmp_path: Path) -> None:
    summary = gw.check(_the_set(tmp_path / "whl"))
    assert {"numpy", "opencv-python"} <= set(summary["from_image"])  # the headless OpenCV stands in for opencv-python
    assert len(summary["wheels"]) == len(gw.wanted()) and set(summary["overrides"]) == {"timm", "pillow"}


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "problem, message",
    [
        ("missing dependency", "refuses the set"),
        ("unneeded wheel", "not needed by the set"),
        ("two versions", "two versions of termcolor"),
        ("image has it", "the lent image already has scipy"),
        ("missing wheel", "lacks"),
    ],
)
def test_pips_resolver_refuses_a_broken_set(tmp_path: Path, problem: str, message: str) -> None:
    folder = _the_set(tmp_path / "whl", {"yapf": ("not-in-the-set",)} if problem == "missing dependency" else None)
    if problem == "unneeded wheel":
        gw.stub_wheel(folder, "stray", "1.0")
    elif problem == "two versions":
        gw.stub_wheel(folder, "termcolor", "0.1")
    elif problem == "image has it":
        gw.stub_wheel(folder, "scipy", "1.0")
    elif problem == "missing wheel":
        next(folder.glob("shapely-*.whl")).unlink()
    with pytest.raises(UserInputError, match=message):
        gw.check(folder)


def test_travel_counts_the_tree_and_the_carried_folder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/.whl/\n/ignored/\n")
    (repo / "tracked.py").write_bytes(b"x" * 2**20)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big").write_bytes(b"x" * 2**21)
    (repo / ".whl" / "build").mkdir(parents=True)
    (repo / ".whl" / "a-1.0-py3-none-any.whl").write_bytes(b"x" * 2**20)
    (repo / ".whl" / "build" / "mmcv-2.1.0.tar.gz").write_bytes(b"x" * 2**19)
    sizes = gw.travel(repo / ".whl", root=repo)
    assert sizes["tree_mib"] == pytest.approx(1.0, abs=0.01)  # .gitignore + tracked.py, not ignored/
    assert sizes["tier1_wheels_mib"] == 1.0 and sizes["build_inputs_mib"] == 0.5 and sizes["mmcv_ops_mib"] == 0.0
    assert sizes["total_mib"] == pytest.approx(2.5, abs=0.01) and sizes["fits"]


def test_tier_two_installs_the_built_mmcv_instead_of_mmcv_lite(tmp_path: Path) -> None:
    lite = gw.stub_wheel(tmp_path, "mmcv-lite", "2.1.0")
    timm = gw.stub_wheel(tmp_path, "timm", "1.0.31")
    assert gw.install_list(tmp_path, 2) == [lite, timm]  # no built mmcv yet: Tier 2 would build it first
    (tmp_path / "mmcv-ops").mkdir()
    built = tmp_path / "mmcv-ops" / "mmcv-2.1.0-1cu130_sm90-cp312-cp312-linux_x86_64.whl"
    built.write_bytes(b"")
    assert gw.install_list(tmp_path, 1) == [lite, timm]
    assert gw.install_list(tmp_path, 2) == [timm, built]


def test_a_wheel_cut_into_parts_joins_back_checked(tmp_path: Path) -> None:
    from etcore.checkpoint_io import file_sha256

    wheel = tmp_path / "mmcv-2.1.0-1cu130_sm90-cp312-cp312-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mmcv/_ext.so", bytes(range(256)) * 20000)  # 5 MB, stored
    (tmp_path / "back").mkdir()
    parts = gw.split(wheel, tmp_path / "back", part_mib=2)
    assert [p.name[-6:] for p in parts] == [".part0", ".part1", ".part2"] and all(
        p.stat().st_size <= 2**21 for p in parts
    )
    joined = gw.join(list(reversed(parts)), tmp_path / "whl", file_sha256(wheel))
    assert joined == tmp_path / "whl" / "mmcv-ops" / wheel.name and joined.read_bytes() == wheel.read_bytes()
    with pytest.raises(UserInputError, match="one is missing"):
        gw.join(parts[1:], tmp_path / "whl", None)
    with pytest.raises(UserInputError, match="sha256 is not"):
        gw.join(parts, tmp_path / "whl", "0" * 64)
    assert [p.name for p in (tmp_path / "whl" / "mmcv-ops").iterdir()] == [wheel.name]  # the good one stays
