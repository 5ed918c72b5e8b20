"""graphkit's import graph has no circles, and its light entry points stay light.

Every ``import`` and ``from ... import`` counts, also those inside functions (a deferred
import still ties the two modules together) and relative ones. When two modules need each
other, the fact they share belongs in a small module below both (``graphkit.model_facts``,
``graphkit.model_files``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "graphkit"


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root`` (packages by their name)."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _base(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The absolute module a ``from`` import names (``from ..x import y`` resolved)."""
    if node.level == 0:
        return node.module
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level - 1 > len(package) - 1:
        return None  # above the top package: Python refuses it too
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from a import b`` names ``a.b`` if that is
    a module, else ``a``)."""
    mods = _modules(root)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = _base(module, path, node)
                if base is None:
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in mods:
                        edges[module].add(full)
                    elif base in mods:
                        edges[module].add(base)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods:
                        edges[module].add(alias.name)
    for module in edges:
        edges[module].discard(module)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_the_finder_sees_a_circle_through_deferred_and_relative_imports(tmp_path):
    # The check must be able to fail: a small package with one circle of each kind.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import x\n")
    (pkg / "sub" / "c.py").write_text("from ..d import y\n")
    (pkg / "d.py").write_text("from pkg.sub import c\n")
    (pkg / "e.py").write_text("from . import a\n")  # into a circle, not part of it
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.b"], ["pkg.d", "pkg.sub.c"]]


def test_graphkit_has_no_import_circles():
    found = circles(import_graph())
    assert not found, (
        "import circles (move what they share into a module below both): "
        + "; ".join(" <-> ".join(c) for c in found)
    )


def test_cli_and_backends_import_neither_tensorflow_nor_onnxruntime():
    # graphkit.cli is also checked by test_package (with --help runs); graphkit.backends
    # promises it in its docstring: a backend's runtime is imported when it runs.
    for module in ("graphkit.cli", "graphkit.backends"):
        code = (
            f"import sys, {module}\n"
            "print(sorted(m for m in ('tensorflow', 'onnxruntime') if m in sys.modules))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]", f"import {module} imports {result.stdout.strip()}"
