"""Rule lambda_to_onehot: a Lambda proven, by running it, to be a one-hot -> graphkit's OneHot."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from graphkit.conversion import convert
from graphkit.layers import OneHot


def _model(fn, *, length=6, dtype="int32", units=4, name="onehot_lambda"):
    x = keras.Input((length,), dtype=dtype, name="tokens")
    h = keras.layers.Lambda(fn, name=name)(x)
    out = keras.layers.Dense(units, name="head")(h)
    model = keras.Model(x, out)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return model


def uint8_300():
    return _model(lambda x: ops.one_hot(ops.cast(x, "uint8"), 300))


def _all_indices(n, length=6):
    idx = np.arange(n)
    idx = np.concatenate([idx, np.zeros(-len(idx) % length, dtype=int)])
    return idx.reshape(-1, length).astype("int32")


def _onehots(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, OneHot)]


def test_uint8_cast_past_256_classes_is_proven_as_a_wrap_and_kept_exactly():
    model = uint8_300()
    report = convert(model, "onehot-dense")
    (layer,) = _onehots(report.model)
    assert (layer.input_dim, layer.wrap, layer.name) == (300, 256, "onehot_lambda")
    (finding,) = [f for f in report.findings if f.rule == "lambda_to_onehot"]
    assert finding.status == "normalised"
    assert any("one_hot(i % 256, 300)" in n for n in finding.notes)
    assert any("indices 256..299 share the rows of 0..43" in n for n in finding.notes)
    x = _all_indices(300)
    np.testing.assert_array_equal(report.model(x), model(x))


def test_folded_table_row_i_is_the_row_of_i_mod_256():
    model = uint8_300()
    new = convert(model, "embedding").model
    (emb,) = [layer for layer in new.layers if isinstance(layer, keras.layers.Embedding)]
    table = np.asarray(emb.embeddings)
    np.testing.assert_array_equal(table[256:300], table[0:44])
    x = _all_indices(300)
    np.testing.assert_array_equal(new(x), model(x))


@pytest.mark.parametrize(
    "fn, wrap",
    [
        (lambda x: ops.one_hot(x, 20), None),
        (lambda x: ops.one_hot(ops.cast(x, "int32"), 20), None),
        (lambda x: ops.one_hot(ops.cast(x, "uint8"), 20), 256),
    ],
)
def test_plain_and_cast_one_hots_are_proven(fn, wrap):
    model = _model(fn)
    new = convert(model, "embedding").model
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in new.layers)
    x = _all_indices(20)
    np.testing.assert_array_equal(new(x), model(x))
    (layer,) = _onehots(convert(model, "onehot-dense").model)
    assert layer.wrap == wrap


def test_float_indices_like_the_recipe():
    model = _model(lambda x: ops.one_hot(ops.cast(x, "uint8"), 40), dtype="float32")
    new = convert(model, "embedding").model
    x = _all_indices(40).astype("float32")
    np.testing.assert_array_equal(new(x), model(x))


@pytest.mark.parametrize(
    "fn, reason",
    [
        (lambda x: ops.one_hot(x, 5) * 2.0, "index 0 does not give a one-hot row"),
        (lambda x: ops.one_hot(ops.flip(x, axis=1), 5), "depends on where the index is"),
        (lambda x: ops.one_hot(x, 5)[..., ::-1], "not row i"),
        (lambda x: ops.expand_dims(ops.cast(x, "float32"), -1) * ops.ones((5,)), "one-hot row"),
        (lambda x: ops.cast(x, "float32") * 2.0, "does not add a last axis"),
    ],
)
def test_what_is_not_a_one_hot_is_kept_with_the_reason(fn, reason):
    model = _model(fn)
    from graphkit.errors import GraphkitError

    with pytest.raises(GraphkitError, match="nothing to convert") as info:
        convert(model, "embedding")
    assert reason in str(info.value)


def test_a_lambda_that_fails_on_indices_is_kept():
    def fails(x):
        if x.shape[0] is not None:  # builds (batch None), fails on real batches
            raise ValueError("only symbolic")
        return ops.one_hot(x, 5)

    model = _model(fails)
    from graphkit.inspect import inspect_model

    (row,) = [r for r in inspect_model(model).rows if r.path == "onehot_lambda"]
    assert row.convertible is False and "running it on indices failed" in row.mark


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_refuses():
    return _model(lambda x: ops.one_hot(x, 5) * 2.0)


CONTRACT = (uint8_300, "embedding", _contract_refuses)
