"""One check of the GPU path (tools/gpu_check.sh): the gpu-marked tests, then the GPU benchmarks, one report.

    bash tools/gpu_check.sh [--tier 1|2|all] [--out DIR]        # one CUDA GPU, the project's .venv
    bash tools/gpu_check.sh --lent [--tier 1|2] --out DIR        # the device tool's machine: its image + .whl/
    bash tools/gpu_check.sh --dry-run [--tier ...] [--out DIR]   # CPU, tiny sizes: the same tests and code
    bash tools/gpu_check.sh --dry-run --as-lent [--out DIR]      # rehearse the lent machine here, twice

Tier 1 needs no compiled mmcv ops: tests/test_gpu_pretrain.py (curriculum pretraining killed and resumed,
bit-equal weights), then tools/gpu_benchmarks.py --tier 1 (step vs loader throughput per stage, end-to-end
EfficientTrain against the baseline, ...). Tier 2 needs them: tests/test_gpu_ops.py (mmcv's CUDA ops against
the CPU) and tests/test_gpu_detectors.py (the real Cascade Mask R-CNN and RetinaNet configs), then the detector
timings. `--lent` first installs the carried wheels (bench.gpu_wheels) into a fresh folder; at Tier 2 without
a built mmcv it builds one there (timed) and returns it in parts.

Every run works in a fresh temporary folder (removed after a pass) and replaces DIR/gpu_check.json and
DIR/gpu_check.txt, so a rerun gives the same verdict as the first. A gpu test that is skipped fails the check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from bench.gpu_report import (
    BUDGET_S,
    GPU_REPORT_ENV,
    GPU_TESTS_ENV,
    LENT_SITE_ENV,
    junit_results,
    log_tail,
    machine_info,
    table,
    write_report,
)
from etcore.cli import ArgumentParser
from etcore.errors import UserInputError
from etcore.process import run_process

ROOT = Path(__file__).resolve().parents[1]
TIER_TESTS = {1: ("tests/test_gpu_pretrain.py",), 2: ("tests/test_gpu_ops.py", "tests/test_gpu_detectors.py")}
TIERS = {"1": (1,), "2": (2,), "all": (1, 2)}
STEPS = ("tests", "benchmarks")
TESTS_LIMIT_S = {1: 240.0, 2: 300.0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="tools/gpu_check.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="work_dirs/gpu_check", help="report folder (default: work_dirs/gpu_check)")
    parser.add_argument("--tier", choices=sorted(TIERS), default=None, help="1, 2 or all (default: all; --lent: 1)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same tests and benchmark code")
    parser.add_argument("--lent", action="store_true", help="on the device tool's machine: install .whl/ first")
    parser.add_argument("--as-lent", action="store_true", help="with --dry-run: rehearse the lent machine here")
    parser.add_argument("--budget-s", type=float, default=None, help="start nothing after this many seconds")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), help="run only these steps")
    parser.add_argument("--keep", action="store_true", help="keep the work folder after a pass")
    args = parser.parse_args(argv)
    args.tier = args.tier or ("1" if args.lent or args.as_lent else "all")
    if args.as_lent and not args.dry_run:
        raise UserInputError("--as-lent rehearses the lent machine on this CPU: give it with --dry-run")
    if args.budget_s is not None and args.budget_s <= 0:
        raise UserInputError(f"--budget-s {args.budget_s:g} must be positive")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {args.out} is a file: give a folder")
    return args


# ------------------------------------------------------------------------------------------- steps


def step_tests(tiers: Sequence[int], dry_run: bool, work: Path, timeout: float | None) -> dict[str, Any]:
    """`pytest -m gpu` over the tiers' test files; every selected test must pass (a skip is not a pass)."""
    numbers = work / "numbers"
    files = [f for tier in tiers for f in TIER_TESTS[tier]]
    command = [sys.executable, "-m", "pytest", "-m", "gpu", *files, "-p", "no:cacheprovider", "-q", "-rA"]
    command += ["--basetemp", str(work / "pytest"), "--junitxml", str(work / "junit.xml")]
    env = {GPU_REPORT_ENV: str(numbers), **({GPU_TESTS_ENV: "cpu"} if dry_run else {})}
    result = run_process(command, cwd=ROOT, log=work / "logs" / "tests.log", timeout=timeout, env=env)
    cases = junit_results(work / "junit.xml")
    found = {p.stem: json.loads(p.read_text()) for p in sorted(numbers.glob("*.json"))} if numbers.is_dir() else {}
    ok = result.rc == 0 and bool(cases) and all(c["outcome"] == "passed" for c in cases)
    step = {"step": "tests", "command": " ".join(command[1:]), "rc": result.rc, "seconds": result.seconds}
    step.update(ok=ok, tests=cases, numbers=found)
    if not ok:
        step["log_tail"] = log_tail(result.log)
    return step


def step_benchmarks(tier: str, dry_run: bool, work: Path, budget: float | None) -> dict[str, Any]:
    """tools/gpu_benchmarks.py for the tier (`--smoke` in the dry run) within what is left of the budget."""
    out = work / "benchmarks"
    command = [sys.executable, "tools/gpu_benchmarks.py", str(out), "--tier", tier]
    command += ["--smoke"] if dry_run else ["--budget-s", f"{budget:.0f}"]
    result = run_process(
        command, cwd=ROOT, log=work / "logs" / "benchmarks.log", timeout=None if dry_run else budget + 60
    )
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    steps = []
    for entry in summary.get("steps", []):
        found = out / f"{entry['step']}.json"
        payload = json.loads(found.read_text()) if found.is_file() else {}
        entry = {k: v for k, v in entry.items() if k != "command"} | {"command": " ".join(entry.get("command", []))}
        entry.update(table=payload.get("table"), result=payload.get("result"))
        if entry.get("rc", 0) != 0:
            entry["log_tail"] = log_tail(out / f"{entry['step']}.log")
        steps.append(entry)
    ok = result.rc == 0 and bool(steps)
    step = {"step": "benchmarks", "command": " ".join(command[1:]), "rc": result.rc, "seconds": result.seconds}
    step.update(ok=ok, benchmarks=steps)
    if not ok:
        step["log_tail"] = log_tail(result.log)
    return step


# --------------------------------------------------------------------------------------------- main


def run_check(args: argparse.Namespace) -> int:
    """The tests and benchmarks of the tier in a fresh work folder; the report in --out."""
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError(
            "no CUDA device is visible (torch.cuda.is_available() is False): run on a GPU machine after "
            "FORCE_CUDA=1 make setup (or --lent on the device tool's machine), or pass --dry-run for the CPU check"
        )
    budget = None if args.dry_run else (args.budget_s or BUDGET_S[args.tier])
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    print(f"GPU check, tier {args.tier} ({'dry run, CPU' if args.dry_run else 'GPU'}); work folder {work}", flush=True)
    report: dict[str, Any] = {
        "mode": ("dry-run" if args.dry_run else "gpu") + (" (lent image)" if os.environ.get(LENT_SITE_ENV) else ""),
        "tier": args.tier,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "steps": [],
    }
    tiers = TIERS[args.tier]
    if "tests" in args.only:
        left = None if budget is None else budget - (time.perf_counter() - started)
        limit = None if left is None else min(left, sum(TESTS_LIMIT_S[t] for t in tiers))
        print("  tests: pytest -m gpu " + " ".join(f for t in tiers for f in TIER_TESTS[t]), flush=True)
        report["steps"].append(step_tests(tiers, args.dry_run, work, limit))
    if "benchmarks" in args.only:
        left = None if budget is None else budget - (time.perf_counter() - started)
        if left is not None and left < 60:
            report["steps"].append({"step": "benchmarks", "ok": False, "skipped": f"{left:.0f} s of the budget left"})
        else:
            print("  benchmarks: tools/gpu_benchmarks.py --tier " + args.tier, flush=True)
            report["steps"].append(step_benchmarks(args.tier, args.dry_run, work, left))
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["ok"] = all(step["ok"] for step in report["steps"])
    out = Path(args.out)
    write_report(out, report)
    print(table(report), end="")
    if report["ok"] and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    print(f"report: {out / 'gpu_check.json'}, {out / 'gpu_check.txt'}")
    return 0 if report["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.as_lent:
        from bench.gpu_lent import rehearse

        return rehearse(args)
    if args.lent and not os.environ.get(LENT_SITE_ENV):
        from bench.gpu_lent import run_lent

        return run_lent(args, list(sys.argv[1:] if argv is None else argv))
    return run_check(args)


if __name__ == "__main__":
    from etcore.errors import run_cli

    run_cli(main)
