"""fix_shapes: the named inputs fixed, shape arithmetic folded, no dynamic dimension left.

Graphs in onnx's text format; each rewritten graph passes the full checker and gives the
same bits in onnxruntime; "static" is what onnx's own shape inference finds.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphkit import GraphkitError
from graphkit.onnx_passes import run_passes
from graphkit.onnx_passes.fix_shapes import (
    dynamic_tensors,
    normalise_shapes,
    parse_fixed_shape,
    parse_fixed_shapes,
)
from tests.onnx_passes.helpers import all_static, ops, parse, run

# What tf2onnx writes for a Dense on the last axis of a (batch, steps, features) tensor:
# the output shape is computed from Shape(x) at run time.
TENSORDOT = """
    g (float[N, L, 3] x) => (float[N, L, 2] y)
    <int64[1] keep = {0}, int64[1] two = {2}, int64[2] flat = {-1, 3}, int64[1] zero = {0},
     int64[1] end = {2}>
    {
        s = Shape(x)
        lead = Slice(s, zero, end)
        target = Concat <axis = 0> (lead, two)
        x2 = Reshape(x, flat)
        mm = MatMul(x2, w)
        y = Reshape(mm, target)
    }
"""

LOOP = """
    g (float[N] x) => (float[N] y)
    <int64 trip = {3}, bool cond = {1}, float two = {2}>
    {
        y = Loop(trip, cond, x) <body = step (int64 i, bool c, float[N] acc)
                                        => (bool c_out, float[N] acc_out) {
            c_out = Identity(c)
            acc_out = Mul(acc, two)
        }>
    }
"""


def _fixed(model, shapes, **feeds):
    before = run(model, **feeds)
    [result] = run_passes(model, ["fix_shapes"], params={"fix_shapes": {"shapes": shapes}})
    onnx.checker.check_model(model, full_check=True)
    after = run(model, **feeds)
    for name, want in before.items():
        np.testing.assert_array_equal(after[name], want, err_msg=name)
    return result


def test_shape_arithmetic_is_folded_and_nothing_stays_dynamic():
    model = parse(TENSORDOT, w=np.arange(6, dtype=np.float32).reshape(3, 2))
    assert not all_static(model) and dynamic_tensors(model)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    result = _fixed(model, {"x": (2, 5, 3)}, x=x)
    assert all_static(model) and dynamic_tensors(model) == []
    assert "Shape" not in ops(model) and "Concat" not in ops(model)
    assert "input x: (None, None, 3) -> (2, 5, 3)" in result.applied
    assert "3 node(s) computing shapes folded into constants" in result.applied
    assert "no dynamic dimension left (onnx shape inference)" in result.applied
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 5, 2]  # the declared output shape is static too


def test_a_loop_state_that_keeps_its_shape_is_declared_static():
    model = parse(LOOP)
    _fixed(model, {"x": "4"}, x=np.arange(4, dtype=np.float32))
    assert dynamic_tensors(model) == []
    body = model.graph.node[0].attribute[0].g
    assert [d.dim_value for d in body.input[2].type.tensor_type.shape.dim] == [4]


def test_an_input_left_unfixed_is_reported_with_what_stays_dynamic():
    model = parse(
        """
        g (float[N, 3] a, float[M, 3] b) => (float[N, 3] c, float[M, 3] d)
        { c = Relu(a)
          d = Relu(b) }
        """
    )
    result = _fixed(
        model, {"a": (2, 3)}, a=np.ones((2, 3), np.float32), b=np.ones((5, 3), np.float32)
    )
    assert any("keep a dynamic dimension" in n and "d" in n for n in result.notes)
    assert any("input(s) not fixed: b" in n for n in result.notes)


@pytest.mark.parametrize(
    "shapes, message",
    [
        ({"y": (2, 5, 3)}, "the model has no input 'y' (its inputs: x)"),
        ({"x": (2, 5)}, "input 'x' has rank 3 (shape (None, None, 3)), not 2"),
        ({"x": (2, 5, 4)}, "input 'x' has shape (None, None, 3): axis 2 is 3, not 4"),
    ],
)
def test_names_ranks_and_fixed_axes_are_checked(shapes, message):
    model = parse(TENSORDOT, w=np.ones((3, 2), np.float32))
    before = model.SerializeToString()
    with pytest.raises(GraphkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_passes(model, ["fix_shapes"], params={"fix_shapes": {"shapes": shapes}})
    assert model.SerializeToString() == before


def test_the_pass_needs_its_shapes_and_takes_no_other_parameter():
    model = parse(TENSORDOT, w=np.ones((3, 2), np.float32))
    with pytest.raises(GraphkitError, match="needs the shapes to fix: --fixed-shape NAME=DIMS"):
        run_passes(model, ["fix_shapes"])
    with pytest.raises(GraphkitError, match="has no parameter 'dims' \\(it takes: shapes\\)"):
        run_passes(model, ["fix_shapes"], params={"fix_shapes": {"dims": {"x": (1, 2, 3)}}})
    with pytest.raises(GraphkitError, match="parameters for the ONNX pass 'fix_shapes'"):
        run_passes(model, ["fuse_onehot"], params={"fix_shapes": {"shapes": {"x": (1, 2, 3)}}})


def test_parse_fixed_shape():
    assert parse_fixed_shape("tokens=2x160") == ("tokens", (2, 160))
    assert parse_fixed_shape("a=b=7") == ("a=b", (7,))
    assert parse_fixed_shapes(["tokens=2x16", "tag=2"]) == {"tokens": (2, 16), "tag": (2,)}
    assert normalise_shapes({"tokens": "2x16", "tag": 2, "x": [2, 3]}) == {
        "tokens": (2, 16),
        "tag": (2,),
        "x": (2, 3),
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("tokens=2x", "expected NAME=DIMS, DIMS like 2x160"),
        ("tokens=", "expected NAME=DIMS"),
        ("tokens", "expected NAME=DIMS"),
        ("=2x3", "expected NAME=DIMS"),
        ("tokens=2x-1", "expected NAME=DIMS"),
        ("tokens=2.5x3", "expected NAME=DIMS"),
        ("tokens=0x5", "every dimension must be at least 1, got 0"),
    ],
)
def test_bad_fixed_shapes_say_what_is_expected(text, message):
    with pytest.raises(GraphkitError, match=message) as info:
        parse_fixed_shapes([text])
    assert f"--fixed-shape {text!r}" in str(info.value)


def test_inputs_given_twice_or_with_other_batch_sizes_are_refused():
    with pytest.raises(GraphkitError, match="input 'a' is given twice"):
        parse_fixed_shapes(["a=2x3", "a=2x4"])
    with pytest.raises(GraphkitError, match="share the batch axis .*a has 2, b has 3"):
        parse_fixed_shapes(["a=2x3", "b=3"])
    with pytest.raises(GraphkitError, match="at least 1, got 0"):
        normalise_shapes({"a": (0, 3)})


@pytest.mark.parametrize(
    "text, message",
    [
        ("tokens=1x100000000", "more than graphkit checks"),
        ("tokens=2147483648x12", r"below 2\*\*31"),
        ("tokens=99999999999999999999x12", r"below 2\*\*31"),
    ],
)
def test_sizes_no_input_has_are_refused_at_once(text, message):
    from graphkit.errors import GraphkitError
    from graphkit.onnx_passes.fix_shapes import parse_fixed_shape

    with pytest.raises(GraphkitError, match=message):
        parse_fixed_shape(text)
