"""Rule lookup_to_onehot: one-hot IntegerLookup/StringLookup -> int lookup + graphkit's OneHot."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.conversion import convert
from graphkit.inspect import inspect_model
from graphkit.layers import OneHot

VOCAB = [5, 7, 9, 11]
WORDS = ["red", "green", "blue"]


def lookup_model(
    kind="integer", mask=None, oov=1, shape=(1,), activation="relu", sequential=False, **options
):
    """A categorical feature -> one-hot lookup -> Dense (the Dense is the model's output)."""
    keras.utils.set_random_seed(7)
    if kind == "integer":
        lookup = keras.layers.IntegerLookup(
            vocabulary=VOCAB, mask_token=mask, num_oov_indices=oov, output_mode="one_hot",
            name="colour_lookup", **options,
        )  # fmt: skip
        inp = keras.Input(shape, dtype="int64", name="colour")
    else:
        lookup = keras.layers.StringLookup(
            vocabulary=WORDS, mask_token=mask, num_oov_indices=oov, output_mode="one_hot",
            name="colour_lookup", **options,
        )  # fmt: skip
        inp = keras.Input(shape, dtype="string", name="colour")
    dense = keras.layers.Dense(
        3, activation=activation, bias_initializer="random_normal", name="colour_proj"
    )
    if sequential:
        return keras.Sequential([inp, lookup, dense], name="seq")
    return keras.Model(inp, dense(lookup(inp)))


def feed(kind="integer", shape=(1,), n=12):
    """Vocabulary tokens, OOV tokens (3, 4, 8 / 'zz', 'purple') and the mask token (0 / '')."""
    rng = np.random.default_rng(0)
    if kind == "integer":
        return rng.choice([*VOCAB, 0, 3, 4, 8], size=(n, *shape)).astype("int64")
    return rng.choice([*WORDS, "", "zz", "purple"], size=(n, *shape))


def call(model, x):
    return np.asarray(model(x))


def assert_reloads_the_same(model, x, path):
    """Plain Keras (safe mode) reloads it after ``import graphkit``, predictions bit for bit."""
    model.save(path)
    back = keras.saving.load_model(path)
    np.testing.assert_array_equal(call(back, x), call(model, x))
    return back


CASES = [
    ("integer", None, 1),
    ("integer", None, 2),
    ("integer", 0, 1),
    ("integer", 0, 3),
    ("string", None, 1),
    ("string", "", 2),
]


@pytest.mark.parametrize("kind, mask, oov", CASES)
def test_folds_into_an_embedding_bit_for_bit(kind, mask, oov, tmp_path):
    model = lookup_model(kind, mask, oov)
    report = convert(model, "embedding")
    assert [(f.rule, f.status) for f in report.findings] == [
        ("lookup_to_onehot", "normalised"),
        ("onehot_to_embedding", "converted"),
    ]
    new = report.model
    kinds = [type(layer).__name__ for layer in new.layers]
    assert kinds == ["InputLayer", type(model.layers[1]).__name__, "Reshape", "Embedding"]
    assert new.get_layer("colour_lookup").output_mode == "int"
    assert new.output_names == model.output_names
    x = feed(kind)
    np.testing.assert_array_equal(call(new, x), call(model, x))
    assert_reloads_the_same(new, x, tmp_path / "e.keras")


@pytest.mark.parametrize("kind, mask, oov", CASES)
def test_onehot_dense_target_gives_graphkits_onehot(kind, mask, oov, tmp_path):
    model = lookup_model(kind, mask, oov)
    report = convert(model, "onehot-dense")
    new = report.model
    onehot = new.get_layer("colour_lookup_onehot")
    depth = len(model.layers[1].get_vocabulary())  # OOV slots + tokens: the one-hot width
    shift = 0 if mask is None else 1
    assert type(onehot) is OneHot and onehot.input_dim == depth + shift
    kernel = new.get_layer("colour_proj").get_weights()[0]
    assert kernel.shape[0] == depth + shift
    if mask is not None:  # the mask's all-zero one-hot: a zero row 0 in int mode
        assert not kernel[0].any()
        assert any("zero row 0" in n for f in report.normalised for n in f.notes)
    x = feed(kind)
    np.testing.assert_array_equal(call(new, x), call(model, x))
    assert_reloads_the_same(new, x, tmp_path / "o.keras")


@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 1)])
def test_input_shapes_follow_keras_squeeze(shape):
    """(batch,) and (batch, 1) give (batch, depth); (batch, 3) and (batch, 2, 1) a step axis."""
    model = lookup_model(shape=shape, mask=0)
    new = convert(model, "embedding").model
    x = feed(shape=shape)
    assert new(x).shape == model(x).shape
    np.testing.assert_array_equal(call(new, x), call(model, x))


def test_oov_indices_and_mask_land_on_keras_rows():
    """OOV tokens go to ``token % num_oov_indices`` (after the mask slot in int mode); the
    converted table's rows are what the original gives for such tokens."""
    model = lookup_model(mask=0, oov=2, activation=None)
    new = convert(model, "embedding").model
    lookup = new.get_layer("colour_lookup")
    np.testing.assert_array_equal(np.asarray(lookup(np.array([0, 4, 3, 5, 11]))), [0, 1, 2, 3, 6])
    (embedding,) = [x for x in new.layers if type(x) is keras.layers.Embedding]
    table = embedding.get_weights()[0]
    kernel, bias = model.get_layer("colour_proj").get_weights()
    tokens = np.array([[0], [4], [3], [5], [11]])
    original = call(model, tokens)
    np.testing.assert_array_equal(original[0], bias)  # the mask: no kernel row at all
    np.testing.assert_array_equal(original[1:], kernel[[0, 1, 2, 5]] + bias)
    np.testing.assert_array_equal(table[[0, 1, 2, 3, 6]], original)


def test_sequential_and_pad_to_max_tokens(tmp_path):
    model = lookup_model(sequential=True, max_tokens=9, pad_to_max_tokens=True)
    assert model.get_layer("colour_lookup").compute_output_shape((None, 1)) == (None, 9)
    report = convert(model, "onehot-dense")
    assert report.model.get_layer("colour_lookup_onehot").input_dim == 9  # padded width kept
    x = feed()
    np.testing.assert_array_equal(call(report.model, x), call(model, x))
    new = convert(report.model, "embedding").model
    np.testing.assert_array_equal(call(new, x), call(model, x))
    assert_reloads_the_same(new, x, tmp_path / "s.keras")


def test_hashed_oov_buckets_keep_their_hash():
    """oov_method="farmhash" with a salt: int mode hashes OOV tokens the same way."""
    model = lookup_model(oov=3, mask=0, oov_method="farmhash", salt=5)
    x = np.arange(-20, 20, dtype="int64").reshape(-1, 1)
    for to in ("embedding", "onehot-dense"):
        np.testing.assert_array_equal(call(convert(model, to).model, x), call(model, x))


def test_adapted_vocabulary_is_written_into_the_config(tmp_path):
    """An adapted lookup keeps its vocabulary in an asset file; the int lookup holds it in
    its config, which safe mode loads."""
    keras.utils.set_random_seed(1)
    lookup = keras.layers.StringLookup(output_mode="one_hot", name="word")
    lookup.adapt(np.array(["b", "a", "b", "c", "b", "a"]))
    assert lookup.get_config()["vocabulary"] is None
    inp = keras.Input((1,), dtype="string", name="w")
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(lookup(inp)))
    new = convert(model, "embedding").model
    assert new.get_layer("word").get_config()["vocabulary"] == ["[UNK]", "b", "a", "c"]
    x = np.array([["a"], ["b"], ["c"], ["?"]])
    back = assert_reloads_the_same(new, x, tmp_path / "a.keras")
    np.testing.assert_array_equal(call(back, x), call(model, x))


def test_a_token_equal_to_the_oov_token_keeps_its_index():
    """Keras strips a leading [oov_token] from a vocabulary as the special token; the
    rebuilt lookup is given the specials explicitly, so the tables stay equal."""
    lookup = keras.layers.IntegerLookup(vocabulary=[-1, 5], output_mode="one_hot")
    inp = keras.Input((1,), dtype="int64")
    model = keras.Model(inp, keras.layers.Dense(2)(lookup(inp)))
    new = convert(model, "embedding").model
    x = np.array([[-1], [5], [6]])
    np.testing.assert_array_equal(call(new, x), call(model, x))


# --- what is kept, with the reason ------------------------------------------------------------


def _one(model):
    """The rule's one finding on ``model``, run alone (nothing rewritten)."""
    from graphkit.engine import Plan, all_layer_names
    from graphkit.rules import RULES, RewriteContext

    (rule,) = [r for r in RULES if r.name == "lookup_to_onehot"]
    plan = Plan([rule], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    (found,) = plan.findings
    assert plan.replacements == {}
    return found


def test_other_output_modes_are_kept_with_the_reason():
    inp = keras.Input((3,), dtype="int64", name="bag")
    bag = keras.layers.IntegerLookup(vocabulary=VOCAB, output_mode="multi_hot", name="bag_lookup")
    model = keras.Model(inp, keras.layers.Dense(1, name="score")(bag(inp)))
    with pytest.raises(GraphkitError, match="nothing to convert") as info:
        convert(model, "embedding")
    assert "output_mode='multi_hot' sums several rows and marks a repeated index once" in str(
        info.value
    )
    (row,) = [r for r in inspect_model(model).rows if r.path == "bag_lookup"]
    assert row.convertible is False and "Lookup, kept: output_mode='multi_hot'" in row.mark
    words = keras.Input((3,), dtype="string")
    tfidf = keras.layers.StringLookup(
        vocabulary=WORDS, idf_weights=[1.0, 2.0, 3.0], output_mode="tf_idf"
    )
    found = _one(keras.Model(words, keras.layers.Dense(1)(tfidf(words))))
    assert found.status == "kept" and "'tf_idf' sums several rows weighed by IDF" in found.reason


def test_sparse_and_variable_last_axis_are_kept():
    found = _one(lookup_model(sparse=True))
    assert (
        found.status == "kept"
        and found.reason == "sparse=True gives a sparse tensor; not rewritten"
    )
    found = _one(lookup_model(shape=(None,)))
    assert found.status == "kept" and "its last input axis is variable" in found.reason


def test_mask_token_needs_a_dense_to_absorb_its_row():
    inp = keras.Input((1,), dtype="int64", name="colour")
    num = keras.Input((2,), name="size")
    lookup = keras.layers.IntegerLookup(vocabulary=VOCAB, mask_token=0, output_mode="one_hot")
    out = keras.layers.Concatenate()([lookup(inp), num])
    found = _one(keras.Model([inp, num], keras.layers.Dense(1)(out)))
    assert found.status == "kept"
    assert found.reason.startswith(
        "mask_token=0 has an all-zero one-hot, which int mode makes index 0"
    )
    assert "feeds 'concatenate" in found.reason
    # without a mask token, any consumer works (values exact; Keras' one-hot is int64 when run)
    inp2 = keras.Input((1,), dtype="int64", name="colour")
    lookup2 = keras.layers.IntegerLookup(vocabulary=VOCAB, output_mode="one_hot", name="lk")
    model = keras.Model([inp2, num], keras.layers.Concatenate()([lookup2(inp2), num]))
    report = convert(model, "onehot-dense")
    x = [feed(), np.ones((12, 2), "float32")]
    np.testing.assert_array_equal(call(report.model, x), call(model, x))


def test_invert_cannot_be_one_hot_and_int_lookups_are_not_anchors():
    with pytest.raises(ValueError, match="must be `'int'` when `invert` is true"):
        keras.layers.IntegerLookup(vocabulary=VOCAB, invert=True, output_mode="one_hot")
    from graphkit.rules.lookup_to_onehot import LookupToOneHot

    rule = LookupToOneHot()
    assert not rule.anchors(keras.layers.IntegerLookup(vocabulary=VOCAB, invert=True))
    assert not rule.anchors(keras.layers.StringLookup(vocabulary=WORDS))
    # lookups read raw values, not indices: their vocabulary, any other value is valid too
    masked = keras.layers.IntegerLookup(vocabulary=VOCAB, mask_token=0)
    assert rule.index_range(masked) is None
    assert rule.lookup_values(masked) == tuple(VOCAB)
    assert rule.lookup_values(keras.layers.StringLookup(vocabulary=WORDS)) == tuple(WORDS)
    assert rule.lookup_values(keras.layers.Hashing(num_bins=4)) == ()


# --- the CLI, both ways -----------------------------------------------------------------------


def test_cli_inspects_and_converts_both_ways(tmp_path):
    from typer.testing import CliRunner

    from graphkit.cli import app

    runner = CliRunner()
    src = tmp_path / "lookup.keras"
    model = lookup_model(mask=0, oov=2)
    model.save(src)
    shown = runner.invoke(app, ["inspect", str(src)])
    assert shown.exit_code == 0, shown.output
    assert "Lookup, normalised -> int lookup + OneHot" in shown.stdout
    x = feed()
    for to, last in [("embedding", "Embedding"), ("onehot-dense", "Dense")]:
        out = tmp_path / f"lookup.{to}.keras"
        result = runner.invoke(app, ["convert", str(src), "--to", to, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["normalised"] == 1 and report["refused"] == 0
        assert report["converted"] == (1 if to == "embedding" else 0)
        back = keras.saving.load_model(out)
        assert type(back.layers[-1]).__name__ == last
        np.testing.assert_array_equal(call(back, x), call(model, x))
    text = runner.invoke(app, ["convert", str(src), "--to", "embedding", "--force"])
    assert text.exit_code == 0, text.output
    assert (
        "normalised colour_lookup (IntegerLookup) -> colour_lookup + colour_lookup_squeeze "
        "+ colour_lookup_onehot + colour_proj" in text.stdout
    )
    assert "converted  colour_lookup_onehot (OneHot) -> colour_proj" in text.stdout


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_rewrites():
    return lookup_model(mask=0, oov=2, shape=(3,))


def _contract_refuses():
    inp = keras.Input((3,), dtype="int64", name="bag")
    bag = keras.layers.IntegerLookup(vocabulary=VOCAB, output_mode="multi_hot")
    return keras.Model(inp, keras.layers.Dense(1)(bag(inp)))


CONTRACT = (_contract_rewrites, "embedding", _contract_refuses)
