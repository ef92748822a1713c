"""The rooms' import graph: no room imports a room above it, no circles, thin tools that import no tool.

Walks every `.py` file with `ast` (imports inside functions count too) instead of importing anything,
so a violation is found even on a code path no other test runs.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Each room and the rooms it may import (the layering of README's folder table, lowest first).
ALLOWED = {
    "etcore": set(),
    "pretraining": {"etcore"},
    "backbones": {"etcore"},
    "finetune": {"etcore", "backbones"},
    "reporting": {"etcore"},
    "bench": {"etcore", "pretraining", "backbones", "finetune"},
    "embedded_demo": {"etcore", "reporting", "finetune"},
    "study_runner": {"etcore", "pretraining", "reporting", "finetune"},
}
ROOMS = set(ALLOWED)
# mmdet users type `python tools/test.py`; the stdlib `test` package it shadows holds CPython's own
# regression tests, which nothing in the stack imports.
SHADOW_EXEMPT = {"test"}


def _modules(room: str) -> dict[str, Path]:
    """Dotted module name -> file for every .py file of a room (package rooms) or of tools/."""
    files = sorted((REPO / room).rglob("*.py"))
    names = {}
    for path in files:
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(path: Path, module: str) -> set[str]:
    """Absolute dotted names imported anywhere in `path` (relative imports resolved against `module`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(filter(None, [*parent, base]))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from room import module`
    return found


def _project_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for room in ROOMS:
        modules.update(_modules(room))
    graph = {}
    for name, path in modules.items():
        graph[name] = {imported for imported in _imports(path, name) if imported in modules}
    return graph


def test_no_room_imports_a_room_above_it() -> None:
    violations = []
    for room in ROOMS:
        for name, path in _modules(room).items():
            for imported in _imports(path, name):
                target = imported.split(".")[0]
                if target in ROOMS and target != room and target not in ALLOWED[room]:
                    violations.append(f"{path.relative_to(REPO)} imports {imported}")
                if target in ("tools", "tests"):
                    violations.append(f"{path.relative_to(REPO)} imports {imported}")
    assert not violations, violations


def test_no_import_circles() -> None:
    graph = _project_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package importing its own submodules (`backbones/__init__` re-exports) is not a circle unless
    # a submodule imports the package back
    assert not cycles, cycles


def test_tools_are_thin_and_import_no_tool() -> None:
    """Every tool: a docstring, imports from the rooms, and `run_cli(main)` under `__main__`; nothing else."""
    problems = []
    for path in sorted((REPO / "tools").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstring
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad = [m for m in modules if m.split(".")[0] not in ROOMS]
                if bad or getattr(node, "level", 0):
                    problems.append(f"{path.name} imports {bad or 'relatively'}")
                continue
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and len(node.body) == 1:
                continue
            problems.append(f"{path.name}: line {node.lineno} is more than a thin entry point")
    assert not problems, problems


def test_no_tool_shadows_a_package() -> None:
    """`python tools/X.py` puts tools/ first on sys.path: no tool may be named like an importable module."""
    tools_dir = str(REPO / "tools")
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(tools_dir)]
    try:
        shadowing = [
            p.stem
            for p in (REPO / "tools").glob("*.py")
            if p.stem not in SHADOW_EXEMPT and (p.stem in ROOMS or importlib.util.find_spec(p.stem))
        ]
    finally:
        sys.path[:] = saved
    assert not shadowing, shadowing


def test_the_readme_folder_table_matches_the_tree() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| `") and line.split("|")[1].strip().endswith("/`")]
    listed = {line.split("|")[1].strip().strip("`").rstrip("/") for line in table}
    folders = {
        p.name
        for p in REPO.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name not in {"build", "work_dirs", "data", "__pycache__"}
        and not p.name.endswith(".egg-info")
    }
    assert listed == folders, (sorted(listed - folders), sorted(folders - listed))


def test_pyproject_lists_every_package_room() -> None:
    import tomllib

    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert {package.split(".")[0] for package in packages} == ROOMS
    # setuptools installs only the packages it is told of: every sub-package of a room is listed too
    nested = {
        ".".join(init.parent.relative_to(REPO).parts) for room in ROOMS for init in (REPO / room).rglob("*/__init__.py")
    }
    assert nested <= packages, sorted(nested - packages)
