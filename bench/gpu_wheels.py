"""The wheels a lent GPU machine needs on top of its own image, and what travels there (tools/gpu_wheels.sh).

The device tool's machine (BENCHMARKS.md section 6) runs its image's Python 3.12 with torch 2.11,
torchvision 0.26 and timm, has no OpenMMLab package and no network. What the check needs beyond the image
travels as wheels in the ignored `.whl/` folder, inside the 64 MiB that one call may carry:

    .whl/*.whl            Tier 1: the exact set below, for CPython 3.12 on manylinux x86_64 (mmcv-lite: no ops)
    .whl/build/           Tier 2 build inputs: the mmcv sdist (sha256-checked) and a setuptools with pkg_resources
    .whl/mmcv-ops/        Tier 2: the mmcv wheel with CUDA ops built on a lent machine (`join` puts it there)

    python -m bench.gpu_wheels fill [--dir .whl]          # download what is missing, drop what is not wanted
    python -m bench.gpu_wheels check [--dir .whl]         # pip's resolver for CPython 3.12: the set + the image
    python -m bench.gpu_wheels install --target DIR [--tier 1|2] [--dir .whl]   # on the lent machine
    python -m bench.gpu_wheels join PART... [--dir .whl]  # reassemble a wheel brought back in parts
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from etcore.cli import ArgumentParser
from etcore.errors import UserInputError, run_cli

ROOT = Path(__file__).resolve().parents[1]
WHEEL_DIR = ".whl"
PYTHON = "3.12"
PLATFORMS = (  # the tags pip must be told to accept for a manylinux x86_64 machine (glibc 2.28 and older)
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
TRAVEL_LIMIT_MIB = 64.0  # the working tree and the carried paths of one device call, together
PART_LIMIT_MIB = 16.0  # one file back from the device machine

# The set, by name: versions pinned exactly in requirements.lock are read from there (one place).
FROM_LOCK = ("timm", "mmengine", "mmdet", "mmsegmentation", "pycocotools", "pillow")
PINNED = {
    "mmcv-lite": "2.1.0",  # mmcv without ops (mmdet 3.3.0 wants mmcv < 2.2.0); Tier 2 brings the ops
    "ftfy": "6.3.1",  # mmseg.utils imports it (its CLIP tokenizer) without declaring it
    "addict": "2.4.0",
    "yapf": "0.40.2",  # requirements.lock: yapf < 0.41
    "termcolor": "3.3.0",
    "shapely": "2.2.0",
    "terminaltables": "3.1.10",
    "prettytable": "3.19.0",
    "wcwidth": "0.9.5",
    "importlib-metadata": "8.7.0",  # yapf's, with platformdirs and tomli (10.x adds lazy-importer)
    "platformdirs": "4.14.9",
    "tomli": "2.5.0",
}
# Packages the image has that the set brings in another version, and why.
OVERRIDES = {
    "timm": "the project's locked version (the image's is not recorded)",
    "pillow": "Pillow 13 refuses posterize(bits=0), which timm's RandAugment asks for at magnitude >= 7.5",
}
# Tier 2 build inputs (.whl/build): the mmcv sdist and setuptools < 81 (mmcv's setup.py imports pkg_resources).
MMCV_VERSION = "2.1.0"
BUILD_SETUPTOOLS = "80.9.0"

# The lent image's Python packages (the device tool's KINDS.md, read 2026-11-17), with the versions that
# were seen there; the others are stood in for by a version above any bound (pip's check then trusts them).
IMAGE_VERSIONS = {
    "torch": "2.11.0",
    "torchvision": "0.26.0",
    "numpy": "2.5.2",
    "safetensors": "0.8.0",
    "huggingface-hub": "1.33.0",
    "triton": "3.6.0",
}
IMAGE_UNKNOWN_VERSION = "9999"
IMAGE_PACKAGES = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()
# A requirement the image meets under another distribution name (the same importable module).
IMAGE_PROVIDES = {"opencv-python": "opencv-python-headless"}


def canonical(name: str) -> str:
    """PEP 503 normalised project name ('Pillow' -> 'pillow', 'importlib_metadata' -> 'importlib-metadata')."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock: Path = ROOT / "requirements.lock") -> dict[str, str]:
    """name -> exact version of every `name==version` line of requirements.lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def wanted() -> dict[str, str]:
    """The Tier 1 set: canonical name -> exact version."""
    pins = lock_pins()
    missing = [name for name in FROM_LOCK if name not in pins]
    if missing:
        raise UserInputError(f"requirements.lock pins no exact version of {', '.join(missing)}: pin them there")
    return {**{name: pins[name] for name in FROM_LOCK}, **{canonical(k): v for k, v in PINNED.items()}}


@dataclass(frozen=True)
class Wheel:
    """A wheel file and the name and version its file name gives."""

    path: Path
    name: str
    version: str

    @classmethod
    def of(cls, path: Path) -> "Wheel":
        name, version = path.name.split("-")[:2]
        return cls(path, canonical(name), version)

    @property
    def mib(self) -> float:
        return self.path.stat().st_size / 2**20


def wheels_in(folder: Path) -> list[Wheel]:
    """The wheels directly in `folder` (not its subfolders), by name."""
    return sorted((Wheel.of(p) for p in folder.glob("*.whl")), key=lambda w: w.name)


def _pip(args: Sequence[str], log: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m pip ARGS` with this interpreter, quiet about its version; output captured."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    return proc


def _binary_target() -> list[str]:
    """pip's options for 'wheels only, for CPython 3.12 on manylinux x86_64'."""
    options = ["--only-binary", ":all:", "--python-version", PYTHON, "--implementation", "cp"]
    for tag in PLATFORMS:
        options += ["--platform", tag]
    return options


def _pip_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return " ".join((errors or lines or ["no output"])[-1].split())[:300]


# ----------------------------------------------------------------------------------------------- fill


def fill(folder: Path) -> list[str]:
    """Download every wanted wheel that `folder` lacks (pip download --no-deps), remove the unwanted ones."""
    folder.mkdir(parents=True, exist_ok=True)
    want = wanted()
    lines = []
    for wheel in wheels_in(folder):
        if want.get(wheel.name) != wheel.version:
            wheel.path.unlink()
            lines.append(f"removed {wheel.path.name} (not in the set)")
    have = {w.name for w in wheels_in(folder)}
    for name, version in want.items():
        if name in have:
            continue
        proc = _pip(["download", "--no-deps", *_binary_target(), "-d", str(folder), f"{name}=={version}"])
        if proc.returncode != 0:
            raise UserInputError(f"pip download {name}=={version} for CPython {PYTHON} failed: {_pip_error(proc)}")
        lines.append(f"downloaded {name}=={version}")
    lines += fill_build_inputs(folder / "build")
    return lines


def mmcv_sdist_sha256() -> str:
    """The mmcv sdist's sha256, read from tools/setup_env.sh (where the CPU and CUDA builds check it)."""
    match = re.search(r"^MMCV_SDIST_SHA256=([0-9a-f]{64})$", (ROOT / "tools" / "setup_env.sh").read_text(), re.M)
    if not match:
        raise RuntimeError("tools/setup_env.sh no longer sets MMCV_SDIST_SHA256")
    return match[1]


def fill_build_inputs(folder: Path) -> list[str]:
    """The Tier 2 build's inputs: mmcv's sdist (sha256-checked) and setuptools < 81 as a wheel."""
    from etcore.checkpoint_io import file_sha256

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    sdist = folder / f"mmcv-{MMCV_VERSION}.tar.gz"
    if not sdist.is_file():
        # pip's own download also reads the sdist's metadata; the project's setup does the same (torch present)
        proc = _pip(
            ["download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation", "-d", str(folder)]
            + [f"mmcv=={MMCV_VERSION}"]
        )
        if proc.returncode != 0 or not sdist.is_file():
            raise UserInputError(f"pip download of the mmcv {MMCV_VERSION} sdist failed: {_pip_error(proc)}")
        lines.append(f"downloaded {sdist.name}")
    if file_sha256(sdist) != mmcv_sdist_sha256():
        sdist.unlink()
        raise UserInputError(f"{sdist} is not the mmcv {MMCV_VERSION} sdist (sha256 differs): run fill again")
    if not list(folder.glob(f"setuptools-{BUILD_SETUPTOOLS}-*.whl")):
        proc = _pip(
            ["download", "--no-deps", "--only-binary", ":all:", "-d", str(folder)] + [f"setuptools=={BUILD_SETUPTOOLS}"]
        )
        if proc.returncode != 0:
            raise UserInputError(f"pip download setuptools=={BUILD_SETUPTOOLS} failed: {_pip_error(proc)}")
        lines.append(f"downloaded setuptools {BUILD_SETUPTOOLS}")
    return lines


# ---------------------------------------------------------------------------------------------- check


def stub_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = ()) -> Path:
    """An empty wheel that only names a package, its version and its requirements: how the image's packages are
    shown to pip's resolver (no library writes one; pip reads only these three files)."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}.dist-info/METADATA", metadata)
        zf.writestr(
            f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def image_stubs(folder: Path) -> None:
    """Stub wheels for every package of the lent image, plus those it provides under another name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in IMAGE_PACKAGES:
        stub_wheel(folder, name, IMAGE_VERSIONS.get(name, IMAGE_UNKNOWN_VERSION))
    for alias, actual in IMAGE_PROVIDES.items():
        stub_wheel(folder, alias, IMAGE_VERSIONS.get(actual, IMAGE_UNKNOWN_VERSION))


def check(folder: Path) -> dict[str, Any]:
    """pip's resolver (CPython 3.12, wheels only, no index) over the set in `folder` and the image's packages.

    Fails (UserInputError) when a wanted wheel is missing, a name has two versions, the set brings a package
    the image already has (except OVERRIDES), pip cannot satisfy a requirement, or a wheel is not needed.
    """
    ours = wheels_in(folder)
    want = wanted()
    names = [w.name for w in ours]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserInputError(f"{folder}: two versions of {', '.join(twice)}: remove all but one (or run fill)")
    missing = [f"{n}=={v}" for n, v in want.items() if (n, v) not in {(w.name, w.version) for w in ours}]
    if missing:
        raise UserInputError(f"{folder} lacks {', '.join(missing)}: run bash tools/gpu_wheels.sh")
    doubled = sorted(set(names) & set(IMAGE_PACKAGES) - set(OVERRIDES))
    if doubled:
        raise UserInputError(f"{folder}: the lent image already has {', '.join(doubled)}: drop them from the set")
    with tempfile.TemporaryDirectory(prefix="gpu_wheels_") as tmp:
        stubs, report = Path(tmp) / "image", Path(tmp) / "report.json"
        image_stubs(stubs)
        links = ["--find-links", str(folder), "--find-links", str(stubs)]
        requirements = [f"{n}=={v}" for n, v in want.items()]
        proc = _pip(
            ["install", "--dry-run", "--ignore-installed", "--no-index", *_binary_target(), *links]
            + ["--target", str(Path(tmp) / "target"), "--report", str(report), *requirements]
        )
        if proc.returncode != 0:
            raise UserInputError(f"pip's resolver for CPython {PYTHON} refuses the set in {folder}: {_pip_error(proc)}")
        resolved = json.loads(report.read_text())["install"]
    chosen = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in resolved}
    unused = [w.path.name for w in ours if chosen.get(w.name) != w.version]
    if unused:
        raise UserInputError(f"{folder}: {', '.join(unused)} not needed by the set: run fill (it removes them)")
    from_image = sorted(n for n in chosen if n not in names)
    return {
        "python": PYTHON,
        "wheels": [{"file": w.path.name, "mib": round(w.mib, 2)} for w in ours],
        "wheels_mib": round(sum(w.mib for w in ours), 2),
        "from_image": from_image,
        "overrides": {n: OVERRIDES[n] for n in names if n in OVERRIDES},
    }


# --------------------------------------------------------------------------------------------- travel


def tree_files(root: Path = ROOT) -> list[Path]:
    """What a device call sends of the checkout: tracked files and untracked files git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [root / p for p in out.decode().split("\0") if p and (root / p).is_file()]


def mib_of(paths: Sequence[Path]) -> float:
    """Total size of files and folders (recursively), in MiB."""
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total / 2**20


def travel(folder: Path, root: Path = ROOT) -> dict[str, Any]:
    """MiB that one device call sends when it carries the whole wheel folder: the tree plus `.whl`."""
    tree = mib_of(tree_files(root))
    parts = {
        "tier1_wheels_mib": mib_of([w.path for w in wheels_in(folder)]),
        "build_inputs_mib": mib_of([folder / "build"]) if (folder / "build").is_dir() else 0.0,
        "mmcv_ops_mib": mib_of([folder / "mmcv-ops"]) if (folder / "mmcv-ops").is_dir() else 0.0,
    }
    total = tree + mib_of([folder])
    return {
        "tree_mib": round(tree, 2),
        **{k: round(v, 2) for k, v in parts.items()},
        "total_mib": round(total, 2),
        "limit_mib": TRAVEL_LIMIT_MIB,
        "fits": total <= TRAVEL_LIMIT_MIB,
    }


# ------------------------------------------------------------------------------------ on the machine


def install_list(folder: Path, tier: int) -> list[Path]:
    """The wheels a tier installs: Tier 1's set; Tier 2 swaps mmcv-lite for the built mmcv (when there)."""
    files = [w.path for w in wheels_in(folder)]
    built = sorted((folder / "mmcv-ops").glob("mmcv-*.whl"))
    if tier == 2 and built:
        files = [p for p in files if Wheel.of(p).name != "mmcv-lite"] + built[-1:]
    return files


def install_files(files: Sequence[Path], target: Path) -> None:
    """`pip install --no-index --no-deps --target` of wheel files (the device README's way: nothing resolved)."""
    proc = _pip(
        ["install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade"]
        + ["--target", str(target), *map(str, files)]
    )
    if proc.returncode != 0:
        raise UserInputError(f"pip install --target {target} failed: {_pip_error(proc)}")


def install(folder: Path, target: Path, tier: int) -> list[str]:
    """Install the tier's wheels from `folder` into `target`; returns their file names."""
    files = install_list(folder, tier)
    if not files:
        raise UserInputError(f"{folder} holds no wheels: run bash tools/gpu_wheels.sh here, then carry {WHEEL_DIR}")
    install_files(files, target)
    return [p.name for p in files]


def split(path: Path, out: Path, part_mib: float = PART_LIMIT_MIB - 1) -> list[Path]:
    """`path` cut into numbered parts of at most `part_mib` MiB in `out` (a file back is at most 16 MiB)."""
    size = int(part_mib * 2**20)
    parts = []
    with open(path, "rb") as src:
        for index, block in enumerate(iter(lambda: src.read(size), b"")):
            part = out / f"{path.name}.part{index}"
            part.write_bytes(block)
            parts.append(part)
    return parts


def join(parts: Sequence[Path], folder: Path, sha256: str | None) -> Path:
    """Reassemble `NAME.whl.partN` files (in N order) into `folder/mmcv-ops/NAME.whl`, checked against `sha256`."""
    from etcore.checkpoint_io import file_sha256

    if not parts:
        raise UserInputError("join: give the part files (NAME.whl.part0 NAME.whl.part1 ...)")
    names = {p.name.rsplit(".part", 1)[0] for p in parts}
    if len(names) != 1 or not all(re.search(r"\.whl\.part\d+$", p.name) for p in parts):
        raise UserInputError(
            f"join: {', '.join(p.name for p in parts)} are not the parts of one wheel (NAME.whl.partN)"
        )
    ordered = sorted(parts, key=lambda p: int(p.name.rsplit(".part", 1)[1]))
    numbers = [int(p.name.rsplit(".part", 1)[1]) for p in ordered]
    if numbers != list(range(len(numbers))):
        raise UserInputError(f"join: parts {numbers} of {names.pop()}: one is missing (expected 0..{len(numbers) - 1})")
    dest_dir = folder / "mmcv-ops"
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / (names.pop() + ".tmp")
    with open(tmp, "wb") as out:
        for part in ordered:
            out.write(part.read_bytes())
    if sha256 and file_sha256(tmp) != sha256:
        tmp.unlink()
        raise UserInputError(f"join: the joined wheel's sha256 is not {sha256}: fetch the parts again")
    try:
        zipfile.ZipFile(tmp).testzip()
    except zipfile.BadZipFile:
        tmp.unlink()
        raise UserInputError("join: the joined file is not a wheel (zip): a part is damaged or missing") from None
    for old in dest_dir.glob("mmcv-*.whl"):
        old.unlink()
    dest = tmp.with_suffix("")
    os.replace(tmp, dest)
    return dest


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.gpu_wheels", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / WHEEL_DIR), help="the wheel folder (default: .whl)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    sub.add_parser("fill", help="download the set, then check it and print what travels")
    sub.add_parser("check", help="check the set with pip's resolver and print what travels")
    i = sub.add_parser("install", help="install a tier's wheels into a --target folder (on the lent machine)")
    i.add_argument("--target", required=True)
    i.add_argument("--tier", type=int, choices=(1, 2), default=1)
    j = sub.add_parser("join", help="reassemble a wheel from its parts into DIR/mmcv-ops/")
    j.add_argument("parts", nargs="+")
    j.add_argument("--sha256", default=None, help="the whole wheel's sha256 (the check's JSON gives it)")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    if args.command == "install":
        names = install(folder, Path(args.target), args.tier)
        print(f"installed {len(names)} wheels into {args.target}")
        return 0
    if args.command == "join":
        dest = join([Path(p) for p in args.parts], folder, args.sha256)
        print(f"joined {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")
        return 0
    if args.command == "fill":
        for line in fill(folder):
            print(line)
    summary = check(folder)
    sizes = travel(folder)
    print(f"{len(summary['wheels'])} wheels for CPython {PYTHON}, {summary['wheels_mib']:.1f} MiB; pip's resolver: ok")
    print(f"  from the lent image: {', '.join(summary['from_image'])}")
    for name, why in summary["overrides"].items():
        print(f"  {name}: carried although the image has one: {why}")
    print(
        f"what travels with {WHEEL_DIR} carried: {sizes['total_mib']:.1f} MiB of {TRAVEL_LIMIT_MIB:.0f} "
        f"({'fits' if sizes['fits'] else 'TOO LARGE'}): working tree {sizes['tree_mib']:.1f}, Tier 1 wheels "
        f"{sizes['tier1_wheels_mib']:.1f}, build inputs {sizes['build_inputs_mib']:.1f}, built mmcv "
        f"{sizes['mmcv_ops_mib']:.1f}"
    )
    return 0 if sizes["fits"] else 1


if __name__ == "__main__":
    run_cli(main)
