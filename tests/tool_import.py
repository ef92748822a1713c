"""Import a command-line tool from `tools/<name>.py` as a module, for tests and other tools.

The tools are self-contained files, not a package; importing them by path keeps it that way.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name: str) -> ModuleType:
    """Load `tools/<name>.py` once per process and return it as module `tools_<name>`."""
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
