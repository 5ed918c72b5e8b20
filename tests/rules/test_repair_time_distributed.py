"""Rule repair_time_distributed: Keras' TimeDistributed becomes graphkit's, exact against eager."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from graphkit.conversion import convert, repair
from graphkit.layers import OneHot, TimeDistributed
from graphkit.rules.repair_time_distributed import unsupported_part
from tests.conftest import assert_within_ulps


def tagger(activation="linear", name="tags", vocab=40):
    """The issue's tagger, small: masked Embedding -> BiGRU -> Keras TimeDistributed(Dense)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, 6, mask_zero=True, name="emb")(inp)
    x = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True), name="bigru")(x)
    td = keras.layers.TimeDistributed(keras.layers.Dense(7, activation=activation), name=name)
    return keras.Model(inp, td(x))


def tokens(batch, length, vocab=40, seed=0):
    x = np.random.default_rng(seed).integers(1, vocab, size=(batch, length)).astype("int32")
    x[:, length - length // 3 :] = 0  # padding at the end: the mask matters
    return x


# batch size different from the length, equal to it, length 1, batch 1: in one process
SHAPES = [(4, 35), (3, 7), (1, 50), (6, 6), (5, 1)]


def test_repaired_tagger_equals_the_eager_call_at_every_length():
    """Within a few ulps: per-step MatMuls and one MatMul over all steps may round
    differently (bitwise with oneDNN's AVX-512 kernels, not with AVX2's or Eigen's)."""
    model = tagger()
    repaired, findings = repair(model)
    assert [(f.path, f.status) for f in findings] == [("tags", "repaired")]
    assert type(repaired.get_layer("tags")) is TimeDistributed
    assert repaired.get_layer("tags").layer is model.get_layer("tags").layer  # same weights
    assert repaired.output_names == ["tags"]
    for shape in SHAPES:
        x = tokens(*shape)
        want = np.asarray(model(x))
        assert want.shape == shape + (7,)
        assert_within_ulps(repaired(x), want)


def test_repaired_tagger_is_right_when_traced_with_an_unknown_time_axis():
    model = tagger()
    repaired, _ = repair(model)
    spec = [tf.TensorSpec((None, None), tf.int32)]
    fixed = tf.function(lambda t: repaired(t), input_signature=spec)
    for shape in SHAPES:  # one trace, several lengths
        x = tokens(*shape)
        assert_within_ulps(fixed(x), model(x))
    # predict retraces with relaxed shapes: still right for the second shape
    for shape in [(4, 35), (3, 7)]:
        assert repaired.predict(tokens(*shape), verbose=0).shape == shape + (7,)


def test_softmax_head_agrees_to_an_ulp():
    model = tagger("softmax")
    repaired, _ = repair(model)
    for shape in SHAPES:
        x = tokens(*shape)
        assert_within_ulps(repaired(x), model(x))


@pytest.mark.parametrize("to", ["onehot-dense", "embedding"])
def test_convert_repairs_for_both_targets_and_says_why(to):
    model = tagger()
    if to == "embedding":  # the one-hot form, written with Keras' own TimeDistributed
        keras.utils.set_random_seed(5)
        inp = keras.Input((None,), dtype="int32", name="tokens")
        x = OneHot(40, mask_zero=True, name="onehot")(inp)
        x = keras.layers.TimeDistributed(keras.layers.Dense(6, use_bias=False), name="proj")(x)
        x = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True))(x)
        td = keras.layers.TimeDistributed(keras.layers.Dense(7), name="tags")
        model = keras.Model(inp, td(x))
    report = convert(model, to)
    repaired = [f for f in report.findings if f.status == "repaired"]
    assert "tags" in [f.path for f in repaired] and "unknown time axis" in repaired[0].notes[0]
    assert len(report.converted) == 1
    assert "repaired   tags (TimeDistributed)" in report.format()
    assert report.to_dict()["repaired"] == len(repaired) == (1 if to == "onehot-dense" else 2)
    new = report.model
    assert not any(
        type(layer) is keras.layers.TimeDistributed
        for layer in new._flatten_layers(include_self=False, recursive=True)
    )
    for shape in [(4, 35), (3, 7)]:
        x = tokens(*shape)
        assert_within_ulps(new(x), model(x))


def test_repaired_model_saves_and_loads_in_safe_mode(tmp_path):
    from graphkit.io import load_model, save_model

    model = tagger()
    report = convert(model, "onehot-dense")
    save_model(report.model, tmp_path / "t.keras")
    back = load_model(tmp_path / "t.keras")
    assert type(back.get_layer("tags")) is TimeDistributed
    x = tokens(3, 7)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(report.model(x)))
    assert_within_ulps(back(x), model(x))


def test_sequential_and_folded_inner_layers_are_exact():
    """Conv1D + pooling per word (char CNN), inside a Sequential: folded time into batch."""
    keras.utils.set_random_seed(1)
    inner = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.Conv1D(3, 2, activation="relu"),
            keras.layers.GlobalMaxPooling1D(),
        ]
    )
    model = keras.Sequential(
        [keras.Input((None, 6, 4)), keras.layers.TimeDistributed(inner, name="words")]
    )
    repaired, findings = repair(model)
    assert [f.status for f in findings] == ["repaired"]
    for shape in [(2, 5, 6, 4), (3, 1, 6, 4), (1, 9, 6, 4)]:
        x = np.random.default_rng(0).standard_normal(shape).astype("float32")
        assert_within_ulps(repaired(x), model(x))


def test_inner_layer_taking_a_mask_gets_the_folded_mask():
    """TimeDistributed(LSTM) over a masked (batch, words, chars) input: Keras passes mask[i]."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((None, 5), dtype="int32", name="chars")
    x = keras.layers.Embedding(20, 3, mask_zero=True)(inp)
    x = keras.layers.TimeDistributed(keras.layers.LSTM(4), name="words")(x)
    model = keras.Model(inp, x)
    repaired, findings = repair(model)
    assert [f.status for f in findings] == ["repaired"]
    chars = np.random.default_rng(4).integers(0, 20, size=(3, 7, 5)).astype("int32")
    chars[:, :, 3:] = 0
    want = np.asarray(model(chars))
    assert_within_ulps(repaired(chars), want)


@keras.saving.register_keras_serializable(package="graphkit_tests")
class PerSampleUnknown(keras.layers.Layer):
    def call(self, x):
        return x * 2.0

    def compute_output_shape(self, input_shape):
        return input_shape


def test_unknown_inner_layer_is_kept_with_the_reason_and_conversion_goes_on():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(10, 4, name="emb")(inp)
    x = keras.layers.TimeDistributed(PerSampleUnknown(name="mine"), name="td")(x)
    model = keras.Model(inp, x)
    assert "not a layer graphkit knows" in unsupported_part(model.get_layer("td").layer)
    report = convert(model, "onehot-dense")
    (kept,) = [f for f in report.findings if f.rule == "repair_time_distributed"]
    assert kept.status == "kept" and "'mine' (PerSampleUnknown)" in kept.reason
    assert any(n.startswith("kept td") for n in report.notes)
    assert type(report.model.get_layer("td")) is keras.layers.TimeDistributed
    assert [f.path for f in report.converted] == ["emb"]


def test_model_without_keras_time_distributed_is_returned_as_is():
    inp = keras.Input((None,), dtype="int32")
    model = keras.Model(inp, keras.layers.Embedding(5, 2)(inp))
    same, findings = repair(model)
    assert same is model and findings == []


def _inner_with_an_op():
    inp = keras.Input((3,))
    x = keras.layers.Dense(3)(inp)
    return keras.Model(inp, x - keras.ops.mean(x, axis=0))  # mixes the samples of a batch


@pytest.mark.parametrize(
    "inner, why",
    [
        (lambda: keras.layers.Softmax(axis=0), "computes across axis 0"),
        (lambda: keras.layers.UnitNormalization(axis=0), "computes across axis 0"),
        (_inner_with_an_op, "may mix samples"),
        (lambda: keras.layers.GRU(2, stateful=True), "is stateful"),
    ],
)
def test_inner_layers_that_mix_samples_are_kept_with_the_reason(inner, why):
    inp = keras.Input((None, 3), batch_size=2 if "stateful" in why else None)
    model = keras.Model(inp, keras.layers.TimeDistributed(inner(), name="td")(inp))
    same, (finding,) = repair(model)
    assert same is model
    assert finding.status == "kept" and why in finding.reason


def test_convert_to_the_form_a_model_is_already_in_still_repairs_it():
    model = tagger()  # an Embedding model: nothing to convert --to embedding
    report = convert(model, "embedding")
    assert [f.status for f in report.findings] == ["repaired"]
    assert any("no OneHot + Dense group" in n and "to convert" in n for n in report.notes)
    assert type(report.model.get_layer("tags")) is TimeDistributed


def test_nothing_to_convert_and_nothing_to_repair_is_still_an_error():
    from graphkit import GraphkitError

    inp = keras.Input((None,), dtype="int32")
    model = keras.Model(inp, keras.layers.Embedding(5, 2)(inp))
    with pytest.raises(
        GraphkitError, match="nothing to convert: .*already in embedding form .*has no OneHot"
    ):
        convert(model, "embedding")


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_applies():
    keras.utils.set_random_seed(2)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(12, 3, name="emb")(inp)
    return keras.Model(inp, keras.layers.TimeDistributed(keras.layers.Dense(2), name="td")(x))


def _contract_refuses():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(12, 3, name="emb")(inp)
    return keras.Model(inp, keras.layers.TimeDistributed(PerSampleUnknown(), name="td")(x))


CONTRACT = (_contract_applies, "repair", _contract_refuses)
