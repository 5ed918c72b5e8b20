"""Rule count_to_embedding: a count encoding + Dense becomes Embedding + TokenSum."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.conversion import convert
from graphkit.engine import Plan, all_layer_names
from graphkit.inspect import inspect_model
from graphkit.layers import TokenSum
from graphkit.rules import RULES, RewriteContext
from tests.conftest import assert_within_ulps

VOCAB = [5, 7, 9, 11]
WORDS = ["red", "green", "blue"]


def bag_model(kind="category", mask=None, activation="tanh", sequential=False, tokens=5):
    """A bag of ``tokens`` tokens -> counts -> Dense (the model's output)."""
    keras.utils.set_random_seed(11)
    if kind == "category":
        encode = keras.layers.CategoryEncoding(12, output_mode="count", name="bag_counts")
        inp = keras.Input((tokens,), dtype="int32", name="bag")
    elif kind == "integer":
        encode = keras.layers.IntegerLookup(
            vocabulary=VOCAB, mask_token=mask, num_oov_indices=2, output_mode="count",
            name="bag_counts",
        )  # fmt: skip
        inp = keras.Input((tokens,), dtype="int64", name="bag")
    else:
        encode = keras.layers.StringLookup(
            vocabulary=WORDS, mask_token=mask, output_mode="count", name="bag_counts"
        )
        inp = keras.Input((tokens,), dtype="string", name="bag")
    dense = keras.layers.Dense(
        4, activation=activation, bias_initializer="random_normal", name="bag_proj"
    )
    if sequential:
        return keras.Sequential([inp, encode, dense], name="seq")
    return keras.Model(inp, dense(encode(inp)))


def feed(kind="category", n=16, tokens=5):
    """Many repeated tokens; OOV and mask tokens for the lookups."""
    rng = np.random.default_rng(0)
    if kind == "category":
        return rng.integers(0, 12, size=(n, tokens)).astype("int32")
    if kind == "integer":
        return rng.choice([*VOCAB, 0, 3, 4], size=(n, tokens)).astype("int64")
    return rng.choice([*WORDS, "", "zz"], size=(n, tokens))


def call(model, x):
    return np.asarray(model(x))


CASES = [("category", None), ("integer", None), ("integer", 0), ("string", "")]


@pytest.mark.parametrize("kind, mask", CASES)
def test_count_dense_becomes_embedding_sum_within_ulps(kind, mask, tmp_path):
    model = bag_model(kind, mask)
    report = convert(model, "embedding")
    assert [(f.rule, f.status) for f in report.findings] == [("count_to_embedding", "converted")]
    assert any("summation order" in n for n in report.converted[0].notes)
    new = report.model
    kinds = [type(layer).__name__ for layer in new.layers][-2:]
    assert kinds == ["Embedding", "TokenSum"] and new.output_names == model.output_names
    table = new.get_layer("bag_counts_embedding").get_weights()[0]
    kernel = model.get_layer("bag_proj").get_weights()[0]
    if mask is None:
        np.testing.assert_array_equal(table, kernel)
    else:  # the mask token is index 0 in int mode, and counted nowhere
        assert not table[0].any()
        np.testing.assert_array_equal(table[1:], kernel)
    x = feed(kind)
    assert_within_ulps(call(new, x), call(model, x))
    new.save(tmp_path / "c.keras")
    back = keras.saving.load_model(tmp_path / "c.keras")  # safe mode
    np.testing.assert_array_equal(call(back, x), call(new, x))


def test_sequential_relu_and_no_bias():
    model = bag_model(sequential=True, activation="relu")
    new = convert(model, "embedding").model
    assert [type(layer).__name__ for layer in new.layers] == ["Embedding", "TokenSum"]
    x = feed()
    assert_within_ulps(call(new, x), call(model, x))
    inp = keras.Input((3,), dtype="int32")
    counts = keras.layers.CategoryEncoding(6, output_mode="count")(inp)
    bare = keras.Model(inp, keras.layers.Dense(2, use_bias=False)(counts))
    new = convert(bare, "embedding").model
    assert new.layers[-1].use_bias is False and new.layers[-1].get_weights() == []
    x = np.array([[1, 1, 1], [0, 5, 2]], "int32")
    assert_within_ulps(call(new, x), call(bare, x))


def test_padded_lookup_counts():
    inp = keras.Input((4,), dtype="string")
    counts = keras.layers.StringLookup(
        vocabulary=WORDS, max_tokens=8, pad_to_max_tokens=True, output_mode="count"
    )
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu")(counts(inp)))
    new = convert(model, "embedding").model
    (embedding,) = [x for x in new.layers if type(x) is keras.layers.Embedding]
    assert embedding.input_dim == 8
    x = feed("string", tokens=4)
    assert_within_ulps(call(new, x), call(model, x))


def test_onehot_dense_target_keeps_it_with_the_reason():
    model = bag_model()
    with pytest.raises(GraphkitError, match="nothing to convert") as info:
        convert(model, "onehot-dense")
    assert (
        "kept bag_counts: output_mode='count' sums several rows (with --to embedding, "
        "count_to_embedding folds it with its Dense)" in str(info.value)
    )


def test_inspect_marks_the_encoding_and_its_dense():
    rows = {r.path: r for r in inspect_model(bag_model("integer", 0)).rows}
    assert rows["bag_counts"].convertible is True
    assert rows["bag_counts"].mark.startswith("count encoding, foldable -> Embedding + TokenSum")
    assert (
        rows["bag_proj"].role == "count-dense" and "folds with bag_counts" in rows["bag_proj"].mark
    )


def _found(model):
    (rule,) = [r for r in RULES if r.name == "count_to_embedding"]
    plan = Plan([rule], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    (found,) = plan.findings
    assert plan.replacements == {}
    return found


def test_what_is_kept_and_why():
    # multi_hot is not an anchor: its own rules keep it (counts a repeated index once)
    inp = keras.Input((3,), dtype="int32")
    multi = keras.layers.CategoryEncoding(6, output_mode="multi_hot", name="multi")
    model = keras.Model(inp, keras.layers.Dense(2)(multi(inp)))
    with pytest.raises(GraphkitError) as info:
        convert(model, "embedding")
    assert "marks a repeated index once, which no sum of Embedding rows reproduces" in str(
        info.value
    )
    # rank 3: Keras counts over axis 1, not the last axis (rank 1: over the whole batch)
    inp = keras.Input((2, 3), dtype="int32")
    counts = keras.layers.CategoryEncoding(6, output_mode="count")
    found = _found(keras.Model(inp, keras.layers.Dense(2)(counts(inp))))
    assert found.reason == "count over a rank-3 input; only (batch, tokens) is folded"
    # count_weights
    inp, weights = keras.Input((3,), dtype="int32"), keras.Input((3,))
    counts = keras.layers.CategoryEncoding(6, output_mode="count")
    out = keras.layers.Dense(2)(counts(inp, count_weights=weights))
    found = _found(keras.Model([inp, weights], out))
    assert found.reason == "it is called with count_weights; not rewritten"
    # the counts are an output, or feed something else than a Dense
    inp = keras.Input((3,), dtype="int32")
    counts = keras.layers.CategoryEncoding(6, output_mode="count", name="c")(inp)
    assert _found(keras.Model(inp, counts)).reason == "its output is a model output"
    pooled = keras.layers.Dense(2)(keras.layers.Activation("relu", name="act")(counts))
    assert "feeds 'act' (Activation), not a Dense" in _found(keras.Model(inp, pooled)).reason


def test_token_sum_config_round_trip():
    layer = TokenSum(use_bias=True, activation="tanh", name="s")
    again = TokenSum.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    x = np.arange(24, dtype="float32").reshape(2, 3, 4) / 10
    layer.build(x.shape)
    np.testing.assert_allclose(np.asarray(layer(x)), np.tanh(x.sum(axis=1)), rtol=1e-6)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 4)


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_refuses():
    inp = keras.Input((2, 3), dtype="int32", name="grid")
    counts = keras.layers.CategoryEncoding(9, output_mode="count")
    return keras.Model(inp, keras.layers.Dense(1)(counts(inp)))


CONTRACT = (bag_model, "embedding", _contract_refuses)
