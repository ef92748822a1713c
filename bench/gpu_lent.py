"""The device tool's lent GPU machine: the check run there (`--lent`), and its rehearsal here (`--as-lent`).

`run_lent` (bash tools/gpu_check.sh --lent): the machine's image has torch but no OpenMMLab package and no
network, so the carried `.whl/` is installed with `pip install --no-index --no-deps --target` into a fresh
folder. At Tier 2 without a built mmcv in `.whl/mmcv-ops/`, mmcv 2.1.0's CUDA ops are first built there
against the image's own torch (every core, timed) and the wheel goes into --out in parts of at most 15 MiB
(`python -m bench.gpu_wheels join` puts them back together here). Then the check runs in a child process
whose PYTHONPATH holds that folder and the repository; its report gains the install and build steps.

`rehearse` (bash tools/gpu_check.sh --dry-run --as-lent): with LENT_PYTHON, a Python 3.12 that holds the
image's torch 2.11 and torchvision 0.26, fills and checks `.whl/`, checks what travels against the 64 MiB,
then runs the Tier 1 dry run the way the lent machine runs it, twice into the same folder; both must pass
with the same verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from bench import gpu_wheels as gw
from bench.gpu_report import BUDGET_S, LENT_SITE_ENV, log_tail, table, write_report
from etcore.errors import UserInputError
from etcore.process import run_process

ROOT = Path(__file__).resolve().parents[1]
LENT_PYTHON_ENV = "LENT_PYTHON"
LENT_IMAGE = {"python": "3.12", "torch": "2.11.0", "torchvision": "0.26.0"}  # what the rehearsal stands in for
BUILD_LIMIT_S = 480.0  # the mmcv build inside one 600 s call
CALL_S = 570.0  # one device command runs for at most 600 s: the check's budget ends this long after --lent starts


def _pythonpath(*first: Path) -> str:
    return os.pathsep.join([*map(str, first), *filter(None, [os.environ.get("PYTHONPATH")])])


def build_mmcv(folder: Path, work: Path, out: Path, jobs: int, timeout: float | None) -> dict[str, Any]:
    """mmcv's CUDA ops against this machine's torch, for its GPU: the wheel in `folder`/mmcv-ops, parts in `out`."""
    import torch

    from bench.cuda_build import build_tag
    from etcore.checkpoint_io import file_sha256

    sdist = folder / "build" / f"mmcv-{gw.MMCV_VERSION}.tar.gz"
    tools = sorted((folder / "build").glob("setuptools-*.whl"))
    if not sdist.is_file() or not tools:
        raise UserInputError(
            f"{folder / 'build'} lacks the mmcv sdist or setuptools: run bash tools/gpu_wheels.sh here"
        )
    if not torch.cuda.is_available():
        raise UserInputError("the mmcv CUDA build needs the lent machine's GPU (or a built wheel in .whl/mmcv-ops/)")
    arch = "{}.{}".format(*torch.cuda.get_device_capability(0))
    buildtools, src, dist = work / "buildtools", work / "mmcv-src", work / "dist"
    gw.install_files(tools, buildtools)  # setuptools < 81: mmcv's setup.py imports pkg_resources
    with tarfile.open(sdist) as archive:
        archive.extractall(src, filter="data")
    env = {
        "MMCV_WITH_OPS": "1",
        "FORCE_CUDA": "1",
        "TORCH_CUDA_ARCH_LIST": arch,
        "MAX_JOBS": str(jobs),
        "PYTHONPATH": _pythonpath(buildtools),
    }
    command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index"]
    command += ["-w", str(dist), str(src / f"mmcv-{gw.MMCV_VERSION}")]
    print(f"  building mmcv {gw.MMCV_VERSION} CUDA ops for sm {arch}, {jobs} jobs", flush=True)
    result = run_process(command, cwd=work, log=work / "logs" / "mmcv_build.log", timeout=timeout, env=env)
    step: dict[str, Any] = {
        "step": "mmcv_build",
        "rc": result.rc,
        "seconds": result.seconds,
        "jobs": jobs,
        "arch": arch,
    }
    built = sorted(dist.glob("mmcv-*.whl"))
    if not result.ok or not built:
        return {**step, "ok": False, "log_tail": log_tail(result.log)}
    tag = build_tag(torch.version.cuda or "0.0", [arch])
    subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--build", tag, str(built[0])], check=True)
    wheel = sorted(dist.glob(f"mmcv-*-{tag}-*.whl"))[0]
    (folder / "mmcv-ops").mkdir(parents=True, exist_ok=True)
    kept = Path(shutil.copy2(wheel, folder / "mmcv-ops" / wheel.name))
    parts = gw.split(kept, out)
    return {
        **step,
        "ok": True,
        "wheel": kept.name,
        "mib": round(kept.stat().st_size / 2**20, 1),
        "sha256": file_sha256(kept),
        "parts": [p.name for p in parts],
        "join": "python -m bench.gpu_wheels join " + " ".join(p.name for p in parts) + " --sha256 SHA256",
    }


def run_lent(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Install the tier's wheels (building mmcv first where Tier 2 lacks it), then the check inside them."""
    started = time.perf_counter()
    folder, out = ROOT / gw.WHEEL_DIR, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in ("gpu_check.json", "gpu_check.txt"):  # a crash below must not leave the last run's verdict
        (out / old).unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_lent-"))
    tier = 2 if args.tier in ("2", "all") else 1
    steps: list[dict[str, Any]] = []
    if tier == 2 and not list((folder / "mmcv-ops").glob("mmcv-*.whl")):
        steps.append(build_mmcv(folder, work, out, os.cpu_count() or 1, BUILD_LIMIT_S))
    t0 = time.perf_counter()
    site = work / "site"
    names = gw.install(folder, site, tier)
    steps.insert(0, {"step": "install", "ok": True, "seconds": round(time.perf_counter() - t0, 1), "wheels": names})
    print(f"  installed {len(names)} wheels from {folder} into {site} in {steps[0]['seconds']} s", flush=True)
    env = {"PYTHONPATH": _pythonpath(site, ROOT), LENT_SITE_ENV: str(site)}
    if args.budget_s is None and not args.dry_run:  # what the install and a build left of the call
        budget = min(BUDGET_S[args.tier], CALL_S - (time.perf_counter() - started))
        argv = [*argv, "--budget-s", f"{max(budget, 1.0):.0f}"]
    child = run_process([sys.executable, "-m", "bench.gpu_check", *argv], cwd=ROOT, env=env)
    found = out / "gpu_check.json"
    report = json.loads(found.read_text()) if found.is_file() else {"mode": "lent", "tier": args.tier, "steps": []}
    report.setdefault("machine", {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "packages": {}})
    report.setdefault("date", "")
    report["steps"] = (
        steps + report["steps"] + ([] if found.is_file() else [{"step": "check", "ok": False, "rc": child.rc}])
    )
    report["ok"] = child.rc == 0 and all(step.get("ok") for step in report["steps"])
    report["total_s"] = round(time.perf_counter() - started, 1)
    write_report(out, report)
    print(f"lent run: {'PASS' if report['ok'] else 'FAIL'} in {report['total_s']:.0f} s (install and build included)")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if report["ok"] else 1


def _verdict(report: dict[str, Any]) -> list[Any]:
    """What must be the same in two runs: the verdict, every test's outcome, every benchmark's result."""
    found: list[Any] = [report.get("ok")]
    for step in report.get("steps", []):
        found.append((step["step"], step.get("ok")))
        found += [(case["test"], case["outcome"]) for case in step.get("tests", [])]
        found += [(b["step"], b.get("rc"), bool(b.get("skipped"))) for b in step.get("benchmarks", [])]
    return found


def rehearse(args: argparse.Namespace) -> int:
    """The lent machine here: the wheel set for Python 3.12, what travels, and the Tier 1 dry run twice."""
    lent = os.environ.get(LENT_PYTHON_ENV)
    if not lent or not shutil.which(lent):
        raise UserInputError(
            f"--as-lent needs {LENT_PYTHON_ENV}: a Python {LENT_IMAGE['python']} with torch {LENT_IMAGE['torch']} "
            f"and torchvision {LENT_IMAGE['torchvision']}, the lent image's (BENCHMARKS.md section 6: how to make one)"
        )
    versions = (
        "import platform, torch, torchvision as tv; print(platform.python_version(), torch.__version__, tv.__version__)"
    )
    probe = subprocess.run(
        [lent, "-c", versions],
        capture_output=True,
        text=True,
    )
    have = probe.stdout.split()
    if (
        probe.returncode != 0
        or len(have) != 3
        or not (have[0].startswith(LENT_IMAGE["python"] + ".") and have[1].split("+")[0] == LENT_IMAGE["torch"])
    ):
        raise UserInputError(
            f"{LENT_PYTHON_ENV}={lent} has {' '.join(have) or 'no torch'}: give the lent image's {LENT_IMAGE}"
        )
    started = time.perf_counter()
    folder, out = ROOT / gw.WHEEL_DIR, Path(args.out)
    for line in gw.fill(folder):
        print(f"  {line}")
    wheels, travel = gw.check(folder), gw.travel(folder)
    print(f"  {len(wheels['wheels'])} wheels, {wheels['wheels_mib']:.1f} MiB; pip's resolver for CPython 3.12: ok")
    print(f"  what travels with {gw.WHEEL_DIR}: {travel['total_mib']:.1f} MiB of {travel['limit_mib']:.0f}")
    command = ["bash", "tools/gpu_check.sh", "--lent", "--dry-run", "--tier", "1", "--out", str(out)]
    runs, verdicts = [], []
    for attempt in (1, 2):
        print(f"rehearsal run {attempt}: {' '.join(command)}", flush=True)
        result = run_process(command, cwd=ROOT, env={LENT_PYTHON_ENV: lent, "PYTHONPATH": ""})
        report = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").is_file() else {}
        runs.append({"rc": result.rc, "seconds": result.seconds, "ok": report.get("ok", False)})
        verdicts.append(_verdict(report))
    summary = {
        "lent_python": dict(zip(("python", "torch", "torchvision"), have)),
        "wheels": wheels,
        "travel": travel,
        "runs": runs,
        "same_verdict": verdicts[0] == verdicts[1],
        "total_s": round(time.perf_counter() - started, 1),
    }
    summary["ok"] = travel["fits"] and summary["same_verdict"] and all(r["ok"] and r["rc"] == 0 for r in runs)
    (out / "rehearsal.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"rehearsal: {'PASS' if summary['ok'] else 'FAIL'}: runs {[r['seconds'] for r in runs]} s, rc "
        f"{[r['rc'] for r in runs]}, same verdict {summary['same_verdict']}, travels {travel['total_mib']:.1f} MiB "
        f"(limit {travel['limit_mib']:.0f}); {out / 'rehearsal.json'}"
    )
    if not summary["ok"]:
        print(table(json.loads((out / "gpu_check.json").read_text())) if (out / "gpu_check.json").is_file() else "")
    return 0 if summary["ok"] else 1
