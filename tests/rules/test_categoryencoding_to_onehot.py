"""Rule categoryencoding_to_onehot: Keras' one-hot CategoryEncoding becomes graphkit's OneHot."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.conversion import convert
from graphkit.io import load_model, save_model
from graphkit.layers import OneHot


def tabular(shape=(1,), tokens=9):
    """A categorical feature (batch, 1) -> one-hot -> Dense, beside a numeric one."""
    keras.utils.set_random_seed(7)
    cat = keras.Input(shape, dtype="int32", name="colour")
    num = keras.Input((2,), name="size")
    x = keras.layers.CategoryEncoding(tokens, output_mode="one_hot", name="colour_onehot")(cat)
    x = keras.layers.Dense(3, activation="relu", name="colour_proj")(x)
    if len(x.shape) > 2:
        x = keras.layers.Flatten()(x)
    x = keras.layers.Concatenate()([x, num])
    return keras.Model([cat, num], keras.layers.Dense(1, name="score")(x))


def feed(shape=(1,), tokens=9, n=6):
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, tokens, size=(n, *shape)).astype("int32"),
        rng.standard_normal((n, 2)).astype("float32"),
    ]


@pytest.mark.parametrize("shape", [(1,), (4,)])
def test_folds_into_an_embedding_exactly(shape, tmp_path):
    model = tabular(shape)
    report = convert(model, "embedding")
    assert [(f.rule, f.status) for f in report.findings] == [
        ("categoryencoding_to_onehot", "normalised"),
        ("onehot_to_embedding", "converted"),
    ]
    kinds = {type(layer) for layer in report.model.layers}
    assert keras.layers.Embedding in kinds and keras.layers.CategoryEncoding not in kinds
    x = feed(shape)
    np.testing.assert_array_equal(np.asarray(report.model(x)), np.asarray(model(x)))
    save_model(report.model, tmp_path / "t.keras")
    np.testing.assert_array_equal(
        np.asarray(load_model(tmp_path / "t.keras")(x)), np.asarray(model(x))
    )


def test_onehot_dense_target_gives_graphkits_onehot():
    model = tabular()
    report = convert(model, "onehot-dense")
    assert type(report.model.get_layer("colour_onehot_onehot")) is OneHot
    assert report.converted == [] and [f.status for f in report.normalised] == ["normalised"]
    assert any("normalisation(s) only" in n for n in report.notes)
    x = feed()
    np.testing.assert_array_equal(np.asarray(report.model(x)), np.asarray(model(x)))


def test_other_output_modes_are_kept_with_the_reason():
    cat = keras.Input((3,), dtype="int32", name="colour")
    x = keras.layers.CategoryEncoding(9, output_mode="multi_hot", name="bag")(cat)
    model = keras.Model(cat, keras.layers.Dense(1, name="score")(x))
    with pytest.raises(GraphkitError, match="nothing to convert") as info:
        convert(model, "embedding")
    assert "kept bag: output_mode='multi_hot' sums several rows" in str(info.value)
    from graphkit.inspect import inspect_model

    (row,) = [r for r in inspect_model(model).rows if r.path == "bag"]
    assert row.convertible is False and "sums several rows" in row.mark


def test_verify_synthesizes_indices_inside_its_vocabulary():
    import graphkit

    model = tabular()
    new = convert(model, "embedding").model
    report = graphkit.verify(model, new, samples=64)
    assert report.exact and report.inputs[0].vocab == 9


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_refuses():
    cat = keras.Input((3,), dtype="int32", name="colour")
    return keras.Model(cat, keras.layers.CategoryEncoding(9, output_mode="multi_hot")(cat))


CONTRACT = (tabular, "embedding", _contract_refuses)


def test_a_variable_last_axis_is_kept_keras_drops_it_for_length_1():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.CategoryEncoding(6, output_mode="one_hot", name="enc")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2, name="head")(x))
    # what the rewrite could not reproduce: a length-1 batch loses its axis in Keras
    assert keras.layers.CategoryEncoding(6, output_mode="one_hot")(np.zeros((2, 1))).shape == (2, 6)
    with pytest.raises(GraphkitError, match="last input axis is variable"):
        convert(model, "embedding")
