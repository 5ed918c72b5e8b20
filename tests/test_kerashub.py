"""KerasHub backbones and tasks (Functional subclasses) at tiny configs, random weights, no
download: converted both ways, proven to call the new layers, bit for bit, reloaded from the
saved file in safe mode."""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
import pytest

import graphkit
from graphkit import _keras_api
from graphkit.layers import OneHotEmbedding, OneHotReversibleEmbedding
from graphkit.verification import synthesize

BERT = dict(
    vocabulary_size=300,
    num_layers=1,
    num_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=32,
)
DECODER = dict(
    vocabulary_size=300,
    num_layers=1,
    num_query_heads=2,
    num_key_value_heads=1,
    hidden_dim=16,
    intermediate_dim=32,
)
MODELS = {
    "Bert": lambda: keras_hub.models.BertBackbone(**BERT),
    "BertTextClassifier": lambda: keras_hub.models.BertTextClassifier(
        keras_hub.models.BertBackbone(**BERT), num_classes=2, preprocessor=None
    ),
    "DistilBert": lambda: keras_hub.models.DistilBertBackbone(**BERT),
    "GPT2CausalLM": lambda: keras_hub.models.GPT2CausalLM(
        keras_hub.models.GPT2Backbone(
            vocabulary_size=300,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=32,
        ),
        preprocessor=None,
    ),
    "Llama": lambda: keras_hub.models.LlamaBackbone(**DECODER),
    "Gemma": lambda: keras_hub.models.GemmaBackbone(**{**DECODER, "head_dim": 8}),
}
IMPORTS = ["keras_hub"]
TWINS = (OneHotEmbedding, OneHotReversibleEmbedding)


def tables(model) -> dict[str, np.ndarray]:
    """Every Embedding-like table of ``model`` by variable path (twins included)."""
    return {
        v.path: np.asarray(v)
        for layer in _keras_api.flatten_layers(model)
        if isinstance(layer, keras.layers.Embedding)
        for v in layer.weights
    }


@pytest.fixture(scope="module", params=list(MODELS))
def saved(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    path = folder / f"{request.param}.keras"
    MODELS[request.param]().save(path)
    return request.param, path


def test_converts_both_ways_bit_for_bit_and_reloads_in_safe_mode(saved):
    name, src = saved
    hot, back = src.with_suffix(".onehot.keras"), src.with_suffix(".back.keras")
    report = graphkit.convert_file(src, "onehot-dense", hot, imports=IMPORTS)
    assert report.converted and not report.refused
    loaded = graphkit.load_model(hot, imports=IMPORTS)  # safe mode: graphkit's record only
    embeddings = [
        x for x in _keras_api.flatten_layers(loaded) if isinstance(x, keras.layers.Embedding)
    ]
    assert embeddings and all(isinstance(x, TWINS) for x in embeddings), name
    verdict = graphkit.verify(src, hot, samples=8, seq_len=6, imports=IMPORTS)
    assert verdict.exact and verdict.weights.ok, verdict.format()
    assert verdict.coverage and all(c.complete for c in verdict.coverage), verdict.format()
    graphkit.convert_file(hot, "embedding", back, imports=IMPORTS)
    original = graphkit.load_model(src, imports=IMPORTS)
    again = graphkit.load_model(back, imports=IMPORTS)
    assert again.count_params() == original.count_params()
    want, got = tables(original), tables(again)
    assert want.keys() == got.keys()
    for path in want:
        np.testing.assert_array_equal(got[path], want[path])
    assert not any(isinstance(x, TWINS) for x in _keras_api.flatten_layers(again))


def test_the_converted_graph_calls_the_new_tables(saved):
    """ "converted" is what the graph does: a changed twin table changes the outputs."""
    name, src = saved
    model = graphkit.load_model(src, imports=IMPORTS)
    converted = graphkit.convert(model, "onehot-dense").model
    from graphkit.backends import KerasBackend

    backend = KerasBackend(converted)
    batch = next(synthesize(backend.inputs, 2, 2, 6, 0))
    before = backend.run(batch)
    for layer in _keras_api.flatten_layers(converted):
        if isinstance(layer, TWINS):
            layer.embeddings.assign(layer.embeddings + 5.0)
    after = KerasBackend(converted).run(batch)
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), name


def test_the_one_hot_export_reads_no_table_with_a_gather(saved, tmp_path):
    import onnx

    name, src = saved
    hot = tmp_path / f"{name}.onehot.keras"
    graphkit.convert_file(src, "onehot-dense", hot, imports=IMPORTS)
    out = tmp_path / f"{name}.onehot.onnx"
    report = graphkit.export_onnx(hot, out, imports=IMPORTS, samples=8, seq_len=6)
    assert report.verify is not None and report.verify.equivalent
    proto = onnx.load(str(out), load_external_data=False)
    tables = {t.name for t in proto.graph.initializer if len(t.dims) == 2}
    gathers = [n.name for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in tables]
    assert not gathers, f"{name}: table lookups left as Gather: {gathers}"
    assert any(n.op_type == "OneHot" for n in proto.graph.node), name
