"""Start-up for the command lines in tools/.

Python puts a script's own folder first on `sys.path`; there `tools/pretrain.py` would shadow the
`pretrain` package for every tool that imports it. Each tool calls `use_packages_not_tools(__file__)`
before importing the project's packages.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"


def use_packages_not_tools(script: str) -> None:
    """Drop the script's folder from `sys.path` (idempotent) so `import pretrain` finds the package."""
    folder = Path(script).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != folder]


def load_tool(name: str) -> ModuleType:
    """Import `tools/<name>.py` once per process as module `tools_<name>` (the tools are files, not a package).

    Tools that share code (test.py uses train.py's config helpers, demo.py runs compare.py) and the tests
    load each other through this.
    """
    module_name = f"tools_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = TOOLS_DIR / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no tool named {name!r}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
