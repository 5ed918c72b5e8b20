"""lower_gather: Gather on a constant table becomes OneHot -> MatMul, exactly for valid indices."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.onnx_passes import fuse_onehot, lower_gather


def _model(table, idx_type=TensorProto.INT32):
    graph = helper.make_graph(
        [helper.make_node("Gather", ["T", "idx"], ["y"], axis=0, name="lookup")],
        "g",
        [helper.make_tensor_value_info("idx", idx_type, [None, None])],
        [
            helper.make_tensor_value_info(
                "y", helper.np_dtype_to_tensor_dtype(table.dtype), [None, None, table.shape[1]]
            )
        ],
        [numpy_helper.from_array(table, "T")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"idx": x}
    )[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lowered_model_matches_for_valid_and_negative_indices(dtype):
    table = np.random.default_rng(0).normal(size=(30, 4)).astype(dtype)
    model = _model(table)
    x = np.array([[0, 29, 3, -1, -30]], np.int32)
    before = _run(model, x)
    result = lower_gather(model)
    assert len(result.applied) == 1
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "Gather" not in ops and "OneHot" in ops and "MatMul" in ops
    after = _run(model, x)
    assert after.dtype == before.dtype
    np.testing.assert_array_equal(before, after)


def test_out_of_range_gives_zero_rows_where_gather_raised():
    table = np.ones((5, 2), np.float32)
    model = _model(table)
    with pytest.raises(Exception, match="out of data bounds"):  # noqa: B017 (ORT's own exception type)
        _run(model, np.array([[7]], np.int32))
    lower_gather(model)
    np.testing.assert_array_equal(_run(model, np.array([[7, 1]], np.int32)), [[[0, 0], [1, 1]]])


def test_lower_then_fuse_round_trip_is_exact():
    table = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    model = _model(table)
    x = np.random.default_rng(2).integers(0, 40, size=(3, 9)).astype(np.int32)
    before = _run(model, x)
    lower_gather(model)
    assert fuse_onehot(model).applied
    np.testing.assert_array_equal(before, _run(model, x))


def test_refuses_non_finite_table_with_reason():
    table = np.ones((3, 2), np.float32)
    table[1, 0] = np.inf
    model = _model(table)
    result = lower_gather(model)
    assert result.applied == [] and "inf or NaN" in result.skipped[0]
