"""fuse_onehot: OneHot -> [Cast] -> [Reshape] -> MatMul [-> Add] becomes one Gather, exactly.

Every graph is written in onnx's text format; every fused graph passes the full checker and
gives the same bits as the unfused one in onnxruntime, out-of-range indices included.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.onnx_passes import run_passes
from graphkit.onnx_passes.fuse_onehot import valid_rows
from tests.onnx_passes.helpers import ops, parse, run_checked

DEPTH, UNITS = 6, 3
# valid, wrapped (-depth <= i < 0), and out of range on both sides
EDGE_INDICES = np.array([[0, 5, 2, -1, -6, 6, -7, 100]], np.int64)


def _weights(seed=0, depth=DEPTH, units=UNITS):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(depth, units)).astype(np.float32), rng.normal(size=units).astype(
        np.float32
    )


def _chain(reshape=False, bias=True, values="0, 1", depth=DEPTH, units=UNITS, seed=0):
    """OneHot -> [Reshape to 2-D] -> MatMul(W) [-> Add(b)], as tf2onnx writes a Dense on one-hots."""
    w, b = _weights(seed, depth, units)
    nodes = ["oh = OneHot <axis = -1> (idx, depth, values)"]
    cur = "oh"
    if reshape:
        nodes.append("oh2 = Reshape(oh, flat)")
        cur = "oh2"
    nodes.append(f"{'mm' if bias else 'y'} = MatMul({cur}, W)")
    if bias:
        nodes.append("y = Add(mm, b)")
    out = "float[M, {u}]" if reshape else "float[N, L, {u}]"
    text = f"""
    g (int64[N, L] idx) => ({out.format(u=units)} y)
    <int64 depth = {{{depth}}}, float[2] values = {{{values}}}, int64[2] flat = {{-1, {depth}}}>
    {{
        {chr(10).join(nodes)}
    }}
    """
    return parse(text, W=w, **({"b": b} if bias else {}))


@pytest.mark.parametrize("reshape", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_model_is_exactly_equal_including_out_of_range_indices(reshape, bias):
    model = _chain(reshape=reshape, bias=bias)
    [result] = run_checked(model, ["fuse_onehot"], idx=EDGE_INDICES)
    assert len(result.applied) == 1 and not result.skipped
    assert "OneHot" not in ops(model) and "MatMul" not in ops(model)
    assert ops(model).count("Gather") == 1
    # the extra zero/bias row only serves out-of-range indices: the vocabulary stays DEPTH
    assert list(valid_rows(model).values()) == [DEPTH]


def test_random_indices_property():
    model = _chain(depth=50, units=7, seed=3)
    x = np.random.default_rng(0).integers(-60, 60, size=(4, 33)).astype(np.int64)
    run_checked(model, ["fuse_onehot"], idx=x)


def test_cast_on_weight_chain_of_mixed_precision_is_fused():
    """Mixed precision: the one-hot is cast to float16 and so is the float32 kernel."""
    w, _ = _weights(seed=1)
    b16 = np.random.default_rng(2).normal(size=UNITS).astype(np.float16)
    model = parse(
        """
        g (int32[N, L] idx) => (float16[N, L, 3] y)
        <int32 depth = {6}, float[2] values = {0, 1}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            oh16 = Cast <to = 10> (oh)
            w16 = Cast <to = 10> (W)
            mm = MatMul(oh16, w16)
            y = Add(mm, b16)
        }
        """,
        W=w,
        b16=b16,
    )
    [result] = run_checked(model, ["fuse_onehot"], idx=EDGE_INDICES.astype(np.int32))
    assert len(result.applied) == 1
    assert "-> Add fused" in result.applied[0]  # the float16 bias was folded into the table
    assert not {"OneHot", "MatMul"} & set(ops(model))
    # the kernel's Cast and the bias Add went with the MatMul: only the indices' Cast is left
    reads = {name for n in model.graph.node for name in n.input}
    assert not {"W", "w16", "mm", "b16"} & reads and ops(model).count("Cast") == 1
    # the table is float16, like the Cast made the kernel
    table = next(t for t in model.graph.initializer if t.name.endswith("fused_table"))
    assert table.data_type == 10 and list(table.dims) == [DEPTH + 1, UNITS]


SHAPE_READER = """
    g (int64[N, L] idx) => (float[N, L, 3] y)
    <int64 depth = {6}, float[2] values = {0, 1}, int64[2] flat = {-1, 6},
     int64[1] start = {0}, int64[1] stop = {-1}, int64[1] units = {3}>
    {
        oh = OneHot <axis = -1> (idx, depth, values)
        shape = Shape(oh)
        oh2 = Reshape(oh, flat)
        mm = MatMul(oh2, W)
        y2 = Add(mm, b)
        lead = Slice(shape, start, stop)
        target = Concat <axis = 0> (lead, units)
        y = Reshape(y2, target)
    }
"""


def test_shape_reader_chain_is_fused():
    """tf2onnx's Dense on a 3-D one-hot: flatten, MatMul, and reshape back by Shape(one-hot)."""
    w, b = _weights(seed=4)
    model = parse(SHAPE_READER, W=w, b=b)
    x = np.random.default_rng(5).integers(-8, 8, size=(3, 5)).astype(np.int64)
    [result] = run_checked(model, ["fuse_onehot"], idx=x)
    assert len(result.applied) == 1
    # Shape(one-hot) is computed from the indices now: nothing reads a one-hot any more
    assert "OneHot" not in ops(model) and "MatMul" not in ops(model)
    shape_inputs = [n.input[0] for n in model.graph.node if n.op_type == "Shape"]
    assert shape_inputs == ["idx"]


def test_shape_reader_with_start_is_refused_with_reason():
    w, b = _weights()
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 3] y, int64[2] s)
        <int64 depth = {6}, float[2] values = {0, 1}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            s = Shape <start = 1> (oh)
            mm = MatMul(oh, W)
            y = Add(mm, b)
        }
        """,
        W=w,
        b=b,
    )
    before = model.SerializeToString()
    [result] = run_passes(model, ["fuse_onehot"])
    assert result.applied == []
    assert result.skipped == ["oh: a Shape node with start/end reads the one-hot"]
    assert model.SerializeToString() == before


def test_no_match_states_the_reason():
    model = _chain(values="0, 2")
    [result] = run_passes(model, ["fuse_onehot"])
    assert result.applied == []
    assert result.skipped == ["oh: values are [0.0, 2.0], not [0, 1]"]
    assert ops(model) == ["OneHot", "MatMul", "Add"]


def test_one_hot_read_elsewhere_is_refused():
    w, b = _weights()
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 3] y, float[N, L, 6] oh)
        <int64 depth = {6}, float[2] values = {0, 1}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            mm = MatMul(oh, W)
            y = Add(mm, b)
        }
        """,
        W=w,
        b=b,
    )
    [result] = run_passes(model, ["fuse_onehot"])
    assert result.skipped == ["oh: its output does not feed one chain to a MatMul"]


def test_one_hot_read_inside_a_loop_body_is_refused():
    """A subgraph reading the one-hot is a second consumer: fusing would compute both."""
    w, b = _weights()
    model = parse(
        """
        g (int64[N, L] idx, float[N, L, 6] a0) => (float[N, L, 3] y, float[N, L, 6] acc)
        <int64 depth = {6}, float[2] values = {0, 1}, int64 trip = {2}, bool cond = {1}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            mm = MatMul(oh, W)
            y = Add(mm, b)
            acc = Loop(trip, cond, a0) <body = step (int64 i, bool c, float[N, L, 6] a)
                                                 => (bool c_out, float[N, L, 6] a_out) {
                c_out = Identity(c)
                a_out = Add(a, oh)
            }>
        }
        """,
        W=w,
        b=b,
    )
    [result] = run_passes(model, ["fuse_onehot"])
    assert result.applied == [] and "does not feed one chain" in result.skipped[0]


def test_a_table_read_by_two_one_hots_is_fused_once():
    """A shared Embedding: both lookups read the same weight, and one fused table serves both."""
    w, _ = _weights()
    model = parse(
        """
        g (int64[N] a, int64[N] b) => (float[N, 3] ya, float[N, 3] yb)
        <int64 depth = {6}, float[2] values = {0, 1}>
        {
            oa = OneHot <axis = -1> (a, depth, values)
            ob = OneHot <axis = -1> (b, depth, values)
            ya = MatMul(oa, W)
            yb = MatMul(ob, W)
        }
        """,
        W=w,
    )
    [result] = run_passes(model, ["fuse_onehot"])
    assert len(result.applied) == 2
    tables = [t for t in model.graph.initializer if tuple(t.dims) == (7, 3)]
    assert len(tables) == 1
    assert [n.op_type for n in model.graph.node].count("Gather") == 2
