"""Rule embedding_to_onehot: layer types after rewriting, exactness, what carries over, refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import graphkit
from graphkit import GraphkitError, _keras_api, examples
from graphkit.conversion import convert
from graphkit.layers import OneHot, TimeDistributed
from tests.conftest import max_abs_diff, run


def _single(vocab=20, dim=3, **kwargs):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    emb = keras.layers.Embedding(vocab, dim, name="emb", **kwargs)
    return keras.Model(inp, emb(inp)), emb


def test_replaces_embedding_by_onehot_and_time_distributed_dense():
    model, emb = _single()
    new = convert(model, "onehot-dense").model
    kinds = [type(layer) for layer in new.layers]
    assert keras.layers.Embedding not in kinds
    onehot = new.get_layer("emb_onehot")
    td = new.get_layer("emb")  # the Embedding was the model output: its name stays
    assert type(onehot) is OneHot and type(td) is TimeDistributed
    assert new.output_names == model.output_names == ["emb"]
    assert type(td.layer) is keras.layers.Dense and td.layer.use_bias is False
    table = emb.get_weights()[0]
    kernel = td.layer.get_weights()[0]
    assert kernel.dtype == table.dtype and kernel.tobytes() == table.tobytes()


def test_rank_one_indices_get_a_plain_dense():
    inp = keras.Input((), dtype="int32", name="user")
    model = keras.Model(inp, keras.layers.Embedding(9, 2, name="emb")(inp))
    new = convert(model, "onehot-dense").model
    assert type(new.get_layer("emb")) is keras.layers.Dense
    x = {"user": np.array([0, 3, 8])}
    assert max_abs_diff(run(model, x), run(new, x)) == 0.0


def test_trainable_regularizer_constraint_and_policy_carry_over():
    model, _ = _single(
        embeddings_regularizer=keras.regularizers.L2(0.01),
        embeddings_constraint=keras.constraints.MaxNorm(2.0),
        dtype=keras.mixed_precision.Policy("mixed_float16"),
    )
    model.get_layer("emb").trainable = False
    new = convert(model, "onehot-dense").model
    td = new.get_layer("emb")
    assert td.trainable is False and td.layer.trainable is False
    assert isinstance(td.layer.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(td.layer.kernel_constraint, keras.constraints.MaxNorm)
    assert td.layer.dtype_policy.name == "mixed_float16"
    assert new.get_layer("emb_onehot").dtype_policy.name == "mixed_float16"
    x = {"tokens": np.array([[1, 2, 19]])}
    out_old, out_new = run(model, x), run(new, x)
    assert out_old[0].dtype == out_new[0].dtype == np.float16
    assert max_abs_diff(out_old, out_new) == 0.0


def test_inner_embedding_gets_suffixed_names_and_the_output_keeps_its_name():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(7, 3, name="emb")(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    new = convert(model, "onehot-dense").model
    assert [layer.name for layer in new.layers] == ["tokens", "emb_onehot", "emb_timedist", "head"]
    assert new.output_names == ["head"]


def test_new_names_do_not_collide_with_existing_layers():
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(5, 2, name="emb")(inp)
    x = keras.layers.Dense(2, name="emb_onehot")(x)
    model = keras.Model(inp, x)
    new = convert(model, "onehot-dense").model
    names = [layer.name for layer in new.layers]
    assert len(names) == len(set(names))
    assert "emb_onehot_1" in names


def test_refuses_non_finite_table_with_reason():
    model, emb = _single()
    table = emb.get_weights()[0]
    table[3, 1] = np.inf
    emb.set_weights([table])
    with pytest.raises(GraphkitError, match="inf or NaN"):
        convert(model, "onehot-dense")


def test_refuses_embedding_subclass_by_name():
    @keras.saving.register_keras_serializable(package="tests")
    class MyEmbedding(keras.layers.Embedding):
        pass

    inp = keras.Input((None,), dtype="int32")
    model = keras.Model(inp, MyEmbedding(5, 2, name="mine")(inp))
    with pytest.raises(GraphkitError, match="mine.*MyEmbedding subclasses Embedding"):
        convert(model, "onehot-dense")


def test_hidden_embeddings_are_swapped_in_place_exactly():
    model = examples.hidden_embedding()
    report = convert(model, "onehot-dense")
    assert {f.path for f in report.converted} == {
        "plain_embedding",
        "token_and_position/token",
        "token_and_position/position",
    }
    layer = report.model.get_layer("token_and_position")
    assert type(layer.token).__name__ == "OneHotEmbedding"
    assert type(model.get_layer("token_and_position").token) is keras.layers.Embedding  # a copy
    x = {"tokens": np.array([[1, 2, 3, 4, 5, 6]])}
    assert max_abs_diff(run(model, x), run(report.model, x)) == 0.0


def test_nothing_to_convert_is_an_error():
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    with pytest.raises(GraphkitError, match="nothing to convert"):
        convert(model, "onehot-dense")


def test_input_model_is_left_independent_by_default():
    model = examples.sequential(seed=0)
    before = [w.copy() for w in model.get_weights()]
    new = convert(model, "onehot-dense").model
    new.get_layer("head").kernel.assign(np.zeros((48, 3), "float32"))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_wrapped_embedding_is_refused_as_wrapped():
    # (a lone TimeDistributed(Embedding) is unwrapped first: unwrap_time_distributed_embedding)
    inp = keras.Input((3, 4), dtype="int32")
    encoder = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(9, 2)])
    wrapped = keras.layers.TimeDistributed(encoder, name="td")
    plain = keras.layers.Embedding(9, 2, name="plain")
    model = keras.Model(inp, [wrapped(inp), plain(inp)])
    with pytest.raises(GraphkitError, match="inside wrapper TimeDistributed 'td'"):
        convert(model, "onehot-dense")
    report = convert(model, "onehot-dense", partial=True)
    assert [f.path for f in report.converted] == ["plain"]


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_applies():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(12, 3, mask_zero=True, name="emb")(inp)
    x = keras.layers.GRU(4, name="gru")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))


@keras.saving.register_keras_serializable(package="graphkit_tests")
class MyEmbedding(keras.layers.Embedding):
    pass


def _contract_refuses():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    return keras.Model(inp, MyEmbedding(12, 3, name="mine")(inp))


CONTRACT = (_contract_applies, "onehot-dense", _contract_refuses)


# --- LoRA: a model loaded from a file has its adapters merged into the table (zeros) ---------


def _lora_model(tmp_path, b_values):
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    emb = keras.layers.Embedding(40, 4, name="emb")
    rev = keras.layers.ReversibleEmbedding(30, 4, name="rev")
    x = keras.layers.Concatenate()([emb(tokens), rev(tokens)])
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    emb.enable_lora(2)
    rev.enable_lora(2)
    emb.lora_embeddings_b.assign(b_values(emb.lora_embeddings_b.shape))
    return model


def test_lora_saved_to_a_file_converts_exactly_and_says_its_adapters_are_left_out(tmp_path):
    rng = np.random.default_rng(0)
    model = _lora_model(tmp_path, lambda shape: rng.normal(size=shape))
    path = tmp_path / "lora.keras"
    model.save(path)  # Keras saves the merged table and loads the adapters as zeros
    report = convert(path, "onehot-dense")
    assert {f.path: f.status for f in report.findings} == {"emb": "converted", "rev": "converted"}
    notes = [n for f in report.findings for n in f.notes]
    assert len(notes) == 2 and all("LoRA (rank 2) is left out" in n for n in notes)
    assert not any(
        getattr(layer, "lora_enabled", False) for layer in _keras_api.flatten_layers(report.model)
    )
    result = graphkit.verify(path, report.model, samples=16)
    assert result.exact and result.weights.ok, result.format()
    x = np.arange(24, dtype="int32").reshape(4, 6) % 30
    assert np.array_equal(np.asarray(model(x)), np.asarray(report.model(x)))  # merged table


def test_lora_adapters_that_add_something_are_refused_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    model = _lora_model(tmp_path, lambda shape: rng.normal(size=shape))
    with pytest.raises(GraphkitError, match="emb .the Embedding has LoRA adapters not merged"):
        convert(model, "onehot-dense", copy=False)
