"""lower_gather: Gather on a constant table becomes OneHot -> MatMul, exactly for valid indices."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.onnx_passes import OUT_OF_RANGE_NOTE, run_passes
from tests.onnx_passes.helpers import ops, parse, run, run_checked


def _lookup(table: np.ndarray):
    elem = {np.float32: "float", np.float16: "float16", np.int64: "int64"}[table.dtype.type]
    return parse(
        f"""
        g (int32[N, L] idx) => ({elem}[N, L, {table.shape[1]}] y)
        {{
            y = Gather <axis = 0> (T, idx)
        }}
        """,
        T=table,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lowered_model_matches_for_valid_and_negative_indices(dtype):
    table = np.random.default_rng(0).normal(size=(30, 4)).astype(dtype)
    model = _lookup(table)
    [result] = run_checked(model, ["lower_gather"], idx=np.array([[0, 29, 3, -1, -30]], np.int32))
    assert len(result.applied) == 1 and result.notes == [OUT_OF_RANGE_NOTE]
    assert "Gather" not in ops(model) and "OneHot" in ops(model) and "MatMul" in ops(model)


def test_out_of_range_gives_zero_rows_where_gather_raised():
    model = _lookup(np.ones((5, 2), np.float32))
    with pytest.raises(Exception, match="out of data bounds"):  # noqa: B017 (ORT's own exception type)
        run(model, idx=np.array([[7]], np.int32))
    run_passes(model, ["lower_gather"])
    np.testing.assert_array_equal(
        run(model, idx=np.array([[7, 1]], np.int32))["y"], [[[0, 0], [1, 1]]]
    )


def test_lower_then_fuse_round_trip_is_exact():
    table = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    model = _lookup(table)
    x = np.random.default_rng(2).integers(0, 40, size=(3, 9)).astype(np.int32)
    run_checked(model, ["lower_gather"], idx=x)
    [fused] = run_checked(model, ["fuse_onehot"], idx=x)
    assert fused.applied and ops(model).count("Gather") == 1 and "OneHot" not in ops(model)


def test_refuses_non_finite_table_with_reason():
    table = np.ones((3, 2), np.float32)
    table[1, 0] = np.inf
    [result] = run_passes(_lookup(table), ["lower_gather"])
    assert result.applied == [] and result.notes == []
    assert result.skipped == ["y: the table holds inf or NaN (0 * inf is NaN in a MatMul)"]


def test_refuses_integer_table_with_reason():
    [result] = run_passes(_lookup(np.arange(6, dtype=np.int64).reshape(3, 2)), ["lower_gather"])
    assert result.skipped == ["y: table dtype int64 is not floating point"]


def test_index_arithmetic_gathers_are_left_alone_silently():
    """A Gather on a computed tensor (a shape, say) is no table lookup: no line in the report."""
    model = parse(
        """
        g (float[N, L] x) => (int64[1] n)
        <int64[1] first = {0}>
        {
            shape = Shape(x)
            n = Gather <axis = 0> (shape, first)
        }
        """
    )
    [result] = run_passes(model, ["lower_gather"])
    assert result.applied == [] and result.skipped == []
