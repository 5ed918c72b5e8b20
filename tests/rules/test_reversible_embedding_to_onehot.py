"""Rule reversible_embedding_to_onehot: a tied ReversibleEmbedding -> OneHotReversibleEmbedding."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest

import graphkit
from graphkit import GraphkitError, _keras_api
from graphkit.conversion import convert
from graphkit.layers import OneHotReversibleEmbedding
from graphkit.rules import EmbeddingToOneHot, forms, target_from, variant_of

VOCAB, DIM = 500, 16
VARIANTS = {
    "tied": {},
    "masked": {"mask_zero": True},
    "untied": {"tie_weights": False},
    "soft cap": {"logit_soft_cap": 2.0, "reverse_dtype": "float32"},
    "mixed": {"dtype": "mixed_float16", "reverse_dtype": "float32"},
}


def gpt(sequential=False, **options):
    """A miniature GPT: tokens -> rev -> causal self-attention -> MLP -> rev(h, reverse=True)."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    rev = keras.layers.ReversibleEmbedding(
        VOCAB, DIM, embeddings_initializer="normal", name="rev", **options
    )
    if sequential:  # the lookup only: a Sequential cannot call a layer twice
        return keras.Sequential([inp, rev, keras.layers.Dense(4, name="head")], name="lookup")
    policy = options.get("dtype")
    h = rev(inp)
    a = keras.layers.MultiHeadAttention(2, 8, name="att", dtype=policy)(h, h, use_causal_mask=True)
    h = keras.layers.LayerNormalization(name="ln", dtype=policy)(keras.layers.Add()([h, a]))
    h = keras.layers.Dense(DIM, activation="relu", name="mlp", dtype=policy)(h)
    return keras.Model(inp, rev(h, reverse=True), name="gpt")


def tokens(batch=3, length=7, seed=0):
    x = np.random.default_rng(seed).integers(1, VOCAB, size=(batch, length))
    x[:, length - 2 :] = 0  # padding: the mask matters
    return x.astype("int32")


def call(model, x):
    return np.asarray(model(x, training=False))


def max_abs(a, b) -> float:
    return float(np.abs(a.astype("float64") - b.astype("float64")).max())


def weights_bitwise(a, b) -> bool:
    return [w.tobytes() for w in a.get_weights()] == [w.tobytes() for w in b.get_weights()]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_one_layer_at_both_call_sites_exact_same_parameters(variant):
    model = gpt(**VARIANTS[variant])
    report = convert(model, "onehot-dense")
    new = report.model
    assert [(f.path, f.rule, f.status) for f in report.findings] == [
        ("rev", "reversible_embedding_to_onehot", "converted")
    ]
    rev = new.get_layer("rev")
    assert type(rev) is OneHotReversibleEmbedding
    # one layer object, called for the lookup and with reverse=True for the logits
    assert [type(layer) for layer in new.layers].count(OneHotReversibleEmbedding) == 1
    assert len(_keras_api.inbound_nodes(rev)) == 2
    assert new.count_params() == model.count_params()
    assert len(new.weights) == len(model.weights)  # the tie stays a tie
    assert weights_bitwise(new, model)
    old_config = model.get_layer("rev").get_config()
    assert rev.get_config() == old_config
    x = tokens()
    out_old, out_new = call(model, x), call(new, x)
    assert out_new.dtype == out_old.dtype and out_new.shape == (3, 7, VOCAB)
    assert max_abs(out_new, out_old) == 0.0


def test_the_mask_reaches_the_attention_as_before():
    x = tokens()
    masked = convert(gpt(mask_zero=True), "onehot-dense").model
    unmasked = convert(gpt(), "onehot-dense").model
    assert max_abs(call(masked, x), call(gpt(mask_zero=True), x)) == 0.0
    assert max_abs(call(masked, x), call(unmasked, x)) > 1e-4  # the mask changes the logits


@pytest.mark.parametrize("variant", ["tied", "untied"])
def test_round_trip_gives_back_the_keras_layer_bit_for_bit(variant):
    model = gpt(**VARIANTS[variant])
    back = convert(convert(model, "onehot-dense").model, "embedding").model
    rev = back.get_layer("rev")
    assert type(rev) is keras.layers.ReversibleEmbedding
    assert rev.get_config() == model.get_layer("rev").get_config()
    assert weights_bitwise(back, model) and back.count_params() == model.count_params()
    assert max_abs(call(back, tokens()), call(model, tokens())) == 0.0


def test_forms_and_variants():
    model = gpt()
    new = convert(model, "onehot-dense").model
    assert variant_of(model) == "embedding" and variant_of(new) == "onehot-dense"
    assert forms() == ["embedding", "onehot-dense"] and target_from("embedding") == "onehot-dense"


def test_sequential_lookup_converts_exactly():
    model = gpt(sequential=True, mask_zero=True)
    new = convert(model, "onehot-dense").model
    assert isinstance(new, keras.Sequential)
    assert [type(layer) for layer in new.layers] == [OneHotReversibleEmbedding, keras.layers.Dense]
    assert max_abs(call(new, tokens()), call(model, tokens())) == 0.0


def test_embedding_to_onehot_leaves_reversible_and_one_hot_twins_to_their_rules():
    rule = EmbeddingToOneHot()
    assert not rule.anchors(keras.layers.ReversibleEmbedding(5, 2))
    assert not rule.anchors(OneHotReversibleEmbedding(5, 2))
    assert rule.anchors(keras.layers.Embedding(5, 2))


def test_saved_and_reloaded_with_plain_keras(tmp_path):
    model = gpt(mask_zero=True)
    new = convert(model, "onehot-dense").model
    path = tmp_path / "gpt.keras"
    new.save(path)
    back = keras.saving.load_model(path)  # safe mode; graphkit imported registers its layers
    assert type(back.get_layer("rev")) is OneHotReversibleEmbedding
    assert back.count_params() == model.count_params()
    x = tokens()
    assert max_abs(call(back, x), call(new, x)) == 0.0


def test_refuses_a_quantized_or_non_finite_table_with_the_reason():
    model = gpt()
    model.get_layer("rev").quantize("int8")
    with pytest.raises(
        GraphkitError, match="rev \\(the ReversibleEmbedding is quantized \\(int8\\)"
    ):
        convert(model, "onehot-dense", copy=False)
    model = gpt()
    table = model.get_layer("rev").embeddings.numpy()
    table[3, 1] = np.nan
    model.get_layer("rev").embeddings.assign(table)
    with pytest.raises(GraphkitError, match="inf or NaN") as info:
        convert(model, "onehot-dense")
    assert "subclasses Embedding" not in str(info.value)  # one rule's reason, not two


def table_gathers(proto, rows: int) -> list[tuple[int, ...]]:
    """Shapes of the 2-D constant tables with ``rows`` rows that Gather nodes read."""
    tables = {i.name: tuple(i.dims) for i in proto.graph.initializer if len(i.dims) == 2}
    return [
        tables[n.input[0]]
        for n in proto.graph.node
        if n.op_type == "Gather" and tables.get(n.input[0], (None,))[0] == rows
    ]


def test_onehot_form_exports_to_onnx_as_onehot_and_fuses_to_a_gather(tmp_path):
    new = convert(gpt(), "onehot-dense").model
    path = tmp_path / "gpt.onnx"
    plain = graphkit.export_onnx(new, path, force=True, samples=8)
    assert plain.verify.equivalent and plain.op_counts.get("OneHot") == 1
    assert table_gathers(onnx.load(str(path)), VOCAB) == []
    fused = graphkit.export_onnx(new, path, force=True, fuse_onehot=True, samples=8)
    assert fused.verify.equivalent and "OneHot" not in fused.op_counts
    assert fused.passes[0].applied
    assert table_gathers(onnx.load(str(path)), VOCAB + 1) == [(VOCAB + 1, DIM)]


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_rewrites():
    return gpt(mask_zero=True)


def _contract_refuses():
    model = gpt()
    model.get_layer("rev").quantize("int8")
    return model


CONTRACT = (_contract_rewrites, "onehot-dense", _contract_refuses)
