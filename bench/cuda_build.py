"""Build-side helpers for mmcv's CUDA ops with a CUDA toolkit from the package index (FORCE_CUDA=1 make setup).

    python -m bench.cuda_build plan                 # shell assignments: archs, toolkit requirement, wheel id
    python -m bench.cuda_build toolkit ROOT         # check a `pip install --target ROOT` toolkit, print CUDA_HOME
    python -m bench.cuda_build toolkit --system     # check the system toolkit (CUDA_HOME or nvcc on PATH)
    python -m bench.cuda_build patch SRC_DIR        # apply the named patches to an unpacked mmcv sdist

tools/setup_env.sh calls these; the facts they encode (which packages, which patches, why) are in README.md
("Installing on a GPU machine"). Anything a user can get wrong (no GPU and no TORCH_CUDA_ARCH_LIST, a CPU-only
or wrong torch, an unknown arch, a toolkit of another CUDA version) ends in one `error:` line, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

# The extras of NVIDIA's `cuda-toolkit` meta-package that compiling mmcv's ops against torch's headers needs:
# nvcc (+ crt, nvvm, cudart), cccl (thrust/cub/libcu++), and the libraries whose headers
# ATen/cuda/CUDAContextLight.h includes (cublas_v2.h, cublasLt.h, cusparse.h, cusolverDn.h).
TOOLKIT_EXTRAS = ("cccl", "cublas", "cudart", "cusolver", "cusparse", "nvcc")
# Oldest GPU architecture each CUDA major version still compiles for (CUDA 13 dropped Maxwell to Volta).
MIN_ARCH = {11: (3, 5), 12: (5, 0), 13: (7, 5)}
ARCH_RE = re.compile(r"^(\d+)\.(\d+)(a|f)?(\+PTX)?$")
ARCH_HINT = 'e.g. TORCH_CUDA_ARCH_LIST="9.0" (H100/H200), "8.0" (A100), "8.0;8.6;8.9;9.0" (several)'


class UserError(Exception):
    """Something the user can fix; shown as one `error:` line with exit code 2."""


def fail(message: str) -> NoReturn:
    """Print one `error:` line on stderr and exit with code 2."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
    raise SystemExit(2)


# ----------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class TorchFacts:
    """What the build needs to know about the torch it compiles against."""

    version: str  # torch.__version__, e.g. '2.14.1+cu130'
    cuda: str | None  # torch.version.cuda, e.g. '13.0'; None for a CPU-only torch
    capabilities: tuple[tuple[int, int], ...]  # compute capability of every visible GPU
    requires: tuple[str, ...]  # torch's Requires-Dist lines


def torch_facts() -> TorchFacts:
    """Read the facts from the torch installed in this interpreter (no GPU needed)."""
    from importlib.metadata import requires

    import torch

    count = torch.cuda.device_count() if torch.version.cuda else 0
    caps = tuple(tuple(torch.cuda.get_device_capability(i)) for i in range(count))
    return TorchFacts(torch.__version__, torch.version.cuda, caps, tuple(requires("torch") or ()))  # type: ignore[arg-type]


def parse_arch_list(text: str, cuda_major: int) -> list[str]:
    """Split and check a TORCH_CUDA_ARCH_LIST value ('9.0', '8.0;9.0+PTX', '8.6 9.0')."""
    arches = [a for a in re.split(r"[;\s,]+", text.strip()) if a]
    if not arches:
        raise UserError(f"TORCH_CUDA_ARCH_LIST={text!r} names no architecture: {ARCH_HINT}")
    oldest = MIN_ARCH.get(cuda_major, (0, 0))
    for arch in arches:
        match = ARCH_RE.match(arch)
        if not match:
            raise UserError(
                f"TORCH_CUDA_ARCH_LIST: {arch!r} is not a compute capability (numbers only, "
                f"optionally +PTX): {ARCH_HINT}"
            )
        if (int(match[1]), int(match[2])) < oldest:
            raise UserError(
                f"TORCH_CUDA_ARCH_LIST: {arch} is older than CUDA {cuda_major} supports "
                f"(oldest {oldest[0]}.{oldest[1]}): drop it, or use a torch built for an older CUDA"
            )
    return list(dict.fromkeys(arches))


def resolve_arch_list(
    env_value: str | None, capabilities: Sequence[tuple[int, int]], cuda_major: int
) -> tuple[list[str], str]:
    """The architectures to build for and where they came from: TORCH_CUDA_ARCH_LIST, else the visible GPUs."""
    if env_value and env_value.strip() not in ("", "native"):
        return parse_arch_list(env_value, cuda_major), "TORCH_CUDA_ARCH_LIST"
    if not capabilities:
        raise UserError(
            "no GPU is visible and TORCH_CUDA_ARCH_LIST is not set: name the GPUs the ops will run on, "
            f"{ARCH_HINT}, then rerun FORCE_CUDA=1 make setup"
        )
    arches = sorted({f"{major}.{minor}" for major, minor in capabilities}, key=lambda a: tuple(map(int, a.split("."))))
    return parse_arch_list(";".join(arches), cuda_major), "visible GPUs"


def arch_tag(arches: Sequence[str]) -> str:
    """'9.0' -> 'sm90'; ['8.0', '9.0+PTX'] -> 'sm80_sm90ptx' (goes into the wheel's folder and build tag)."""
    tags = []
    for arch in arches:
        match = ARCH_RE.match(arch)
        assert match, arch
        tags.append(f"sm{match[1]}{match[2]}{match[3] or ''}" + ("ptx" if match[4] else ""))
    return "_".join(tags)


def build_tag(cuda: str, arches: Sequence[str]) -> str:
    """The wheel build tag that names CUDA and archs: ('13.0', ['9.0']) -> '1cu130_sm90' (PEP 427: a digit first)."""
    major, minor = cuda.split(".")[:2]
    return f"1cu{major}{minor}_{arch_tag(arches)}"


def toolkit_requirement(requires: Sequence[str], torch_cuda: str) -> tuple[str, str]:
    """(version, pip requirement) of the cuda-toolkit release torch itself pins, with the build extras."""
    for line in requires:
        match = re.match(r"^\s*cuda-toolkit\s*(\[[^\]]*\])?\s*==\s*([0-9][0-9.]*)", line)
        if match:
            version = match[2]
            if not version.startswith(torch_cuda + ".") and version != torch_cuda:
                raise UserError(
                    f"torch pins cuda-toolkit=={version} but reports CUDA {torch_cuda}: reinstall torch "
                    "(rm -rf .venv; make setup)"
                )
            return version, f"cuda-toolkit[{','.join(TOOLKIT_EXTRAS)}]=={version}"
    raise UserError(
        f"this torch (CUDA {torch_cuda}) does not pin NVIDIA's cuda-toolkit packages, so the matching "
        "nvcc cannot be taken from the package index: use a toolkit of that CUDA version with "
        "CUDA_TOOLKIT=system CUDA_HOME=/path/to/cuda FORCE_CUDA=1 make setup"
    )


def plan(facts: TorchFacts, env_arch_list: str | None, expect_torch: str, mmcv_version: str) -> dict[str, str]:
    """Everything setup_env.sh needs for a CUDA build, checked; raises UserError on a user-fixable problem."""
    if facts.version.split("+")[0] != expect_torch:
        raise UserError(
            f"the venv has torch {facts.version}, this project pins {expect_torch}: rebuild it "
            "(rm -rf .venv; make setup)"
        )
    if not facts.cuda:
        raise UserError(
            f"FORCE_CUDA=1 needs a CUDA build of torch, the venv has torch {facts.version} (CPU only): "
            "install torch from an index with CUDA wheels, or build the CPU ops (make setup)"
        )
    major, minor = (int(x) for x in facts.cuda.split(".")[:2])
    arches, source = resolve_arch_list(env_arch_list, facts.capabilities, major)
    cuda_tag = f"cu{major}{minor}"
    tag = arch_tag(arches)
    version, requirement = toolkit_requirement(facts.requires, facts.cuda)
    return {
        "TORCH_CUDA": facts.cuda,
        "CUDA_TAG": cuda_tag,
        "ARCH_LIST": ";".join(arches),
        "ARCH_SOURCE": source,
        "ARCH_TAG": tag,
        "TOOLKIT_VERSION": version,
        "TOOLKIT_REQUIREMENT": requirement,
        "WHEEL_ID": f"mmcv-{mmcv_version}-torch-{expect_torch}-{cuda_tag}-{tag}",
        "BUILD_TAG": build_tag(facts.cuda, arches),
    }


def default_jobs(cpus: int, mem_available_gib: float, gib_per_job: float = 4.0) -> int:
    """Parallel nvcc jobs: one per core, but no more than the memory allows (the largest mmcv files need ~3 GiB)."""
    return max(1, min(cpus, int(mem_available_gib // gib_per_job)))


def mem_available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


# ------------------------------------------------------------------------------------------- toolkit


def nvcc_release(nvcc: Path) -> str:
    """'13.0' from `nvcc --version`."""
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise UserError(f"{nvcc} does not run ({err}): reinstall the toolkit") from None
    match = re.search(r"release (\d+\.\d+)", out)
    if not match:
        raise UserError(f"{nvcc} --version does not say its release: use a CUDA toolkit from NVIDIA")
    return match[1]


def finish_pip_toolkit(root: Path, torch_cuda: str) -> Path:
    """The CUDA_HOME inside a `pip install --target ROOT cuda-toolkit[...]` folder, made usable for torch's build.

    NVIDIA's wheels put everything under nvidia/cu<major>/ (bin/nvcc, include/, lib/, nvvm/). Two links are
    added there, in this build-only folder: lib64 -> lib (nvcc.profile links from lib64) and
    libcudart.so -> libcudart.so.<major> (torch links the extension with -lcudart; the wheel ships only the
    versioned library, which is also the name the built extension records and finds in torch's own env).
    """
    major = torch_cuda.split(".")[0]
    home = root / "nvidia" / f"cu{major}"
    nvcc = home / "bin" / "nvcc"
    if not nvcc.is_file():
        raise UserError(f"{nvcc} is missing: the toolkit install in {root} is incomplete; delete the folder and rerun")
    release = nvcc_release(nvcc)
    if release != torch_cuda:
        raise UserError(f"{nvcc} is CUDA {release}, torch is built with CUDA {torch_cuda}: delete {root} and rerun")
    lib64 = home / "lib64"
    if not lib64.exists():
        lib64.symlink_to("lib")
    cudart = home / "lib" / "libcudart.so"
    if not cudart.exists():
        versioned = home / "lib" / f"libcudart.so.{major}"
        if not versioned.is_file():
            raise UserError(f"{versioned} is missing: the cudart package did not install; delete {root} and rerun")
        cudart.symlink_to(versioned.name)
    return home


def system_toolkit(torch_cuda: str, env: dict[str, str] | None = None) -> Path:
    """CUDA_HOME of the system toolkit the user asked for (CUDA_HOME/CUDA_PATH, else nvcc on PATH), checked."""
    env = dict(os.environ if env is None else env)
    home_text = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if not home_text:
        nvcc_on_path = shutil.which("nvcc", path=env.get("PATH"))
        if not nvcc_on_path:
            raise UserError(
                "CUDA_TOOLKIT=system but neither CUDA_HOME is set nor nvcc on PATH: set CUDA_HOME to a "
                f"CUDA {torch_cuda} toolkit, or drop CUDA_TOOLKIT=system to take nvcc from the index"
            )
        home_text = str(Path(nvcc_on_path).resolve().parent.parent)
    home = Path(home_text)
    nvcc = home / "bin" / "nvcc"
    if not nvcc.is_file():
        raise UserError(f"CUDA_TOOLKIT=system: {nvcc} does not exist: set CUDA_HOME to a CUDA {torch_cuda} toolkit")
    release = nvcc_release(nvcc)
    if release.split(".")[0] != torch_cuda.split(".")[0]:
        raise UserError(
            f"CUDA_TOOLKIT=system: {nvcc} is CUDA {release}, torch is built with CUDA {torch_cuda}: "
            f"point CUDA_HOME at a CUDA {torch_cuda} toolkit"
        )
    return home


# ------------------------------------------------------------------------------------------- patches


@dataclass(frozen=True)
class Patch:
    """One small, named change to mmcv 2.1.0's sdist: replace `old` (found exactly once) by `new` in `path`."""

    name: str
    path: str
    old: str
    new: str
    why: str


PATCHES: tuple[Patch, ...] = (
    Patch(
        name="nvcc-cxx20",
        path="setup.py",
        old="                extra_compile_args['nvcc'] += ['-std=c++17']",
        new="                extra_compile_args['nvcc'] += ['-std=c++20']",
        why="torch 2.14's ATen.h stops with '#error C++20 or later compatible compiler is required'; mmcv passes "
        "nvcc -std=c++17 (torch adds its own c++20 only when no -std is given). The .cpp files get C++20 "
        "from the g++ wrapper, as in the CPU build.",
    ),
)


def apply_patches(src: Path, patches: Sequence[Patch] = PATCHES) -> list[str]:
    """Apply every patch to the unpacked sdist at `src` (idempotent); returns one line per patch."""
    report = []
    for patch in patches:
        target = src / patch.path
        if not target.is_file():
            raise UserError(f"patch {patch.name}: {target} does not exist: {src} is not an unpacked mmcv 2.1.0 sdist")
        text = target.read_text()
        if text.count(patch.old) == 1:
            target.write_text(text.replace(patch.old, patch.new))
            report.append(f"applied {patch.name} ({patch.path})")
        elif patch.old not in text and patch.new in text:
            report.append(f"already applied {patch.name} ({patch.path})")
        else:
            raise UserError(
                f"patch {patch.name}: the text to replace occurs {text.count(patch.old)} times in "
                f"{target}, expected once: this is not the mmcv 2.1.0 sdist the patch was written for"
            )
    return report


# ----------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cuda_build", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="print shell assignments for the CUDA build (archs, toolkit, wheel id)")
    p.add_argument("--torch-version", default="2.14.1", help="the torch release the project pins")
    p.add_argument("--mmcv-version", default="2.1.0")
    t = sub.add_parser("toolkit", help="check a toolkit and print its CUDA_HOME")
    t.add_argument("root", nargs="?", help="the `pip install --target` folder of the cuda-toolkit packages")
    t.add_argument("--system", action="store_true", help="use the system toolkit (CUDA_HOME, else nvcc on PATH)")
    t.add_argument("--cuda", required=True, help="torch's CUDA version, e.g. 13.0")
    a = sub.add_parser("patch", help="apply the named patches to an unpacked mmcv sdist")
    a.add_argument("src", help="the unpacked sdist folder (holds setup.py)")
    sub.add_parser("patches", help="list the patches with their reasons")
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            values = plan(torch_facts(), os.environ.get("TORCH_CUDA_ARCH_LIST"), args.torch_version, args.mmcv_version)
            values["DEFAULT_JOBS"] = str(default_jobs(os.cpu_count() or 1, mem_available_gib()))
            for key, value in values.items():
                print(f"{key}={shlex.quote(value)}")
        elif args.command == "toolkit":
            if args.system == bool(args.root):
                raise UserError("toolkit: give either the toolkit folder or --system")
            home = system_toolkit(args.cuda) if args.system else finish_pip_toolkit(Path(args.root), args.cuda)
            print(home)
        elif args.command == "patch":
            for line in apply_patches(Path(args.src)):
                print(line)
        else:
            for patch in PATCHES:
                print(f"{patch.name} ({patch.path}): {patch.why}")
    except UserError as err:
        fail(str(err))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
