"""GraphView: the read-only view of one model level that rules inspect."""

from __future__ import annotations

import keras

from graphkit.graph import OUTPUT, GraphView


def test_functional_call_sites_consumers_and_outputs():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    side = keras.Input((3,), name="side")
    emb = keras.layers.Embedding(5, 3, name="emb")
    shared = keras.layers.Dense(3, name="shared")
    x = shared(keras.layers.GlobalAveragePooling1D(name="pool")(emb(inp)))
    y = shared(side)
    model = keras.Model([inp, side], [keras.layers.Add(name="add")([x, y]), x])
    graph = GraphView(model)
    names = [layer.name for layer in graph.layers]
    assert set(names) == {"emb", "pool", "shared", "add"} and len(names) == 4
    (site,) = graph.call_sites(emb)
    assert site.input_rank == 2 and site.producer is None  # reads a model input
    assert [(c.name, main) for c, main in site.consumers] == [("pool", True)]
    sites = graph.call_sites(shared)
    assert len(sites) == 2  # a shared layer: one site per call
    assert {s.producer.name if s.producer else None for s in sites} == {"pool", None}
    consumers = [(c if c is OUTPUT else c.name, main) for s in sites for c, main in s.consumers]
    assert (
        ("add", True) in consumers and ("add", False) in consumers and (OUTPUT, True) in consumers
    )
    assert graph.is_output(shared) and graph.is_output(model.get_layer("add"))
    assert not graph.is_output(emb)


def test_sequential_sites_follow_the_layer_list():
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            keras.layers.Embedding(9, 2, name="emb"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    graph = GraphView(model)
    assert [layer.name for layer in graph.layers] == ["emb", "flat", "head"]
    ranks = [graph.call_sites(layer)[0].input_rank for layer in graph.layers]
    assert ranks == [2, 3, 2]
    assert graph.call_sites(model.get_layer("flat"))[0].producer.name == "emb"
    assert graph.is_output(model.get_layer("head")) and not graph.is_output(model.get_layer("emb"))
