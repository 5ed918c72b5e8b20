"""Rule unwrap_time_distributed_embedding: TimeDistributed(Embedding) -> the Embedding, exactly."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest

import graphkit
from graphkit import GraphkitError
from graphkit.conversion import convert, repair
from graphkit.engine import Plan, all_layer_names
from graphkit.layers import OneHot
from graphkit.layers import TimeDistributed as GraphkitTimeDistributed
from graphkit.rules import RewriteContext
from graphkit.rules.unwrap_time_distributed_embedding import UnwrapTimeDistributedEmbedding

VOCAB, DIM = 60, 8
WRAPPERS = {"keras": keras.layers.TimeDistributed, "graphkit": GraphkitTimeDistributed}


def chars(batch=3, words=4, length=6, seed=0):
    """(batch, words, chars) character indices, 0-padded words and a padding word."""
    x = np.random.default_rng(seed).integers(1, VOCAB, size=(batch, words, length))
    x[:, :, length - 2 :] = 0
    x[:, -1] = 0
    return x.astype("int32")


def word_model(tail="td_lstm", wrapper="keras", mask_zero=True, sequential=False):
    """Characters -> TimeDistributed(Embedding) -> a masked LSTM per word -> Dense."""
    keras.utils.set_random_seed(4)
    td = WRAPPERS[wrapper]
    inp = keras.Input((None, None), dtype="int32", name="chars")
    layers = [
        td(keras.layers.Embedding(VOCAB, DIM, mask_zero=mask_zero, name="char_emb"), name="td_emb")
    ]
    if tail == "td_lstm":  # graphkit's wrapper here too: the repair would only cost ulps
        layers.append(td(keras.layers.LSTM(5), name="char_lstm"))
    else:  # every character of the sentence in one sequence
        layers += [keras.layers.Reshape((-1, DIM), name="flat"), keras.layers.LSTM(5, name="lstm")]
    layers.append(keras.layers.Dense(3, name="head"))
    if sequential:
        return keras.Sequential([inp, *layers], name="words")
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


def call(model, x):
    return np.asarray(model(x, training=False))


def keras_mask(tensor):
    return getattr(tensor, "_keras_mask", None)


def kinds(model):
    return [type(layer) for layer in model._flatten_layers(include_self=False, recursive=True)]


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_time_distributed_drops_the_mask_of_its_inner_embedding(wrapper):
    """What the rule relies on: no mask leaves a TimeDistributed(Embedding(mask_zero=True)),
    symbolic or eager, while the Embedding on the whole tensor would make one."""
    emb = keras.layers.Embedding(VOCAB, DIM, mask_zero=True)
    td = WRAPPERS[wrapper](emb)
    inp = keras.Input((None, None), dtype="int32")
    assert keras_mask(td(inp)) is None and keras_mask(td(chars())) is None
    assert keras_mask(emb(inp)) is not None
    # ...and the mask would change what a following TimeDistributed(LSTM) computes
    lstm = GraphkitTimeDistributed(keras.layers.LSTM(5))
    wrapped, whole = keras.Model(inp, lstm(td(inp))), keras.Model(inp, lstm(emb(inp)))
    assert np.abs(call(wrapped, chars()) - call(whole, chars())).max() > 1e-4


@pytest.mark.parametrize("tail", ["td_lstm", "reshape"])
@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_unwraps_converts_and_comes_back_exactly(wrapper, tail):
    model = word_model(tail, wrapper)
    x = chars()
    # Keras' TimeDistributed(LSTM) loops per word; the repaired one runs one LSTM call over
    # all words, which may round differently (an ulp). The rule's exactness is measured
    # against the repaired model, which is what the conversion starts from.
    reference = call(repair(model)[0], x)
    report = convert(model, "onehot-dense")
    new = report.model
    mine = [f for f in report.findings if f.rule == "unwrap_time_distributed_embedding"]
    assert [(f.path, f.status, f.new_layers) for f in mine] == [
        ("td_emb", "normalised", ["char_emb"])
    ]
    assert any("mask_zero=True of 'char_emb' masked nothing" in n for n in mine[0].notes)
    assert keras.layers.Embedding not in kinds(new) and OneHot in kinds(new)
    onehot = new.get_layer("char_emb_onehot")
    assert onehot.mask_zero is False  # no mask appears where there was none
    assert np.abs(call(new, x) - reference).max() == 0.0
    if wrapper == "graphkit":  # nothing to repair: bit for bit against the model itself
        assert np.abs(call(new, x) - call(model, x)).max() == 0.0

    back = convert(new, "embedding").model
    embedding = back.get_layer("char_emb")
    assert type(embedding) is keras.layers.Embedding and embedding.mask_zero is False
    assert keras.layers.TimeDistributed not in [type(layer) for layer in back.layers[:2]]
    table = model.get_layer("td_emb").layer.embeddings.numpy()
    assert embedding.embeddings.numpy().tobytes() == table.tobytes()
    assert np.abs(call(back, x) - call(new, x)).max() == 0.0
    assert np.abs(call(back, x) - reference).max() == 0.0


def test_the_following_lstm_sees_the_same_mask_as_before():
    """The same (no) mask reaches the LSTM: the conversion equals the wrapped model and
    differs from an Embedding(mask_zero=True) applied to the whole tensor."""
    model = word_model("td_lstm", "graphkit")
    new = convert(model, "onehot-dense").model
    emb = keras.layers.Embedding(VOCAB, DIM, mask_zero=True)
    inp = keras.Input((None, None), dtype="int32")
    head = model.get_layer("head")
    masked = keras.Model(inp, head(model.get_layer("char_lstm")(emb(inp))))
    emb.set_weights(model.get_layer("td_emb").layer.get_weights())
    x = chars()
    assert np.abs(call(new, x) - call(model, x)).max() == 0.0
    assert np.abs(call(masked, x) - call(model, x)).max() > 1e-4


def test_sequential_model_unwraps_exactly():
    model = word_model("reshape", "keras", sequential=True)
    new = convert(model, "onehot-dense").model
    assert isinstance(new, keras.Sequential)
    assert [layer.name for layer in new.layers][:2] == ["char_emb_onehot", "char_emb_timedist"]
    x = chars()
    assert np.abs(call(new, x) - call(model, x)).max() == 0.0
    back = convert(new, "embedding").model
    assert np.abs(call(back, x) - call(model, x)).max() == 0.0


def test_an_output_keeps_its_name_and_nested_wrappers_unwrap():
    keras.utils.set_random_seed(2)
    inp = keras.Input((None, 3, 4), dtype="int32", name="chars")
    td = keras.layers.TimeDistributed
    out = td(td(keras.layers.Embedding(VOCAB, DIM, name="emb")), name="vectors")(inp)
    model = keras.Model(inp, out)
    report = convert(model, "onehot-dense")
    assert report.model.output_names == model.output_names == ["vectors"]
    assert [f.new_layers for f in report.normalised] == [["vectors"]]
    x = np.random.default_rng(1).integers(0, VOCAB, size=(2, 5, 3, 4)).astype("int32")
    assert np.abs(call(report.model, x) - call(model, x)).max() == 0.0


@keras.saving.register_keras_serializable(package="graphkit_tests")
class CharEmbedding(keras.layers.Embedding):
    pass


@keras.saving.register_keras_serializable(package="graphkit_tests")
class PerWord(keras.layers.Wrapper):
    """A custom wrapper: calls its layer on the whole tensor."""

    def call(self, inputs):
        return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="graphkit_tests")
class MaskedIndices(keras.layers.Layer):
    """Passes int indices on with a mask of its own (non-zero first character)."""

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return keras.ops.not_equal(inputs[..., 0], 0)


def _wrapped(kind):
    inp = keras.Input((None, None), dtype="int32", name="chars")
    emb = keras.layers.Embedding(VOCAB, DIM, name="char_emb")
    td = keras.layers.TimeDistributed
    if kind == "subclass":
        out = td(CharEmbedding(VOCAB, DIM, name="char_emb"), name="td_emb")(inp)
    elif kind == "model":
        encoder = keras.Sequential([keras.Input((None,), dtype="int32"), emb], name="encoder")
        out = td(encoder, name="td_emb")(inp)
    elif kind == "custom wrapper":
        out = PerWord(emb, name="td_emb")(inp)
    elif kind == "shared":
        wrapped = td(emb, name="td_emb")(inp)
        out = keras.layers.Concatenate()([wrapped, emb(inp)])
    else:  # "masked input"
        out = td(emb, name="td_emb")(MaskedIndices(name="masked")(inp))
    return keras.Model(inp, out)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("subclass", "wraps CharEmbedding 'char_emb', which subclasses Embedding"),
        ("model", "wraps a model ('encoder')"),
        ("custom wrapper", "PerWord is not a TimeDistributed"),
        ("shared", "is also used by 'char_emb': an unwrapped copy would untie them"),
        ("masked input", "its input carries a mask"),
    ],
)
def test_other_wrappers_are_kept_with_the_reason_and_conversion_refuses_them(kind, reason):
    model = _wrapped(kind)
    plan = Plan([UnwrapTimeDistributedEmbedding()], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    assert [(f.path, f.status) for f in plan.findings] == [("td_emb", "kept")]
    assert reason in plan.findings[0].reason
    assert plan.replacements == {}
    # kept as it is, converting to onehot-dense then refuses the Embedding inside. (Keras
    # cannot reload a model whose Embedding is both wrapped and called directly, which
    # convert's copy does: "expected 1 variables, but received 0".)
    with pytest.raises(GraphkitError, match="inside wrapper .*'td_emb'"):
        convert(model, "onehot-dense", copy=kind != "shared")


def test_index_range_reads_through_the_wrapper():
    rule = UnwrapTimeDistributedEmbedding()
    wrapped = keras.layers.TimeDistributed(keras.layers.Embedding(VOCAB, DIM, mask_zero=True))
    assert rule.anchors(wrapped) and rule.index_range(wrapped) == (VOCAB, True)
    assert not rule.anchors(keras.layers.TimeDistributed(keras.layers.Dense(2)))
    assert rule.index_range(PerWord(keras.layers.Embedding(VOCAB, DIM))) is None


def test_saved_and_reloaded_with_plain_keras(tmp_path):
    model = word_model("reshape", "keras")
    new = convert(model, "onehot-dense").model
    path = tmp_path / "words.keras"
    new.save(path)
    back = keras.saving.load_model(path)  # safe mode; graphkit imported registers its layers
    x = chars()
    assert np.abs(call(back, x) - call(new, x)).max() == 0.0
    assert np.abs(call(back, x) - call(model, x)).max() == 0.0


def table_gathers(proto, rows: int) -> list[tuple[int, ...]]:
    """Shapes of the 2-D constant tables with ``rows`` rows that Gather nodes read."""
    tables = {i.name: tuple(i.dims) for i in proto.graph.initializer if len(i.dims) == 2}
    return [
        tables[n.input[0]]
        for n in proto.graph.node
        if n.op_type == "Gather" and tables.get(n.input[0], (None,))[0] == rows
    ]


def test_onehot_form_exports_to_onnx_as_onehot_and_fuses_to_a_gather(tmp_path):
    new = convert(word_model("reshape", "keras"), "onehot-dense").model
    plain = graphkit.export_onnx(new, tmp_path / "w.onnx", force=True, samples=8)
    assert plain.verify.equivalent and plain.op_counts.get("OneHot") == 1
    assert table_gathers(onnx.load(str(tmp_path / "w.onnx")), VOCAB) == []
    fused = graphkit.export_onnx(new, tmp_path / "w.onnx", force=True, fuse_onehot=True, samples=8)
    assert fused.verify.equivalent and "OneHot" not in fused.op_counts
    assert fused.passes[0].applied
    # one extra zero row for the indices a one-hot gives zeros for
    assert table_gathers(onnx.load(str(tmp_path / "w.onnx")), VOCAB + 1) == [(VOCAB + 1, DIM)]


# --- the registry contract (tests/rules/test_contract.py) -----------------------------------


def _contract_rewrites():
    return word_model("reshape", "keras")


def _contract_refuses():
    return _wrapped("subclass")


CONTRACT = (_contract_rewrites, "onehot-dense", _contract_refuses)
