"""onehot_arithmetic: OneHot (and, with tables=True, Gather on a table) as Relu(1 - d*d).

Every graph is written in onnx's text format, rewritten, fully checked, and run in
onnxruntime against the original on every index of [0, V): the same bits (max abs diff 0.0).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphkit import GraphkitError
from graphkit.onnx_passes import resolve_passes, run_passes
from graphkit.onnx_passes.onehot_arithmetic import check_params
from tests.onnx_passes.helpers import ops, parse, run

ONEHOT = """
    g ({itype}[N, L] idx) => ({vtype}[N, L, {depth}] y)
    <{itype} depth = {{{depth}}}>
    {{
        y = OneHot <axis = -1> (idx, depth, values)
    }}
"""

GATHER = """
    g (int32[N, L] idx) => (float[N, L, 3] y)
    {
        y = Gather <axis = 0> (table, idx)
    }
"""

ARITHMETIC = ["Cast", "Unsqueeze", "Sub", "Mul", "Sub", "Relu"]


def _onehot(depth=7, itype="int64", vtype="float", values=(0, 1)):
    # values as an initializer: the text format has no float16 literals
    dtype = {"float": np.float32, "float16": np.float16}[vtype]
    text = ONEHOT.format(depth=depth, itype=itype, vtype=vtype)
    return parse(text, values=np.array(values, dtype))


def _every_index(depth, dtype="int64", width=None):
    x = np.arange(depth, dtype=dtype)
    width = width or depth
    return np.resize(x, (-(-depth // width), width))


def _bitwise_same(model, x, names=("onehot_arithmetic",), params=None):
    before = run(model, idx=x)
    [result] = run_passes(model, list(names), params=params)
    onnx.checker.check_model(model, full_check=True)
    after = run(model, idx=x)
    for name, want in before.items():
        assert after[name].dtype == want.dtype
        assert float(np.abs(after[name].astype("f8") - want.astype("f8")).max()) == 0.0
        np.testing.assert_array_equal(after[name], want)
    return result


@pytest.mark.parametrize("itype", ["int32", "int64"])
@pytest.mark.parametrize("depth", [1, 2, 7, 5000])
def test_onehot_is_exact_for_every_index_in_range(depth, itype):
    model = _onehot(depth, itype)
    result = _bitwise_same(model, _every_index(depth, itype, width=min(depth, 100)))
    assert ops(model) == ARITHMETIC
    assert result.applied == [
        f"y: OneHot({depth}) -> Relu(1 - (i - arange({depth}))^2) "
        "(Cast, Unsqueeze, Sub, Mul, Sub, Relu)"
    ]


def test_out_of_range_indices_give_zero_rows():
    """Past the end like OneHot; negative ones too, where ONNX's OneHot wraps them."""
    model = _onehot(5)
    run_passes(model, ["onehot_arithmetic"])
    y = run(model, idx=np.array([[5, 6, 1000, -1, -5, -(2**31)]], np.int64))["y"]
    assert not y.any()


def test_float16_values_keep_their_type():
    model = _onehot(6, vtype="float16")
    _bitwise_same(model, _every_index(6))
    assert ops(model) == [*ARITHMETIC, "Cast"]


def test_values_other_than_zero_one_are_left_alone():
    model = _onehot(4, values=(-1, 3))
    [result] = run_passes(model, ["onehot_arithmetic"])
    assert ops(model) == ["OneHot"] and not result.applied
    assert result.skipped == ["y: values are [-1.0, 3.0], not [0, 1]"]


@pytest.mark.parametrize("rows", [1, 9, 3000])
def test_tables_gather_becomes_matmul_exact_for_every_index(rows):
    table = np.random.default_rng(rows).normal(size=(rows, 3)).astype(np.float32)
    model = parse(GATHER, table=table)
    x = _every_index(rows, "int32", width=min(rows, 100))
    result = _bitwise_same(model, x, params={"onehot_arithmetic": {"tables": True}})
    assert ops(model) == [*ARITHMETIC, "MatMul"]
    assert result.applied == [
        f"y: Gather on a {rows}x3 table -> arithmetic one-hot ({rows}) -> MatMul"
    ]


def test_gather_stays_without_tables_and_bad_tables_are_named():
    table = np.ones((4, 3), np.float32)
    model = parse(GATHER, table=table)
    [result] = run_passes(model, ["onehot_arithmetic"])
    assert ops(model) == ["Gather"] and not result.applied and not result.skipped
    table[2, 1] = np.inf
    model = parse(GATHER, table=table)
    [result] = run_passes(
        model, ["onehot_arithmetic"], params={"onehot_arithmetic": {"tables": True}}
    )
    assert ops(model) == ["Gather"]
    assert result.skipped == ["y: the table holds inf or NaN (0 * inf is NaN)"]
    model = parse(GATHER.replace("float[N, L, 3]", "int64[N, L, 3]"), table=np.ones((4, 3), "i8"))
    [result] = run_passes(
        model, ["onehot_arithmetic"], params={"onehot_arithmetic": {"tables": True}}
    )
    assert result.skipped == ["y: table dtype int64 is not floating point"]


def test_tables_parameter_is_checked_before_anything_runs():
    with pytest.raises(GraphkitError, match="tables must be True or False"):
        resolve_passes(["onehot_arithmetic"], params={"onehot_arithmetic": {"tables": "yes"}})
    check_params()
    check_params(tables=True)
