"""Layering: cli/tui -> api -> jobs -> engine -> store/data, analysis pure; no import circle; SQL only
in store; heavy imports stay lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "embtui"

# What each layer must never import (module-level or inside functions).
FORBIDDEN = {
    "store": ("embtui.api", "embtui.engine", "embtui.jobs", "embtui.tui", "embtui.data", "embtui.cli",
              "textual"),
    "data": ("embtui.api", "embtui.engine", "embtui.jobs", "embtui.tui", "embtui.cli", "textual",
             "duckdb"),
    "engine": ("embtui.api", "embtui.jobs", "embtui.tui", "embtui.cli", "textual", "duckdb"),
    "jobs": ("embtui.api", "embtui.tui", "embtui.cli", "textual"),
    # front ends call only the use-case layer (embtui.api) and pure analysis; types from below may
    # be named under `if TYPE_CHECKING:` (not checked: they never run)
    "tui": ("embtui.cli", "duckdb", "embtui.engine", "embtui.jobs", "embtui.store", "embtui.data"),
    "cli": ("textual", "duckdb", "embtui.engine", "embtui.jobs", "embtui.store", "embtui.data"),
    "api": ("embtui.tui", "embtui.cli", "textual", "duckdb"),
    # pure: data in, results out (no store, no engine I/O, no front end, no files or models)
    "analysis": ("embtui.api", "embtui.store", "embtui.engine", "embtui.jobs", "embtui.data",
                 "embtui.tui", "embtui.cli", "duckdb", "textual", "torch", "sentence_transformers", "usearch",
                 "pyarrow"),
}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_upwards(layer: str) -> None:
    bad = []
    for path in (PKG / layer).rglob("*.py"):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PKG)} imports {name}")
    assert not bad, "\n".join(bad)


def test_type_checking_imports_are_not_runtime_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from embtui.store import Store\n"
                   "def f():\n    from embtui.api.workspace import Store\n")
    assert sorted(imports_of(src)) == ["embtui.api.workspace", "typing"]


def test_every_module_says_what_it_owns() -> None:
    missing = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
               if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a one-line docstring: {missing}"


@pytest.mark.parametrize("module", ["embtui.cli", "embtui.engine.evaluate", "embtui.engine.search",
                                    "embtui.store"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'sentence_transformers', "
            "'transformers', 'usearch') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _module_graph() -> dict[str, set[str]]:
    """embtui module -> the embtui modules it imports (anywhere in it, lazily or not)."""
    def name_of(path: Path) -> str:
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for p in PKG.rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(owner(a.name) for a in node.names if a.name.startswith("embtui"))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith("embtui"):
                for a in node.names:  # `from pkg import submodule` depends on the submodule
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in modules else owner(node.module))
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def test_no_import_circle_anywhere() -> None:
    """Strongly connected components of the import graph (Tarjan), over every module."""
    graph = _module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_graph_sees_lazy_imports() -> None:
    graph = _module_graph()
    assert "embtui.cli.jobs" in graph["embtui.cli.evaluate"]  # imported inside cmd_eval
    assert "embtui.cli.output" in graph["embtui.cli.data"]
