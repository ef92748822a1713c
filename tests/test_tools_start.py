"""Every command line in tools/ starts from a fresh interpreter and answers --help.

Catches what in-process tests cannot: a tool whose own folder shadows a package on sys.path
(tools/pretrain.py vs the `pretrain` package), or an import that only works inside pytest.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
TOOLS = sorted(p for p in (REPO / "tools").glob("*.py"))


def _help(tool: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tool), "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_every_tool_answers_help() -> None:
    assert len(TOOLS) >= 8, [t.name for t in TOOLS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(TOOLS, pool.map(_help, TOOLS)))
    failed = {
        tool.name: (r.returncode, r.stderr.strip().splitlines()[-1:])
        for tool, r in results.items()
        if r.returncode != 0 or "usage:" not in r.stdout
    }
    assert not failed, failed
