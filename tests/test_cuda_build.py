"""The CUDA build plan (FORCE_CUDA=1 make setup): arch lists, the toolkit pinned by torch, wheel names, patches.

Offline and without a GPU: torch's facts are given as values, the toolkit is a fake nvcc script.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cuda_build as cb

REPO = Path(__file__).resolve().parents[1]
TORCH_REQUIRES = (
    "filelock",
    "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3; "
    'platform_system == "Linux"',
    'nvidia-cudnn-cu13==9.24.0.43; platform_system == "Linux"',
)


def facts(version: str = "2.14.1+cu130", cuda: str | None = "13.0", caps=(), requires=TORCH_REQUIRES) -> cb.TorchFacts:
    return cb.TorchFacts(version, cuda, tuple(caps), tuple(requires))


def test_arch_list_from_env_gpus_or_error() -> None:
    assert cb.resolve_arch_list("9.0", (), 13) == (["9.0"], "TORCH_CUDA_ARCH_LIST")
    assert cb.resolve_arch_list("8.0; 9.0+PTX 9.0+PTX", (), 13)[0] == ["8.0", "9.0+PTX"]
    assert cb.resolve_arch_list(None, ((9, 0), (8, 0), (9, 0)), 13) == (["8.0", "9.0"], "visible GPUs")
    assert cb.resolve_arch_list("native", ((12, 0),), 13)[0] == ["12.0"]
    with pytest.raises(cb.UserError, match="no GPU is visible and TORCH_CUDA_ARCH_LIST is not set"):
        cb.resolve_arch_list(None, (), 13)
    with pytest.raises(cb.UserError, match="not a compute capability"):
        cb.resolve_arch_list("Hopper", (), 13)
    with pytest.raises(cb.UserError, match="older than CUDA 13 supports"):
        cb.resolve_arch_list("7.0", (), 13)
    assert cb.parse_arch_list("7.0", 12) == ["7.0"]  # CUDA 12 still builds Volta


def test_wheel_names_say_cuda_and_archs() -> None:
    assert cb.arch_tag(["9.0"]) == "sm90"
    assert cb.arch_tag(["8.0", "9.0a", "12.0+PTX"]) == "sm80_sm90a_sm120ptx"
    plan = cb.plan(facts(), "9.0", "2.14.1", "2.1.0")
    assert plan["WHEEL_ID"] == "mmcv-2.1.0-torch-2.14.1-cu130-sm90"
    assert plan["BUILD_TAG"] == "1cu130_sm90" and plan["BUILD_TAG"][0].isdigit()  # PEP 427 build tag
    assert plan["TOOLKIT_REQUIREMENT"] == "cuda-toolkit[cccl,cublas,cudart,cusolver,cusparse,nvcc]==13.0.3"
    assert plan["ARCH_LIST"] == "9.0" and plan["TORCH_CUDA"] == "13.0"


def test_toolkit_is_the_release_torch_pins() -> None:
    assert cb.toolkit_requirement(["cuda-toolkit==13.0.2"], "13.0")[0] == "13.0.2"
    with pytest.raises(cb.UserError, match="does not pin NVIDIA's cuda-toolkit"):
        cb.toolkit_requirement(["nvidia-cuda-runtime-cu12==12.4.127"], "12.4")
    with pytest.raises(cb.UserError, match="reports CUDA 12.8"):
        cb.toolkit_requirement(["cuda-toolkit==13.0.3"], "12.8")


def test_plan_refuses_cpu_or_other_torch() -> None:
    with pytest.raises(cb.UserError, match="needs a CUDA build of torch"):
        cb.plan(facts("2.14.1+cpu", None), "9.0", "2.14.1", "2.1.0")
    with pytest.raises(cb.UserError, match="this project pins 2.14.1"):
        cb.plan(facts("2.13.0+cu130"), "9.0", "2.14.1", "2.1.0")


def test_default_jobs_fit_memory() -> None:
    assert cb.default_jobs(2, 20.0) == 2
    assert cb.default_jobs(16, 10.0) == 2
    assert cb.default_jobs(8, 1.0) == 1


def _fake_toolkit(root: Path, release: str) -> Path:
    home = root / "nvidia" / "cu13"
    (home / "bin").mkdir(parents=True)
    (home / "lib").mkdir()
    (home / "lib" / "libcudart.so.13").write_bytes(b"")
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.88'\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return home


def test_pip_toolkit_becomes_cuda_home(tmp_path: Path) -> None:
    home = _fake_toolkit(tmp_path / "tk", "13.0")
    assert cb.finish_pip_toolkit(tmp_path / "tk", "13.0") == home
    assert (home / "lib64").resolve() == (home / "lib").resolve()
    assert os.readlink(home / "lib" / "libcudart.so") == "libcudart.so.13"
    assert cb.finish_pip_toolkit(tmp_path / "tk", "13.0") == home  # idempotent
    _fake_toolkit(tmp_path / "old", "12.8")
    with pytest.raises(cb.UserError, match="is CUDA 12.8, torch is built with CUDA 13.0"):
        cb.finish_pip_toolkit(tmp_path / "old", "13.0")
    with pytest.raises(cb.UserError, match="is missing"):
        cb.finish_pip_toolkit(tmp_path / "none", "13.0")


def test_system_toolkit_only_when_found(tmp_path: Path) -> None:
    home = _fake_toolkit(tmp_path / "sys", "13.0")
    assert cb.system_toolkit("13.0", {"CUDA_HOME": str(home), "PATH": ""}) == home
    with pytest.raises(cb.UserError, match="neither CUDA_HOME is set nor nvcc on PATH"):
        cb.system_toolkit("13.0", {"PATH": str(tmp_path)})


def test_patches_are_named_applied_once_and_checked(tmp_path: Path) -> None:
    patch = cb.Patch("demo", "setup.py", "std=c++17", "std=c++20", "why")
    (tmp_path / "setup.py").write_text("args = ['-std=c++17']\n")
    assert cb.apply_patches(tmp_path, [patch]) == ["applied demo (setup.py)"]
    assert "c++20" in (tmp_path / "setup.py").read_text()
    assert cb.apply_patches(tmp_path, [patch]) == ["already applied demo (setup.py)"]
    (tmp_path / "setup.py").write_text("nothing to patch\n")
    with pytest.raises(cb.UserError, match="occurs 0 times"):
        cb.apply_patches(tmp_path, [patch])
    for p in cb.PATCHES:  # every real patch is small and explained
        assert p.name and p.why and p.old != p.new and len(p.old.splitlines()) <= 5


def test_plan_command_without_gpu_is_one_error_line() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TORCH_CUDA_ARCH_LIST", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cuda_build", "plan"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    import torch

    if not torch.version.cuda:
        assert proc.returncode == 2 and "needs a CUDA build of torch" in proc.stderr
    else:
        assert proc.returncode == 2, proc.stdout
        assert "no GPU is visible and TORCH_CUDA_ARCH_LIST is not set" in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr


def test_setup_refuses_unknown_toolkit_choice(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FORCE_CUDA": "1",
        "CUDA_TOOLKIT": "conda",
        "ETDET_CACHE": str(tmp_path / "cache"),
        "VENV": str(tmp_path / "venv"),
    }
    proc = subprocess.run(["bash", "tools/setup_env.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: CUDA_TOOLKIT=conda is not known"), proc.stderr
    assert not (tmp_path / "venv").exists()
