"""drop_index_guards: index arithmetic that gives every valid index back is dropped.

Each graph is written in onnx's text format, rewritten, fully checked, and run in onnxruntime
against the original on every index of [0, vocab): the same bits. Arithmetic that changes a
valid index is kept, with the index it changes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphkit.onnx_passes import run_passes
from graphkit.onnx_passes.drop_index_guards import index_ranges
from tests.onnx_passes.helpers import KERAS_WRAP, ops, parse, run

VOCAB = 5
TABLE = np.arange(10, dtype=np.float32).reshape(VOCAB, 2)
ALL_INDICES = np.arange(VOCAB, dtype=np.int64).reshape(1, VOCAB)


# graphkit's OneHot: negative indices sent out of range (where(i < 0, depth, i)), then OneHot.
ONEHOT_GUARD = """
    g (int32[N, L] idx) => (float[N, L, 5] y)
    <int32 zero = {0}, int32 depth = {5}, float[2] values = {0, 1}>
    {
        neg = Less(idx, zero)
        row = Where(neg, depth, idx)
        y = OneHot <axis = -1> (row, depth, values)
    }
"""


def _same_on_every_index(model, names, feed="idx", indices=ALL_INDICES, params=None):
    before = run(model, **{feed: indices})
    results = run_passes(model, names, params=params)
    onnx.checker.check_model(model, full_check=True)
    after = run(model, **{feed: indices})
    for name, want in before.items():
        assert after[name].dtype == want.dtype
        np.testing.assert_array_equal(after[name], want, err_msg=name)
    return results


def test_keras_wrap_is_dropped_and_the_contract_recorded():
    model = parse(KERAS_WRAP, table=TABLE)
    [result] = _same_on_every_index(model, ["drop_index_guards"])
    assert ops(model) == ["Gather"]
    assert model.graph.node[0].input[1] == "idx"
    assert (
        len(result.applied) == 1 and "Less" in result.applied[0] and "[0, 5)" in result.applied[0]
    )
    assert index_ranges(model) == {"idx": VOCAB}
    assert any("idx in [0, 5)" in note for note in result.notes)


def test_onehot_guard_is_dropped():
    model = parse(ONEHOT_GUARD)
    _same_on_every_index(model, ["drop_index_guards"], indices=ALL_INDICES.astype(np.int32))
    assert ops(model) == ["OneHot"]
    assert index_ranges(model) == {"idx": VOCAB}


def test_fuse_onehots_out_of_range_row_is_dropped_through_its_reshape():
    """fuse_onehot sends out-of-range indices to an extra row (Less/GreaterOrEqual/And/Where),
    and reshapes the indices like the one-hot was: both reshape and guard are crossed."""
    w = np.random.default_rng(0).normal(size=(VOCAB, 3)).astype(np.float32)
    model = parse(
        """
        g (int32[N, L] idx) => (float[M, 3] y)
        <int64 depth = {5}, float[2] values = {0, 1}, int64[2] flat = {-1, 5}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            oh2 = Reshape(oh, flat)
            y = MatMul(oh2, W)
        }
        """,
        W=w,
    )
    run_passes(model, ["fuse_onehot"])
    assert {"Where", "And", "Less", "GreaterOrEqual"} <= set(ops(model))
    x = ALL_INDICES.astype(np.int32)
    [result] = _same_on_every_index(model, ["drop_index_guards"], indices=x)
    assert not {"Where", "And", "Less", "GreaterOrEqual"} & set(ops(model))
    # the Cast: int32 -> int64 index; the Slice: the reshape target without the one-hot axis
    assert sorted(ops(model)) == ["Cast", "Gather", "Reshape", "Slice"]
    assert "the identity on [0, 5)" in result.applied[0]


def test_arithmetic_that_changes_a_valid_index_is_kept_saying_which():
    """A Mod below the vocabulary (the uint8 cast of the Lambda recipe) is the model's meaning."""
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 2] y)
        <int64 m = {3}>
        {
            row = Mod(idx, m)
            y = Gather <axis = 0> (table, row)
        }
        """,
        table=TABLE,
    )
    before = model.SerializeToString()
    [result] = run_passes(model, ["drop_index_guards"])
    assert not result.applied
    assert result.skipped == [
        "Gather 'y': the arithmetic before its index is not the identity on [0, 5) "
        "(index 3 gives 0): kept"
    ]
    graph_before = onnx.load_from_string(before).graph
    assert model.graph.SerializeToString() == graph_before.SerializeToString()


def test_a_mod_past_the_vocabulary_is_the_identity_and_goes():
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 2] y)
        <int64 m = {256}>
        {
            row = Mod(idx, m)
            y = Gather <axis = 0> (table, row)
        }
        """,
        table=TABLE,
    )
    _same_on_every_index(model, ["drop_index_guards"])
    assert ops(model) == ["Gather"]


def test_an_index_computed_from_two_tensors_is_kept():
    model = parse(
        """
        g (int64[N, L] idx, int64[N, L] offset) => (float[N, L, 2] y)
        {
            row = Add(idx, offset)
            y = Gather <axis = 0> (table, row)
        }
        """,
        table=TABLE,
    )
    [result] = run_passes(model, ["drop_index_guards"])
    assert not result.applied
    assert "reads several tensors ('idx', 'offset')" in result.skipped[0]


def test_float_indices_keep_their_cast_to_an_index():
    """A float input cast to int64, then wrapped: the guard goes, the Cast stays."""
    model = parse(
        """
        g (float[N, L] x) => (float[N, L, 2] y)
        <int64 vocab = {5}, int64 zero = {0}>
        {
            idx = Cast <to = 7> (x)
            neg = Less(idx, zero)
            plus = Add(idx, vocab)
            row = Where(neg, plus, idx)
            y = Gather <axis = 0> (table, row)
        }
        """,
        table=TABLE,
    )
    _same_on_every_index(model, ["drop_index_guards"], feed="x", indices=ALL_INDICES.astype("f4"))
    assert ops(model) == ["Cast", "Gather"]
    assert index_ranges(model) == {"x": VOCAB}


def test_a_model_without_guards_is_left_alone_and_its_contract_stated():
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 2] y)
        {
            y = Gather <axis = 0> (table, idx)
        }
        """,
        table=TABLE,
    )
    nodes = [n.SerializeToString() for n in model.graph.node]
    [result] = run_passes(model, ["drop_index_guards"])
    assert not result.applied and not result.skipped
    assert [n.SerializeToString() for n in model.graph.node] == nodes
    assert index_ranges(model) == {"idx": VOCAB}


@pytest.mark.parametrize("vocab", [1, 300, 70000])
def test_keras_wrap_of_any_vocabulary(vocab):
    table = np.random.default_rng(vocab).normal(size=(vocab, 2)).astype(np.float32)
    model = parse(KERAS_WRAP.replace("{5}", f"{{{vocab}}}"), table=table)
    x = np.arange(vocab, dtype=np.int64).reshape(1, vocab)
    _same_on_every_index(model, ["drop_index_guards"], indices=x)
    assert ops(model) == ["Gather"]
