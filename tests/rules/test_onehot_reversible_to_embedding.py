"""Rule onehot_reversible_to_embedding: OneHotReversibleEmbedding -> ReversibleEmbedding, bit for bit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.conversion import convert
from graphkit.layers import OneHotReversibleEmbedding
from graphkit.rules import variant_of
from tests.rules.test_reversible_embedding_to_onehot import VARIANTS, call, gpt, max_abs, tokens


def onehot_gpt(**options):
    """The miniature GPT in its one-hot form, written directly with graphkit's layer."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    rev = OneHotReversibleEmbedding(500, 16, embeddings_initializer="normal", name="rev", **options)
    h = keras.layers.Dense(16, activation="relu", name="mlp")(rev(inp))
    return keras.Model(inp, rev(h, reverse=True), name="gpt")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_back_to_reversible_embedding_exactly(variant):
    options = VARIANTS[variant]
    model = onehot_gpt(**options)
    report = convert(model, "embedding")
    back = report.model
    assert [(f.path, f.rule, f.status) for f in report.findings] == [
        ("rev", "onehot_reversible_to_embedding", "converted")
    ]
    rev = back.get_layer("rev")
    assert type(rev) is keras.layers.ReversibleEmbedding
    assert [type(layer) for layer in back.layers].count(keras.layers.ReversibleEmbedding) == 1
    assert rev.get_config() == model.get_layer("rev").get_config()
    assert back.count_params() == model.count_params() and len(back.weights) == len(model.weights)
    assert [w.tobytes() for w in back.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert max_abs(call(back, tokens()), call(model, tokens())) == 0.0


def test_round_trip_from_the_one_hot_form_and_variants():
    model = onehot_gpt(tie_weights=False, mask_zero=True)
    assert variant_of(model) == "onehot-dense"
    back = convert(model, "embedding").model
    assert variant_of(back) == "embedding"
    again = convert(back, "onehot-dense").model
    assert type(again.get_layer("rev")) is OneHotReversibleEmbedding
    assert [w.tobytes() for w in again.get_weights()] == [w.tobytes() for w in model.get_weights()]
    assert max_abs(call(again, tokens()), call(model, tokens())) == 0.0


def test_saved_and_reloaded_with_plain_keras(tmp_path):
    back = convert(convert(gpt(mask_zero=True), "onehot-dense").model, "embedding").model
    path = tmp_path / "gpt.keras"
    back.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("rev")) is keras.layers.ReversibleEmbedding
    assert max_abs(call(loaded, tokens()), call(gpt(mask_zero=True), tokens())) == 0.0


def test_sequential_lookup_comes_back():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    model = keras.Sequential([inp, OneHotReversibleEmbedding(500, 16, name="rev")], name="seq")
    back = convert(model, "embedding").model
    assert [type(layer) for layer in back.layers] == [keras.layers.ReversibleEmbedding]
    x = np.array([[1, 2, 499]], "int32")
    assert max_abs(call(back, x), call(model, x)) == 0.0


def test_lora_is_refused_with_the_reason():
    model = _contract_refuses()
    with pytest.raises(GraphkitError, match="LoRA enabled; merge or disable LoRA first"):
        convert(model, "embedding", copy=False)


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_rewrites():
    return onehot_gpt(mask_zero=True)


def _contract_refuses():
    model = onehot_gpt()
    model.get_layer("rev").enable_lora(2)  # LoRA variables a plain copy would lose
    return model


CONTRACT = (_contract_rewrites, "embedding", _contract_refuses)
