"""int32_indices: every Gather/OneHot index int32, int64 inputs too where they only feed indices.

Each graph is written in onnx's text format, rewritten, fully checked, and run in onnxruntime
with int32 inputs against the original with int64 ones: the same bits, out-of-range and
negative indices included where the original takes them.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from graphkit import GraphkitError
from graphkit.onnx_passes import run_passes
from graphkit.onnx_passes.int32_indices import check_index_dtype
from tests.onnx_passes.helpers import KERAS_WRAP, assert_int32_indices, elem_types, ops, parse, run

TABLE = np.arange(10, dtype=np.float32).reshape(5, 2)


ONEHOT = """
    g (int64[N, L] idx) => (float[N, L, 2] y)
    <int64 depth = {5}, float[2] values = {0, 1}>
    {
        oh = OneHot <axis = -1> (idx, depth, values)
        y = MatMul(oh, table)
    }
"""


def rewritten(model, **feeds):
    """Run int32_indices; the model stays valid and gives the same outputs on int32 feeds."""
    before = run(model, **feeds)
    [result] = run_passes(model, ["int32_indices"])
    onnx.checker.check_model(model, full_check=True)
    after = run(
        model, **{k: v.astype(np.int32) if v.dtype.kind == "i" else v for k, v in feeds.items()}
    )
    assert list(after) == list(before)
    for name, want in before.items():
        assert after[name].dtype == want.dtype, name
        np.testing.assert_array_equal(after[name], want, err_msg=name)
    return result


def test_keras_wrap_on_an_int64_input_becomes_int32_end_to_end():
    model = parse(KERAS_WRAP, table=TABLE)
    idx = np.array([[0, 4, -1, -5, 2, 3]], np.int64)  # negative indices wrap like Keras'
    result = rewritten(model, idx=idx)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    assert_int32_indices(model)
    assert "input idx: int64 -> int32 (read only as indices)" in result.applied
    assert any("1 Gather/OneHot index operand(s) int64 -> int32" in a for a in result.applied)
    assert any("can no longer be fed" in n for n in result.notes)  # the input contract
    # no int64 is left anywhere on the index path
    types = elem_types(model)
    assert TensorProto.INT64 not in {types[o] for n in model.graph.node for o in n.output}


def test_onehot_index_and_depth_become_int32_out_of_range_rows_kept():
    model = parse(ONEHOT, table=TABLE)
    idx = np.array([[0, 4, -1, -5, 5, 99, -6]], np.int64)  # OneHot: zero rows out of range
    rewritten(model, idx=idx)
    assert_int32_indices(model)


def test_an_int64_input_read_as_data_is_refused_naming_the_node():
    model = parse(
        """
        g (int64[N, 3] idx) => (float[N, 3, 2] y, float[N, 2] z)
        {
            y = Gather <axis = 0> (table, idx)
            f = Cast <to = 1> (idx)
            z = MatMul(f, w)
        }
        """,
        table=TABLE,
        w=np.ones((3, 2), np.float32),
    )
    before = model.SerializeToString()
    with pytest.raises(GraphkitError) as info:
        run_passes(model, ["int32_indices"])
    message = str(info.value)
    assert "input 'idx' is int64 and feeds MatMul 'z'" in message
    assert "reads its values as data" in message and "stays int64" in message
    assert model.SerializeToString() == before  # refused before any change


def test_an_int64_input_that_is_a_model_output_is_refused():
    model = parse(
        """
        g (int64[N] idx) => (float[N, 2] y, int64[N] same)
        {
            y = Gather <axis = 0> (table, idx)
            same = Identity(idx)
        }
        """,
        table=TABLE,
    )
    with pytest.raises(GraphkitError, match="returned as the model output 'same'"):
        run_passes(model, ["int32_indices"])


def test_a_mask_and_a_narrowing_cast_do_not_stop_an_input():
    """Compared with 0 (a mask), cast to int32 by the model itself: only indices matter."""
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 2] y, float[N, L] m, float[N, L] c)
        <int64 zero = {0}>
        {
            y = Gather <axis = 0> (table, idx)
            mask = Equal(idx, zero)
            m = Cast <to = 1> (mask)
            small = Cast <to = 6> (idx)
            c = Cast <to = 1> (small)
        }
        """,
        table=TABLE,
    )
    rewritten(model, idx=np.array([[0, 3, 4, 0]], np.int64))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    assert_int32_indices(model)


def test_an_index_made_by_another_op_is_cast_where_it_enters_and_said_so():
    model = parse(
        """
        g (float[N, 4] x) => (float[2] y)
        <int64 one = {1}>
        {
            s = Shape(x)
            i = Gather <axis = 0> (s, one)
            y = Gather <axis = 0> (table, i)
        }
        """,
        table=TABLE,
    )
    result = rewritten(model, x=np.zeros((3, 4), np.float32))
    assert_int32_indices(model)
    assert any("'i' (made by Gather" in n and "below 2**31" in n for n in result.notes)


def test_readers_that_need_int64_get_an_exact_cast_back():
    model = parse(
        """
        g (int32[N] idx) => (float[N, 2] y, int64[N] doubled)
        <int64 one = {1}, int64 two = {2}>
        {
            i64 = Cast <to = 7> (idx)
            row = Add(i64, one)
            y = Gather <axis = 0> (table, row)
            doubled = Mul(i64, two)
        }
        """,
        table=TABLE,
    )
    result = rewritten(model, idx=np.array([0, 3, -2], np.int32))
    assert_int32_indices(model)
    assert any("cast back to int64" in a for a in result.applied)


def test_a_loop_body_reading_a_retyped_tensor_reads_an_int64_copy():
    model = parse(
        """
        g (int32[N] idx) => (float[N, 2] y, int64[N] total)
        <int64 trip = {2}, bool cond = {1}, int64 zero = {0}>
        {
            i64 = Cast <to = 7> (idx)
            y = Gather <axis = 0> (table, i64)
            start = Mul(i64, zero)
            total = Loop(trip, cond, start) <body = step (int64 it, bool c, int64[N] acc)
                                                   => (bool c_out, int64[N] acc2) {
                c_out = Identity(c)
                acc2 = Add(acc, i64)
            }>
        }
        """,
        table=TABLE,
    )
    rewritten(model, idx=np.array([1, 4, 2], np.int32))
    assert_int32_indices(model)


def test_fuse_onehot_runs_first_whatever_the_order_and_its_gather_gets_int32():
    model = parse(ONEHOT, table=TABLE)
    idx = np.array([[0, 4, -1, -5, 5, 99]], np.int64)
    before = run(model, idx=idx)
    results = run_passes(model, ["int32_indices", "fuse_onehot"])  # deploy passes run last
    assert [r.name for r in results] == ["fuse_onehot", "int32_indices"]
    onnx.checker.check_model(model, full_check=True)
    assert "OneHot" not in ops(model) and "Gather" in ops(model)
    assert_int32_indices(model)
    after = run(model, idx=idx.astype(np.int32))
    np.testing.assert_array_equal(after["y"], before["y"])


def test_a_model_already_in_int32_is_left_as_it_is():
    model = parse(
        """
        g (int32[N] idx) => (float[N, 2] y)
        { y = Gather <axis = 0> (table, idx) }
        """,
        table=TABLE,
    )
    before = model.SerializeToString()
    [result] = run_passes(model, ["int32_indices"])
    assert not result.applied and model.SerializeToString() == before


@pytest.mark.parametrize("value", ["int64", "int16", "INT32"])
def test_index_dtype_accepts_only_int32(value):
    check_index_dtype(None)
    check_index_dtype("int32")
    with pytest.raises(GraphkitError, match=f"--index-dtype {value}: expected int32"):
        check_index_dtype(value)


def test_an_int64_loop_counter_used_as_an_index_in_a_body_is_cast_there():
    model = parse(
        """
        g (float[2] x) => (float[2] y)
        <int64 trip = {3}, bool cond = {1}>
        {
            y = Loop(trip, cond, x) <body = step (int64 i, bool c, float[2] acc)
                                            => (bool c_out, float[2] acc2) {
                c_out = Identity(c)
                row = Gather <axis = 0> (table, i)
                acc2 = Add(acc, row)
            }>
        }
        """,
        table=TABLE,
    )
    result = rewritten(model, x=np.zeros(2, np.float32))
    body = model.graph.node[0].attribute[0].g
    [gather] = [n for n in body.node if n.op_type == "Gather"]
    assert gather.input[1] == "i_int32" and "Cast" in [n.op_type for n in body.node]
    assert any(
        "1 Gather/OneHot index operand(s) inside Loop/If bodies" in a for a in result.applied
    )
