"""run_passes: names checked first, conflicts from the declarations, one cleanup after the last pass
(dead nodes out, topological order), subgraphs included."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import helper

from graphkit import GraphkitError
from graphkit.onnx_passes import PASSES, PassResult, describe_passes, graph, run_passes
from tests.onnx_passes.helpers import ops, parse, run

ONEHOT_CHAIN = """
    g (int64[N, L] idx) => (float[N, L, 2] y)
    <int64 depth = {3}, float[2] values = {0, 1}, float[3, 2] W = {1, 2, 3, 4, 5, 6}>
    {
        oh = OneHot <axis = -1> (idx, depth, values)
        y = MatMul(oh, W)
    }
"""

# t is read only inside the Loop body; dead_outer only by a dead node of the body; Abs by nobody.
LOOP = """
    g (float[N] x) => (float[N] y)
    <int64 trip = {3}, bool cond = {1}, float two = {2}>
    {
        t = Mul(x, two)
        dead_outer = Neg(x)
        unused = Abs(x)
        y = Loop(trip, cond, x) <body = step (int64 i, bool c, float[N] acc)
                                        => (bool c_out, float[N] acc_out) {
            c_out = Identity(c)
            acc_out = Add(acc, t)
            waste = Sub(acc, dead_outer)
        }>
    }
"""


def _pass(name, apply=None, conflicts=()):
    """A registered-pass stand-in; by default it changes nothing but says it did."""
    return SimpleNamespace(
        NAME=name,
        SUMMARY=f"{name} for tests",
        CONFLICTS=conflicts,
        apply=apply or (lambda model: PassResult(name, applied=["something"])),
    )


def _reverse(model):
    """Put the nodes in reverse order, the worst order a pass can leave."""
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return PassResult("reverse", applied=["reversed the nodes"])


def _ops(g) -> list[str]:
    return [n.op_type for n in g.node]


def _is_sorted(g) -> bool:
    """Every name a node reads, in its subgraphs too, is made before it (a main graph)."""
    known = {i.name for i in g.input} | {t.name for t in g.initializer}
    for node in g.node:
        if not graph.node_reads(node) <= known:
            return False
        known.update(node.output)
    return True


# --- names and conflicts -------------------------------------------------------------------


def test_unknown_name_lists_the_known_ones_and_runs_nothing():
    model = parse(ONEHOT_CHAIN)
    before = model.SerializeToString()
    with pytest.raises(GraphkitError) as info:
        run_passes(model, ["fuse_onehot", "fuse_onehots"])
    assert str(info.value) == (
        "unknown ONNX pass 'fuse_onehots': expected one of: " + ", ".join(PASSES)
    )
    assert model.SerializeToString() == before  # the valid first name did not run either


@pytest.mark.parametrize(
    "names", [["fuse_onehot", "lower_gather"], ["lower_gather", "fuse_onehot"]]
)
def test_declared_conflicts_are_refused_naming_both(names):
    model = parse(ONEHOT_CHAIN)
    before = model.SerializeToString()
    with pytest.raises(GraphkitError, match="pick one") as info:
        run_passes(model, names)
    message = str(info.value)
    assert names[0] in message and names[1] in message and "undo each other" in message
    assert model.SerializeToString() == before


def test_a_conflict_declared_on_one_side_is_enough():
    registry = {"a": _pass("a", conflicts=("b",)), "b": _pass("b"), "c": _pass("c")}
    model = parse(ONEHOT_CHAIN)
    for names in (["a", "b"], ["b", "a"], ["b", "c", "a"]):
        with pytest.raises(GraphkitError, match="a and b|b and a"):
            run_passes(model, names, registry)
    assert [r.name for r in run_passes(model, ["a", "c"], registry)] == ["a", "c"]


@pytest.mark.parametrize("name", list(PASSES))
def test_every_registered_pass_declares_the_protocol(name):
    p = PASSES[name]
    assert p.NAME == name
    assert p.SUMMARY and "\n" not in p.SUMMARY and len(p.SUMMARY) <= 100
    assert set(p.CONFLICTS) <= set(PASSES) - {name}
    assert callable(p.apply)
    assert {"name": name, "summary": p.SUMMARY} in describe_passes()


def test_describe_passes_lists_the_registry_in_order():
    assert [d["name"] for d in describe_passes()] == list(PASSES)
    assert {"fuse_onehot", "lower_gather"} <= set(PASSES)


def test_listing_passes_imports_neither_onnx_nor_numpy_nor_tensorflow():
    code = (
        "import sys, graphkit.onnx_passes as p; p.describe_passes(); "
        "print(sorted(m for m in ('onnx', 'numpy', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- one cleanup, after the last pass ------------------------------------------------------


def test_passes_leave_dead_nodes_and_the_runner_cleans_up():
    model = parse(ONEHOT_CHAIN)
    result = PASSES["fuse_onehot"].apply(model)  # the pass alone: old chain detached, still there
    assert result.applied and {"OneHot", "MatMul", "Gather"} <= set(ops(model))
    model = parse(ONEHOT_CHAIN)
    run_passes(model, ["fuse_onehot"])
    assert "OneHot" not in ops(model) and "MatMul" not in ops(model)
    assert {t.name for t in model.graph.initializer}.isdisjoint({"W", "values"})


def test_cleanup_runs_once_after_all_passes(monkeypatch):
    calls = []
    real = graph.cleanup
    monkeypatch.setattr(graph, "cleanup", lambda g: calls.append(g) or real(g))
    seen = []

    def record(name):
        def apply(model):
            seen.append((name, len(calls)))  # cleanup has not run yet when a pass runs
            return _reverse(model)

        return apply

    registry = {"one": _pass("one", record("one")), "two": _pass("two", record("two"))}
    model = parse(LOOP)
    x = np.array([1, 2], np.float32)
    before = run(model, x=x)
    results = run_passes(model, ["one", "two"], registry)
    assert [r.name for r in results] == ["reverse", "reverse"]
    assert seen == [("one", 0), ("two", 0)] and len(calls) == 1
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(run(model, x=x)["y"], before["y"])


def test_nothing_applied_leaves_the_model_untouched():
    model = parse(LOOP)  # holds dead nodes, but no pass changed anything
    before = model.SerializeToString()
    results = run_passes(model, ["lower_gather"])
    assert results[0].applied == [] and model.SerializeToString() == before


# --- parameters and the deploy phase -------------------------------------------------------


def test_deploy_passes_run_last_on_a_sorted_graph(monkeypatch):
    calls = []
    real = graph.cleanup
    monkeypatch.setattr(graph, "cleanup", lambda g: calls.append(g) or real(g))
    seen = []

    def deploy(model, size=None):
        seen.append(("deploy", size, _is_sorted(model.graph), len(calls)))
        return PassResult("deploy", applied=["deployed"])

    registry = {
        "rewrite": _pass("rewrite", _reverse),
        "deploy": SimpleNamespace(
            NAME="deploy",
            SUMMARY="a deploy pass",
            CONFLICTS=(),
            PHASE="deploy",
            PARAMS={"size": "a number"},
            apply=deploy,
        ),
    }
    model = parse(LOOP)
    results = run_passes(model, ["deploy", "rewrite"], registry, params={"deploy": {"size": 3}})
    assert [r.name for r in results] == ["reverse", "deploy"]  # the deploy pass ran last
    assert seen == [("deploy", 3, True, 1)]  # on a graph cleaned after the rewrite
    assert len(calls) == 2 and _is_sorted(model.graph)


def test_parameters_are_checked_before_any_pass_runs():
    checked = []

    def check_params(n=1):
        checked.append(n)
        if n < 1:
            raise GraphkitError(f"n must be > 0, got {n}")

    registry = {
        "p": SimpleNamespace(
            NAME="p",
            SUMMARY="takes n",
            CONFLICTS=(),
            PARAMS={"n": "a positive number"},
            check_params=check_params,
            apply=lambda model, n=1: PassResult("p"),
        ),
        "q": _pass("q"),
    }
    model = parse(ONEHOT_CHAIN)
    before = model.SerializeToString()
    with pytest.raises(GraphkitError, match="n must be > 0, got 0"):
        run_passes(model, ["q", "p"], registry, params={"p": {"n": 0}})
    with pytest.raises(GraphkitError, match="the ONNX pass q has no parameter 'n' .*none"):
        run_passes(model, ["q"], registry, params={"q": {"n": 1}})
    assert model.SerializeToString() == before and checked == [0]


# --- subgraphs and order -------------------------------------------------------------------


def test_cleanup_recurses_into_a_loop_body_that_reads_an_outer_tensor():
    model = parse(LOOP)
    x = np.array([1, 2], np.float32)
    before = run(model, x=x)
    run_passes(model, ["noop"], {"noop": _pass("noop")})
    onnx.checker.check_model(model, full_check=True)
    # Mul makes t, read only inside the body: kept. Neg fed only the body's dead Sub: gone too.
    assert ops(model) == ["Mul", "Loop"]
    body = model.graph.node[1].attribute[0].g
    assert _ops(body) == ["Identity", "Add"]
    np.testing.assert_array_equal(run(model, x=x)["y"], before["y"])


def test_nested_bodies_are_cleaned_and_keep_what_the_innermost_reads():
    model = parse(
        """
        g (float[N] x) => (float[N] y)
        <int64 trip = {2}, bool cond = {1}, float two = {2}>
        {
            t = Mul(x, two)
            y = Loop(trip, cond, x) <body = outer (int64 i, bool c, float[N] acc)
                                            => (bool c_out, float[N] acc_out) {
                c_out = Identity(c)
                gone = Neg(acc)
                acc_out = Loop(trip, cond, acc) <body = inner (int64 j, bool d, float[N] a)
                                                          => (bool d_out, float[N] a_out) {
                    d_out = Identity(d)
                    s = Add(a, t)
                    a_out = Neg(s)
                    also_gone = Abs(a)
                }>
            }>
        }
        """
    )
    x = np.array([1, -3], np.float32)
    before = run(model, x=x)
    _reverse(model)
    outer_body = model.graph.node[0].attribute[0].g
    _reverse(SimpleNamespace(graph=outer_body))
    _reverse(SimpleNamespace(graph=outer_body.node[0].attribute[0].g))  # now Abs, Neg, Add, ...
    run_passes(model, ["noop"], {"noop": _pass("noop")})
    onnx.checker.check_model(model, full_check=True)
    assert ops(model) == ["Mul", "Loop"]
    outer_body = model.graph.node[1].attribute[0].g
    # reversed, and stable: Loop and Identity are independent and keep that order
    assert _ops(outer_body) == ["Loop", "Identity"]
    assert _ops(outer_body.node[0].attribute[0].g) == ["Add", "Neg", "Identity"]
    np.testing.assert_array_equal(run(model, x=x)["y"], before["y"])


def test_nodes_come_out_in_topological_order_counting_subgraph_reads():
    model = parse(LOOP)
    x = np.array([3, 4], np.float32)
    before = run(model, x=x)
    run_passes(model, ["reverse"], {"reverse": _pass("reverse", _reverse)})
    # the Loop came first after reversing; the Mul its body reads must now precede it
    assert _is_sorted(model.graph) and ops(model) == ["Mul", "Loop"]
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(run(model, x=x)["y"], before["y"])


def test_the_sort_is_stable():
    """Nodes already in order keep their order: independent nodes are not shuffled."""
    model = parse(
        """
        g (float[N] x) => (float[N] a, float[N] b, float[N] c)
        {
            c = Neg(x)
            a = Abs(x)
            b = Relu(a)
        }
        """
    )
    before = model.SerializeToString()
    assert graph.topological_sort(model.graph)
    assert model.SerializeToString() == before


def test_a_cycle_is_left_as_it_was():
    g = helper.make_graph(
        [
            helper.make_node("Neg", ["b"], ["a"]),
            helper.make_node("Abs", ["a"], ["b"]),
        ],
        "cycle",
        [],
        [helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])],
    )
    before = g.SerializeToString()
    assert graph.topological_sort(g) is False and g.SerializeToString() == before
