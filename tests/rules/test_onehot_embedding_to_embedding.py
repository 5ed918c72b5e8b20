"""Rule onehot_embedding_to_embedding: graphkit's OneHotEmbedding -> Embedding, table bit for bit.

OneHotEmbedding is what embedding_to_onehot swaps in for an Embedding held by a custom layer
(tests/test_swaps.py covers those); here it is also called at the graph level.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit.conversion import convert
from graphkit.errors import GraphkitError
from graphkit.layers import OneHotEmbedding


def graph_level():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    emb = OneHotEmbedding(30, 4, mask_zero=True, name="emb")
    h = keras.layers.GRU(3, name="gru")(emb(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2, name="head")(h))
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return model


def test_graph_level_one_hot_embedding_goes_back_exactly_with_its_mask():
    model = graph_level()
    new = convert(model, "embedding").model
    emb = new.get_layer("emb")
    assert type(emb) is keras.layers.Embedding and emb.mask_zero
    assert (
        np.asarray(emb.embeddings).tobytes()
        == np.asarray(model.get_layer("emb").embeddings).tobytes()
    )
    x = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7]], "int32")
    np.testing.assert_array_equal(new(x), model(x))


def test_unbuilt_is_refused():
    layer = OneHotEmbedding(5, 2)
    from graphkit.rules.onehot_embedding_to_embedding import OneHotEmbeddingToEmbedding

    refusal = OneHotEmbeddingToEmbedding().check(layer, None)
    assert refusal is not None and "not built" in refusal.reason


def _contract_refuses():
    model = graph_level()
    model.get_layer("emb").enable_lora(2)  # its LoRA variables would be lost
    return model


def test_contract_counter_example_is_refused_by_convert():
    with pytest.raises(GraphkitError, match="LoRA"):
        convert(_contract_refuses(), "embedding", copy=False)


CONTRACT = (graph_level, "embedding", _contract_refuses)
