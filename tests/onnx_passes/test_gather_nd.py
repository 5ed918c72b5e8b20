"""gather_nd: a table Gather (axis 0) becomes GatherND(table, Unsqueeze(i, -1)).

Every graph is written in onnx's text format, rewritten, fully checked, and run in onnxruntime
against the original on every index of [-V, V): the same bits. onnxruntime's mobile usability
checker for CoreML MLProgram (the list bundled with onnxruntime) then runs the result in one
partition holding every node, where it refuses the Gather form.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphkit.onnx_passes import run_passes
from tests.onnx_passes.helpers import elem_types, ops, parse, run

GATHER = """
    g ({itype}[N, L] idx) => ({vtype}[N, L, 3] y)
    {{
        y = Gather <axis = 0> (table, idx)
    }}
"""


def _table(vocab=7, dtype=np.float32, shape=(3,)):
    return np.random.default_rng(0).standard_normal((vocab, *shape)).astype(dtype)


def _every_index(vocab, dtype):
    """Every index of [-V, V), negatives (which both ops wrap) included."""
    x = np.arange(-vocab, vocab, dtype=dtype)
    return x.reshape(2, vocab)


def _bitwise_same(model, x):
    before = run(model, idx=x)
    [result] = run_passes(model, ["gather_nd"])
    onnx.checker.check_model(model, full_check=True)
    after = run(model, idx=x)
    for name, want in before.items():
        assert after[name].dtype == want.dtype and after[name].shape == want.shape
        np.testing.assert_array_equal(after[name], want)
    return result


def _coreml(model):
    from onnxruntime.tools.mobile_helpers import usability_checker

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return usability_checker.check_coreml_partitions(
        inferred,
        require_fixed_input_sizes=True,
        config_filename="coreml_supported_mlprogram_ops.md",
    )


@pytest.mark.parametrize("itype", ["int32", "int64"])
@pytest.mark.parametrize("vtype", ["float", "float16"])
def test_a_lookup_becomes_gather_nd_with_the_same_bits(itype, vtype):
    dtype = {"float": np.float32, "float16": np.float16}[vtype]
    model = parse(GATHER.format(itype=itype, vtype=vtype), table=_table(dtype=dtype))
    result = _bitwise_same(model, _every_index(7, itype))
    assert result.applied == ["y: Gather on a 7x3 table -> GatherND (0 multiply-adds)"]
    # GatherND takes int64 indices only: a Cast where the index is not int64, none where it is
    assert ops(model) == (["Cast"] if itype == "int32" else []) + ["Unsqueeze", "GatherND"]
    [gnd] = [n for n in model.graph.node if n.op_type == "GatherND"]
    assert [a.i for a in gnd.attribute if a.name == "batch_dims"] == [0]
    assert elem_types(model)[gnd.input[1]] == onnx.TensorProto.INT64


def test_a_scalar_index_and_a_3d_table_read_the_same_rows():
    text = """
        g (int64 idx) => (float[2, 5] y)
        {
            y = Gather <axis = 0> (table, idx)
        }
    """
    table = _table(vocab=4, shape=(2, 5))
    for i in range(-4, 4):
        model = parse(text, table=table)
        before = run(model, idx=np.array(i, np.int64))["y"]
        run_passes(model, ["gather_nd"])
        onnx.checker.check_model(model, full_check=True)
        np.testing.assert_array_equal(run(model, idx=np.array(i, np.int64))["y"], before)
        np.testing.assert_array_equal(before, table[i])


@pytest.mark.parametrize("bad", [7, -8])
def test_an_index_out_of_range_raises_in_both_forms(bad):
    model = parse(GATHER.format(itype="int32", vtype="float"), table=_table())
    x = np.full((1, 4), bad, np.int32)
    with pytest.raises(Exception, match="Gather"):
        run(model, idx=x)
    run_passes(model, ["gather_nd"])
    with pytest.raises(Exception, match="GatherND"):
        run(model, idx=x)


def test_what_is_not_a_lookup_is_left_alone_with_a_reason():
    text = """
        g (float[4, 6] x, int64[2] idx) => (float[4, 2] y, int64 n, float[2, 6] z)
        {
            y = Gather <axis = 1> (table, idx)
            shape = Shape (x)
            zero = Constant <value = int64 {0}> ()
            n = Gather <axis = 0> (shape, zero)
            z = Gather <axis = 0> (x, idx)
        }
    """
    model = parse(text, table=_table(vocab=4, shape=(6,)))
    feeds = {"x": np.ones((4, 6), np.float32), "idx": np.array([0, 3], np.int64)}
    before = run(model, **feeds)
    [result] = run_passes(model, ["gather_nd"])
    assert result.applied == [] and ops(model).count("Gather") == 3
    assert result.skipped == ["y: axis 1 is not a row lookup"]  # the others: no lookup at all
    for name, want in run(model, **feeds).items():
        np.testing.assert_array_equal(want, before[name])


def test_old_opsets_are_refused_or_get_unsqueeze_with_an_attribute():
    for opset, applied in ((10, False), (11, True)):
        model = parse(GATHER.format(itype="int64", vtype="float"), table=_table())
        model.opset_import[0].version = opset
        x = _every_index(7, "int64")
        before = run(model, idx=x)["y"]
        [result] = run_passes(model, ["gather_nd"])
        if not applied:
            assert result.skipped == ["y: opset 10 has no GatherND (11 and up)"]
            assert ops(model) == ["Gather"]
            continue
        onnx.checker.check_model(model, full_check=True)
        [unsqueeze] = [n for n in model.graph.node if n.op_type == "Unsqueeze"]
        assert len(unsqueeze.input) == 1 and unsqueeze.attribute[0].ints == [-1]
        np.testing.assert_array_equal(run(model, idx=x)["y"], before)


def test_coreml_mlprogram_runs_the_result_whole_and_not_the_gather():
    text = """
        g (int32[1, 8] idx) => (float[1, 3] y)
        {
            rows = Gather <axis = 0> (table, idx)
            y = ReduceMean <axes = [1], keepdims = 0> (rows)
        }
    """
    model = parse(text, table=_table(vocab=50))
    before = _coreml(model)
    assert before.num_partitions == 1 and before.num_supported_nodes == before.num_nodes - 1
    assert any("Gather" in op for op in before.unsupported_ops)
    run_passes(model, ["gather_nd"])
    after = _coreml(model)
    assert after.num_partitions == 1 and after.num_supported_nodes == after.num_nodes == 4
    assert not after.unsupported_ops


def test_a_one_hot_asked_for_with_lower_gather_stays():
    """lower_gather is a rewrite pass: it runs first, whatever the order of the names, and
    leaves gather_nd nothing to rewrite (--lower-gather --target coreml keeps the MatMul)."""
    model = parse(GATHER.format(itype="int64", vtype="float"), table=_table())
    lowered, nd = run_passes(model, ["gather_nd", "lower_gather"])
    assert (lowered.name, nd.name) == ("lower_gather", "gather_nd")
    assert lowered.applied and not nd.applied and "GatherND" not in ops(model)
    assert "MatMul" in ops(model)
