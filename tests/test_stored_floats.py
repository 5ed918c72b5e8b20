"""No test compares exactly with floats recorded on another run or machine.

Predictions stored in a fixture were computed on one CPU; another x86-64 or ARM CPU, or
oneDNN on or off, rounds 1 ulp differently. Such comparisons go through
``tests.conftest.assert_within_ulps``. This check reads every test module and fails on an
exact comparison (``assert_array_equal``, ``array_equal``, ``==``) whose operand is an array
loaded from a file (``np.load``) under a key that names recorded results.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
EXACT_CALLS = {"assert_array_equal", "array_equal", "assert_equal", "array_equiv"}
RECORDED_KEY = re.compile(r"expected|pred|output|logits|result", re.IGNORECASE)


def _loaded_names(func: ast.AST) -> set[str]:
    """Names bound to something read with ``np.load`` in ``func``."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and "np.load(" in ast.unparse(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return names


def _recorded_operand(node: ast.AST, loaded: set[str]) -> bool:
    """Does ``node`` use ``loaded_name["expected"]`` or ``np.load(...)["predictions"]``?"""
    for sub in ast.walk(node):
        if not (
            isinstance(sub, ast.Subscript)
            and isinstance(sub.slice, ast.Constant)
            and isinstance(sub.slice.value, str)
            and RECORDED_KEY.search(sub.slice.value)
        ):
            continue
        if isinstance(sub.value, ast.Name) and sub.value.id in loaded:
            return True
        if "np.load(" in ast.unparse(sub.value):
            return True
    return False


def exact_comparisons_with_stored_floats(source: str) -> list[int]:
    """Line numbers of exact comparisons against recorded arrays in ``source``."""
    tree = ast.parse(source)
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        loaded = _loaded_names(func)
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else None
                name = name or (node.func.id if isinstance(node.func, ast.Name) else None)
                if name in EXACT_CALLS and any(_recorded_operand(a, loaded) for a in node.args):
                    found.append(node.lineno)
            elif isinstance(node, ast.Compare) and any(isinstance(o, ast.Eq) for o in node.ops):
                if any(_recorded_operand(x, loaded) for x in [node.left, *node.comparators]):
                    found.append(node.lineno)
    return found


def test_the_check_finds_an_exact_comparison_with_recorded_predictions():
    bad = (
        "def test_x():\n"
        "    data = np.load(FIXTURES / 'm.npz')\n"
        "    np.testing.assert_array_equal(model(data['x']), data['expected'])\n"
        "    assert (np.load(p)['predictions'] == y).all()\n"
    )
    assert exact_comparisons_with_stored_floats(bad) == [3, 4]
    good = bad.replace("np.testing.assert_array_equal", "assert_within_ulps").replace(
        "assert (np.load(p)['predictions'] == y).all()", "assert_within_ulps(y, x)"
    )
    assert exact_comparisons_with_stored_floats(good) == []


def test_no_test_compares_exactly_with_stored_floats():
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in exact_comparisons_with_stored_floats(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "exact comparison with floats recorded on another run or machine (use "
        f"tests.conftest.assert_within_ulps): {', '.join(offenders)}"
    )
