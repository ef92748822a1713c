"""The GPU check's report (tools/gpu_check.sh): what ran where, each step's outcome, and the benchmarks' tables.

`write_report` replaces DIR/gpu_check.json and DIR/gpu_check.txt whole, so a later run never leaves an earlier
run's verdict beside its own. The names of the environment variables that tie the check to its tests live here.
"""

from __future__ import annotations

import json
import os
import platform
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

GPU_TESTS_ENV = "ETDET_GPU_TESTS"  # "cpu": the gpu-marked tests run on the CPU at tiny sizes (tests/gpu_fixtures.py)
GPU_REPORT_ENV = "ETDET_GPU_REPORT"  # folder where the gpu tests write their numbers
LENT_SITE_ENV = "ETDET_LENT_SITE"  # set once --lent has installed the wheels (the check then runs inside them)
PACKAGES = ("torch", "torchvision", "timm", "mmcv", "mmcv-lite", "mmengine", "mmdet", "mmsegmentation", "pycocotools")
PACKAGES += ("numpy", "pillow", "opencv-python-headless", "opencv-python")
BUDGET_S = {"1": 420.0, "2": 480.0, "all": 570.0}  # the whole check on the GPU, by tier (start nothing after it)
LOG_TAIL = 25  # lines of a failed step's log kept in the report (the work folder may not come back)


def machine_info(device: str) -> dict[str, Any]:
    """Host, Python, torch and CUDA, the GPU, and the versions of the packages the check uses."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch_cuda": torch.version.cuda,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
        )
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    info["packages"] = packages
    return info


def log_tail(log: Path | None, lines: int = LOG_TAIL) -> list[str]:
    if log is None or not log.is_file():
        return []
    return log.read_text(errors="replace").rstrip().splitlines()[-lines:]


def junit_results(path: Path) -> list[dict[str, Any]]:
    """Every test case of a pytest --junitxml file: its id, outcome and, unless it passed, the reason."""
    if not path.is_file():
        return []
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, reason = "passed", None
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                reason = " ".join((found.get("message") or found.text or "").split())[:400]
                break
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        cases.append(
            {"test": name, "outcome": outcome, "seconds": round(float(case.get("time", 0)), 1), "reason": reason}
        )
    return cases


def table(report: dict[str, Any]) -> str:
    """The report as text: verdict, machine, every test and benchmark step, then the benchmarks' own tables."""
    machine = report["machine"]
    lines = [
        f"GPU check ({report['mode']}, tier {report['tier']}): {'PASS' if report['ok'] else 'FAIL'} in "
        f"{report['total_s']:.0f} s, {report['date']}",
        f"machine: {machine.get('gpu', 'no GPU')}, {machine['cpu_count']} cores, Python {machine['python']}, "
        + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()),
    ]
    for step in report["steps"]:
        if step.get("skipped"):
            lines.append(f"{step['step']}: skipped ({step['skipped']})")
            continue
        rc = f"rc {step['rc']}, " if "rc" in step else ""
        lines.append(f"{step['step']}: {'ok' if step['ok'] else 'FAIL'} ({rc}{step.get('seconds', 0):.0f} s)")
        for case in step.get("tests", []):
            why = f"  {case['reason'][:150]}" if case["reason"] else ""
            lines.append(f"  {case['outcome']:<8} {case['seconds']:>6.1f} s  {case['test']}{why}")
        for bench in step.get("benchmarks", []):
            state = (
                f"skipped ({bench['skipped']})"
                if bench.get("skipped")
                else f"rc {bench['rc']}, {bench['seconds']:.0f} s"
            )
            lines.append(f"  {bench['step']:<28} {state}")
        lines += [f"  | {line}" for line in step.get("log_tail", [])]
    for step in report["steps"]:
        for bench in step.get("benchmarks", []):
            if bench.get("table"):
                lines += ["", f"== {bench['step']}", bench["table"]]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any]) -> None:
    """DIR/gpu_check.json and DIR/gpu_check.txt, each replaced whole (never half-written)."""
    from etcore.checkpoint_io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(report, indent=1, default=str) + "\n", out / "gpu_check.json")
    write_text_atomic(table(report), out / "gpu_check.txt")
