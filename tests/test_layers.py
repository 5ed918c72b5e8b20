"""graphkit.layers: OneHot and the fixed TimeDistributed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit.layers import OneHot, TimeDistributed


def test_one_hot_values_beyond_256_classes():
    layer = OneHot(1000)
    idx = np.array([[0, 255, 256, 999]])
    out = np.asarray(layer(idx))
    assert out.shape == (1, 4, 1000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.argmax(-1), idx)
    assert out.sum() == 4.0


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "uint8"])
def test_one_hot_accepts_integer_and_float_indices(dtype):
    idx = np.array([[1, 2], [3, 0]]).astype(dtype)
    out = np.asarray(OneHot(5)(idx))
    np.testing.assert_array_equal(out.argmax(-1), idx.astype("int64"))


def test_one_hot_truncates_float_indices_like_embedding():
    table = np.arange(5 * 2, dtype="float32").reshape(5, 2)
    emb = keras.layers.Embedding(5, 2, weights=[table])
    idx = np.array([[1.7, 3.2]], dtype="float32")
    onehot_rows = np.asarray(OneHot(5)(idx)) @ table
    np.testing.assert_array_equal(onehot_rows, np.asarray(emb(idx)))


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4)])
def test_one_hot_any_rank(shape):
    idx = np.random.default_rng(0).integers(0, 7, size=shape)
    out = np.asarray(OneHot(7)(idx))
    assert out.shape == shape + (7,)
    np.testing.assert_array_equal(out.argmax(-1), idx)


def test_one_hot_mask_equals_embedding_mask():
    idx = np.array([[3, 1, 0, 0], [0, 2, 0, 5]])
    mask = OneHot(6, mask_zero=True).compute_mask(idx)
    ref = keras.layers.Embedding(6, 2, mask_zero=True).compute_mask(idx)
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(ref))
    assert OneHot(6).compute_mask(idx) is None


def test_one_hot_honours_mixed_precision_policy():
    layer = OneHot(4, dtype=keras.mixed_precision.Policy("mixed_float16"))
    out = layer(np.array([[1, 2]]))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"


def test_one_hot_out_of_range_indices_give_zero_rows_unlike_embedding():
    """Documented behaviour: OneHot zeroes i < 0 and i >= input_dim; Embedding wraps negatives."""
    out = np.asarray(OneHot(4)(np.array([[-1, 4, 2]])))
    np.testing.assert_array_equal(out[0, 0], np.zeros(4))
    np.testing.assert_array_equal(out[0, 1], np.zeros(4))
    np.testing.assert_array_equal(out[0, 2], [0, 0, 1, 0])
    table = np.arange(8, dtype="float32").reshape(4, 2)
    emb = keras.layers.Embedding(4, 2, weights=[table])
    np.testing.assert_array_equal(np.asarray(emb(np.array([[-1]])))[0, 0], table[-1])


def test_one_hot_config_round_trip():
    layer = OneHot(300, mask_zero=True, name="oh")
    clone = OneHot.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.input_dim, clone.mask_zero, clone.name) == (300, True, "oh")
    assert keras.saving.get_registered_name(OneHot) == "graphkit>OneHot"
    assert keras.saving.get_registered_name(TimeDistributed) == "graphkit>TimeDistributed"


def test_one_hot_rejects_bad_input_dim():
    with pytest.raises(ValueError, match="input_dim"):
        OneHot(0)


def test_model_with_one_hot_saves_and_loads_in_safe_mode(tmp_path):
    inp = keras.Input((None,), dtype="int32")
    x = OneHot(300, mask_zero=True)(inp)
    x = TimeDistributed(keras.layers.Dense(3, use_bias=False))(x)
    out = keras.layers.LSTM(2)(x)
    model = keras.Model(inp, out)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True by default
    idx = np.array([[5, 299, 0], [1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(model(idx)), np.asarray(loaded(idx)))
    assert "Lambda" not in path.read_bytes().decode("latin-1")


@pytest.mark.parametrize("steps", [3, 9])
def test_time_distributed_variable_length_axis_keeps_the_time_axis(steps):
    """Keras 3.15's TimeDistributed maps over the batch for a None axis; ours must not."""
    inp = keras.Input((None, 5))
    model = keras.Model(inp, TimeDistributed(keras.layers.Dense(3))(inp))
    x = np.random.default_rng(0).normal(size=(4, steps, 5)).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (4, steps, 3)
    dense = model.layers[1].layer
    np.testing.assert_allclose(out, np.asarray(dense(x)), rtol=0, atol=0)


def test_time_distributed_non_dense_inner_layer_folds_time_into_batch():
    inp = keras.Input((None, 4, 2))
    td = TimeDistributed(keras.layers.Flatten())
    model = keras.Model(inp, td(inp))
    x = np.random.default_rng(1).normal(size=(2, 5, 4, 2)).astype("float32")
    out = model.predict(x, verbose=0)
    np.testing.assert_array_equal(out, x.reshape(2, 5, 8))
