"""fuse_onehot: OneHot -> [Cast] -> [Reshape] -> MatMul [-> Add] becomes one Gather, exactly."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.onnx_passes import fuse_onehot


def _model(depth=6, units=3, reshape=False, bias=True, values=(0.0, 1.0), seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(depth, units)).astype(np.float32)
    b = rng.normal(size=(units,)).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array(depth, np.int64), "depth"),
        numpy_helper.from_array(np.array(values, np.float32), "values"),
        numpy_helper.from_array(np.array([-1, depth], np.int64), "flat"),
    ]
    nodes = [helper.make_node("OneHot", ["idx", "depth", "values"], ["oh"], axis=-1, name="onehot")]
    cur = "oh"
    if reshape:
        nodes.append(helper.make_node("Reshape", ["oh", "flat"], ["oh2"]))
        cur = "oh2"
    nodes.append(helper.make_node("MatMul", [cur, "W"], ["mm"]))
    out = "mm"
    if bias:
        nodes.append(helper.make_node("Add", ["mm", "b"], ["y"]))
        out = "y"
    out_shape = [None, units] if reshape else [None, None, units]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [None, None])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"idx": x})[0]


@pytest.mark.parametrize("reshape", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_model_is_exactly_equal_including_out_of_range_indices(reshape, bias):
    model = _model(reshape=reshape, bias=bias)
    x = np.array([[0, 5, 2, -1, -6, 6, -7, 100]], np.int64)  # valid, wrapped, and out-of-range
    before = _run(model, x)
    result = fuse_onehot(model)
    assert len(result.applied) == 1 and not result.skipped
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "OneHot" not in ops and "MatMul" not in ops and ops.count("Gather") == 1
    after = _run(model, x)
    assert before.dtype == after.dtype
    np.testing.assert_array_equal(before, after)


def test_random_indices_property():
    model = _model(depth=50, units=7, bias=True, seed=3)
    x = np.random.default_rng(0).integers(-60, 60, size=(4, 33)).astype(np.int64)
    before = _run(model, x)
    fuse_onehot(model)
    np.testing.assert_array_equal(before, _run(model, x))


def test_no_match_states_the_reason():
    model = _model(values=(0.0, 2.0))
    result = fuse_onehot(model)
    assert result.applied == []
    assert result.skipped == ["onehot: values are [0.0, 2.0], not [0, 1]"]
    assert [n.op_type for n in model.graph.node] == ["OneHot", "MatMul", "Add"]
