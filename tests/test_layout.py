"""The package's imports flow one way (docs/architecture.md), inside functions too.

Every ``import`` statement of ``src/taskmix`` is read with ``ast`` (module level and inside
functions alike), so a cycle hidden in a function-level import fails here as a top-level one
would.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "taskmix"

# Lowest first: a package may import its own modules and those of lower layers only. "taskmix"
# is the package's own __init__, the convenience facade above everything.
LAYERS = [
    {"errors"},
    {"yamlconf", "tables", "metrics", "files"},
    {"data"},
    {"objectives", "cleaning"},
    {"default_data"},
    {"catalog"},
    {"models"},
    {"training"},
    {"evaluation"},
    {"recipes", "experts", "mtdnn"},
    {"cli"},
    {"taskmix"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str | None = None) -> list[tuple[str, int]]:
    """(imported taskmix module, line) for every import statement of a file."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.split(".")[0] == "taskmix"]
    return found


def top_package(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "taskmix"
    candidate = SRC / parts[1]
    return parts[1] if candidate.is_dir() or candidate.with_suffix(".py").is_file() else "taskmix"


FILES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {top_package(module_name(f)) for f in FILES}
    assert packages <= set(LAYER), f"add {sorted(packages - set(LAYER))} to LAYERS and the docs"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_go_down(path):
    source = top_package(module_name(path))
    upward = [
        f"{path.relative_to(SRC.parent)}:{line} imports {target}"
        for target, line in imports(path)
        if LAYER[top_package(target)] > LAYER[source]
        or (LAYER[top_package(target)] == LAYER[source] and top_package(target) != source)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_modules():
    """Module-level and function-level imports together form no cycle (Tarjan's SCCs)."""
    modules = {module_name(f): f for f in FILES}
    graph = {m: set() for m in modules}
    for m, path in modules.items():
        for target, _ in imports(path):
            # ``from taskmix.x import y`` may name module ``taskmix.x.y`` or a name in ``x``
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != m and not m.startswith(target + "."):
                graph[m].add(target)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\n"
        "def f():\n"
        "    from taskmix.cli import main\n"
        "    from ..models import t5\n"
        "    from . import sources\n"
    )
    found = imports(probe, module="taskmix.data.probe")
    assert found == [("taskmix.cli", 3), ("taskmix.models", 4), ("taskmix.data", 5)]
