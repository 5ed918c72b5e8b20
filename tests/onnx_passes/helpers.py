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
