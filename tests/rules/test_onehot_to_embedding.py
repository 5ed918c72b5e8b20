"""Rule onehot_to_embedding: folding bias and activation, keeping OneHots with other consumers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit import GraphkitError, examples
from graphkit.conversion import convert
from graphkit.layers import OneHot, TimeDistributed
from tests.conftest import max_abs_diff, run


@pytest.mark.parametrize("wrapper", ["dense", "keras_td", "graphkit_td"])
@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_folds_bias_and_activation_exactly(wrapper, activation):
    inp = keras.Input((7,), dtype="int32", name="tokens")
    x = OneHot(25, mask_zero=True, name="oh")(inp)
    dense = keras.layers.Dense(
        4, activation=activation, bias_initializer=keras.initializers.RandomNormal(seed=1), name="d"
    )
    layer = {
        "dense": dense,
        "keras_td": keras.layers.TimeDistributed(dense, name="td"),
        "graphkit_td": TimeDistributed(dense, name="td"),
    }[wrapper]
    model = keras.Model(inp, keras.layers.GlobalAveragePooling1D()(layer(x)))
    report = convert(model, "embedding")
    new = report.model
    embeddings = [layer for layer in new.layers if type(layer) is keras.layers.Embedding]
    assert len(embeddings) == 1 and embeddings[0].mask_zero is True
    assert not any(isinstance(layer, OneHot) for layer in new.layers)
    x = {"tokens": np.random.default_rng(0).integers(0, 25, size=(6, 7))}
    notes = [note for f in report.converted for note in f.notes]
    assert any("bias" in note for note in notes)
    if activation in (None, "relu"):
        assert max_abs_diff(run(model, x), run(new, x)) == 0.0
    else:
        # softmax/tanh kernels round differently with the batch shape (documented in the note)
        assert max_abs_diff(run(model, x), run(new, x)) <= 1e-6
        assert any("1 ulp" in note for note in notes)


def test_onehot_with_other_consumers_is_kept_and_said():
    model = examples.onehot_dense(seed=0)
    report = convert(model, "embedding")
    kept = {f.path: f.reason for f in report.kept}
    assert "bag_onehot" in kept and "bag_counts" in kept["bag_onehot"]
    assert any(n.startswith("kept bag_onehot") for n in report.notes)
    names = [layer.name for layer in report.model.layers]
    assert "bag_onehot" in names and "bag_dense" in names and "tokens_onehot" not in names
    x = examples.sample_inputs(model, seed=3)
    assert max_abs_diff(run(model, x), run(report.model, x)) == 0.0


def test_dense_shared_with_another_tensor_is_not_folded():
    a = keras.Input((3,), dtype="int32", name="a")
    b = keras.Input((3, 6))
    dense = keras.layers.Dense(2, name="shared_dense")
    y1 = dense(OneHot(6, name="oh")(a))
    y2 = dense(b)
    model = keras.Model([a, b], [y1, y2])
    with pytest.raises(GraphkitError, match="nothing to convert.*also applied to other tensors"):
        convert(model, "embedding")


def test_reverse_names_restore_the_original_embedding_name():
    model = examples.masked_lstm(seed=0)
    there = convert(model, "onehot-dense").model
    back = convert(there, "embedding").model
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]


def test_fold_under_mixed_precision_is_exact():
    policy = keras.mixed_precision.Policy("mixed_float16")
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = OneHot(40, dtype=policy, name="oh")(inp)
    dense = keras.layers.Dense(
        6, activation="relu", dtype=policy, bias_initializer=keras.initializers.RandomNormal(seed=2)
    )
    model = keras.Model(inp, TimeDistributed(dense, dtype=policy)(x))
    new = convert(model, "embedding").model
    (emb,) = [layer for layer in new.layers if type(layer) is keras.layers.Embedding]
    assert emb.dtype_policy.name == "mixed_float16" and emb.embeddings.dtype == "float32"
    x = {"tokens": np.arange(40).reshape(4, 10)}
    out_old, out_new = run(model, x), run(new, x)
    assert out_old[0].dtype == out_new[0].dtype == np.float16
    assert max_abs_diff(out_old, out_new) == 0.0


def test_large_vocabulary_folds_without_a_vocab_squared_product():
    inp = keras.Input((3,), dtype="int32", name="tokens")
    x = OneHot(50000, name="oh")(inp)
    model = keras.Model(inp, keras.layers.Dense(8, activation="relu", name="d")(x))
    new = convert(model, "embedding").model
    x = {"tokens": np.array([[0, 49999, 12345]])}
    assert max_abs_diff(run(model, x), run(new, x)) == 0.0


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_applies():
    keras.utils.set_random_seed(1)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = OneHot(12, mask_zero=True, name="oh")(inp)
    x = keras.layers.Dense(3, activation="relu", name="proj")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(keras.layers.GRU(4)(x)))


def _contract_refuses():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = OneHot(12, name="oh")(inp)
    return keras.Model(inp, keras.layers.GlobalAveragePooling1D(name="bag")(x))


CONTRACT = (_contract_applies, "embedding", _contract_refuses)
