"""Layering: tui -> jobs -> engine -> store/data; SQL only in store; heavy imports stay lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "embtui"

# What each layer must never import (module-level or inside functions).
FORBIDDEN = {
    "store": ("embtui.engine", "embtui.jobs", "embtui.tui", "embtui.data", "textual"),
    "data": ("embtui.engine", "embtui.jobs", "embtui.tui", "textual", "duckdb"),
    "engine": ("embtui.jobs", "embtui.tui", "textual", "duckdb"),
    "jobs": ("embtui.tui", "textual"),
    "tui": ("duckdb",),
}


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
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
