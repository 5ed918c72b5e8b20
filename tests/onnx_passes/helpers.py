"""Shared by the ONNX pass tests: models from onnx's text format, runs in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
from onnx import numpy_helper

from graphkit.onnx_passes import run_passes

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def parse(text: str, **initializers: np.ndarray) -> onnx.ModelProto:
    """A model from onnx's text format; ``initializers`` are added as exact numpy tensors.

    Big or float16 tables go through numpy (the text format has no float16 literals).
    """
    model = onnx.parser.parse_model(HEADER + text)
    for name, value in initializers.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    onnx.checker.check_model(model, full_check=True)  # the test's own graph must be valid
    return model


def run(model: onnx.ModelProto, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def run_checked(model: onnx.ModelProto, names: list[str], **feeds: np.ndarray):
    """Run passes ``names`` on ``model``; assert the result is valid and computes the same outputs.

    Equality is exact, output by output (names, dtypes, shapes and bits), on ``feeds``.
    Returns the pass results.
    """
    before = run(model, **feeds)
    results = run_passes(model, names)
    onnx.checker.check_model(model, full_check=True)
    after = run(model, **feeds)
    assert list(after) == list(before)
    for name, want in before.items():
        assert after[name].dtype == want.dtype, name
        np.testing.assert_array_equal(after[name], want, err_msg=name)
    return results


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the main graph, as onnx's strict shape inference finds it."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def assert_int32_indices(model: onnx.ModelProto) -> None:
    """No int64 index reaches a Gather or a OneHot (OneHot's depth included)."""
    from onnx import TensorProto

    types = elem_types(model)
    for node in model.graph.node:
        if node.op_type == "Gather":
            assert types[node.input[1]] == TensorProto.INT32, node.name
        if node.op_type == "OneHot":
            assert types[node.input[0]] == TensorProto.INT32, node.name
            assert types[node.input[1]] == TensorProto.INT32, node.name


def all_static(model: onnx.ModelProto) -> bool:
    """Every tensor of the main graph has a shape with no unknown dimension, as onnx's own
    shape inference finds it (nothing else consulted)."""
    g = onnx.shape_inference.infer_shapes(model).graph
    infos = {v.name: v for v in (*g.input, *g.value_info, *g.output)}
    if any(name not in infos for node in g.node for name in node.output if name):
        return False
    return all(
        d.HasField("dim_value") for v in infos.values() for d in v.type.tensor_type.shape.dim
    )


# What tf2onnx writes for Keras' Embedding on an int64 input: the negative-index wrap
# (compare as float, multiply by 0/1 masks) before the Gather on ``table``.
KERAS_WRAP = """
    g (int64[N, L] idx) => (float[N, L, 2] y)
    <int64 vocab = {5}, float zero = {0}>
    {
        f = Cast <to = 1> (idx)
        neg = Less(f, zero)
        pos = Not(neg)
        pos64 = Cast <to = 7> (pos)
        neg64 = Cast <to = 7> (neg)
        kept = Mul(idx, pos64)
        plus = Add(idx, vocab)
        wrapped = Mul(neg64, plus)
        row = Add(wrapped, kept)
        y = Gather <axis = 0> (table, row)
    }
"""
