"""Embeddings where graph surgery cannot reach: attributes of custom layers and subclassed models.

The custom classes live in ``fixtures/custom_layers.py`` (keras.io's TokenAndPositionEmbedding
and RecommenderNet, and a layer holding Embeddings in a list, a dict and a nested layer),
imported the way users do it: ``--import fixtures/custom_layers.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import graphkit
from graphkit.cli import app
from graphkit.conversion import convert
from graphkit.errors import GraphkitError
from graphkit.io import import_user_code, save_model
from graphkit.layers import OneHotEmbedding
from tests.conftest import FIXTURES

CUSTOM = str(FIXTURES / "custom_layers.py")
import_user_code([CUSTOM])
layers = sys.modules["graphkit_user_custom_layers"]
runner = CliRunner()


def _init(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype(w.dtype))
    return model


def text_classifier():
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = layers.TokenAndPositionEmbedding(6, 40, 4, name="tok_pos")(tokens)
    h = h + layers.FieldEncoder(40, 4, name="fields")(tokens)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(h))
    return _init(keras.Model(tokens, out, name="classifier"))


def recommender():
    model = layers.RecommenderNet(20, 15, 4, name="recommender")
    model(np.zeros((2, 2), "int32"))
    return _init(model)


X_TEXT = np.random.default_rng(1).integers(0, 40, (7, 6)).astype("int32")
X_REC = np.stack([np.arange(9) % 20, np.arange(9) % 15], 1).astype("int32")


def _embeddings(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Embedding)]


def _tables(model):
    """Every table's bytes, in the model's layer order (names of unnamed layers change on load)."""
    return [np.asarray(layer.embeddings).tobytes() for layer in _embeddings(model)]


@pytest.mark.parametrize("make, x", [(text_classifier, X_TEXT), (recommender, X_REC)])
def test_both_ways_exact_bitwise_tables_same_parameter_count(make, x):
    model = make()
    onehot = convert(model, "onehot-dense")
    assert all(type(e) is OneHotEmbedding for e in _embeddings(onehot.model))
    np.testing.assert_array_equal(onehot.model(x), model(x))
    assert onehot.model.count_params() == model.count_params()
    back = convert(onehot.model, "embedding")
    assert all(type(e) is keras.layers.Embedding for e in _embeddings(back.model))
    np.testing.assert_array_equal(back.model(x), model(x))
    assert _tables(back.model) == _tables(model)
    assert back.model.count_params() == model.count_params()


def test_each_replaced_attribute_is_reported_by_its_path():
    report = convert(text_classifier(), "onehot-dense")
    assert {f.path for f in report.converted} == {
        "tok_pos/token_emb",
        "tok_pos/pos_emb",
        "fields/fields[0]",
        "fields/fields[1]",
        "fields/by_name['colour']",
        "fields/inner/token",
        "fields/inner/position",
    }
    fields = report.model.get_layer("fields")
    assert fields.same is fields.fields[0]  # held twice: one twin, still shared
    assert all("swapped in place" in f.notes[0] for f in report.converted)
    rec = convert(recommender(), "onehot-dense")
    assert {f.path for f in rec.converted} == {"user_emb", "user_bias", "item_emb", "item_bias"}


@pytest.mark.parametrize("make, x", [(text_classifier, X_TEXT), (recommender, X_REC)])
def test_saved_one_hot_form_reloads_as_such_with_graphkit(make, x, tmp_path):
    model = make()
    onehot = convert(model, "onehot-dense").model
    path = tmp_path / "m.keras"
    save_model(onehot, path)
    back = keras.saving.load_model(path)  # safe mode; graphkit and the user's module imported
    assert all(type(e) is OneHotEmbedding for e in _embeddings(back))
    np.testing.assert_array_equal(back(x), model(x))
    # and going back from the file gives the user's own classes and tables again
    restored = convert(back, "embedding").model
    save_model(restored, tmp_path / "r.keras")
    again = keras.saving.load_model(tmp_path / "r.keras")
    assert _tables(again) == _tables(model)
    config = json.dumps(json.loads(restored.to_json()))
    assert "graphkit>Swapped" not in config and "OneHotEmbedding" not in config


def test_without_graphkit_the_file_is_refused_never_silently_different(tmp_path):
    path = tmp_path / "rec.keras"
    save_model(convert(recommender(), "onehot-dense").model, path)
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        import keras
        spec = importlib.util.spec_from_file_location("custom_layers", {CUSTOM!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            keras.saving.load_model({str(path)!r})
        except Exception as exc:
            print("REFUSED", exc)
        else:
            print("LOADED")
        print("graphkit imported:", "graphkit" in sys.modules)
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    ).stdout
    assert "REFUSED" in out and "graphkit>Swapped" in out
    assert "graphkit imported: False" in out


def test_unbuilt_subclassed_model_says_how_to_build_it():
    model = layers.RecommenderNet(5, 5, 2)
    import graphkit

    with pytest.raises(GraphkitError, match=r"never built or called.*model\(x\)"):
        graphkit.verify(model, model, samples=4)


def test_subclassed_model_verifies_and_exports_without_gather_on_tables(tmp_path):
    import graphkit

    model = recommender()
    onehot = convert(model, "onehot-dense").model
    report = graphkit.verify(model, onehot, samples=64)
    assert report.exact and report.inputs[0].vocab == 15
    out = tmp_path / "rec.onnx"
    exported = graphkit.export_onnx(onehot, out, force=True)
    assert exported.verify.equivalent
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert "OneHot" in ops and "MatMul" in ops and "Gather" not in ops
    fused = graphkit.export_onnx(onehot, tmp_path / "fused.onnx", fuse_onehot=True, force=True)
    assert fused.verify.equivalent
    ops = [n.op_type for n in onnx.load(tmp_path / "fused.onnx").graph.node]
    assert ops.count("Gather") == 4 and "OneHot" not in ops and "MatMul" not in ops


def test_cli_on_a_subclassed_model_file(tmp_path):
    src = tmp_path / "rec.keras"
    save_model(recommender(), src)
    inspected = runner.invoke(app, ["inspect", str(src), "--import", CUSTOM, "--json"])
    assert inspected.exit_code == 0, inspected.output
    data = json.loads(inspected.stdout)
    assert [i["name"] for i in data["inputs"]] == ["input"] and data["inputs"][0][
        "dtype"
    ] == "int32"
    assert [o["name"] for o in data["outputs"]] == ["recommender"]
    paths = [r["path"] for r in data["layers"] if r["role"] == "embedding"]
    assert sorted(paths) == ["item_bias", "item_emb", "user_bias", "user_emb"]
    out = tmp_path / "rec.onehot.keras"
    converted = runner.invoke(
        app, ["convert", str(src), "--to", "onehot-dense", "-o", str(out), "--import", CUSTOM]
    )
    assert converted.exit_code == 0, converted.output
    assert "converted  user_emb (Embedding)" in converted.stdout
    verified = runner.invoke(app, ["verify", str(src), str(out), "--import", CUSTOM])
    assert verified.exit_code == 0, verified.output
    assert "EQUIVALENT (bit for bit on " in verified.stdout


@pytest.mark.parametrize(
    "path, target",
    [
        ("call/__globals__['layers']", "graphkit>OneHotEmbedding"),
        ("_tracker", "graphkit>OneHotEmbedding"),
        ("user_emb", "graphkit>Swapped"),
        ("user_emb", "keras>Dense"),
        ("num_users", "graphkit>OneHotEmbedding"),
    ],
)
def test_a_crafted_swap_record_is_refused_and_changes_nothing(path, target, tmp_path):
    import zipfile

    src = tmp_path / "rec.keras"
    save_model(convert(recommender(), "onehot-dense").model, src)
    with zipfile.ZipFile(src) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["swaps"] = {path: target}
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    before = {k: v for k, v in vars(layers).items() if not k.startswith("__")}
    with pytest.raises(Exception, match="graphkit>Swapped"):
        keras.saving.load_model(bad)
    assert {k: v for k, v in vars(layers).items() if not k.startswith("__")} == before


def test_converting_a_never_built_subclassed_model_says_how_to_build_it():
    with pytest.raises(GraphkitError, match=r"never built or called.*model\(x\)"):
        convert(layers.RecommenderNet(5, 5, 2), "onehot-dense")


def test_a_twin_the_custom_call_never_calls_is_reported():
    @keras.saving.register_keras_serializable(package="test_swaps")
    class DirectTable(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.emb = keras.layers.Embedding(10, 3)
            self.used = keras.layers.Embedding(10, 3)

        def build(self, shape):
            self.emb.build()
            self.used.build()

        def call(self, x):  # reads one table directly: its lookup stays a Gather
            return keras.ops.take(self.emb.embeddings, x, axis=0) + self.used(x)

    tokens = keras.Input((4,), dtype="int32", name="tokens")
    model = keras.Model(tokens, DirectTable(name="direct")(tokens))
    # "converted" means the graph calls the new layer: this one it never does
    with pytest.raises(GraphkitError, match=r"direct/emb \(the model's graph never calls"):
        convert(model, "onehot-dense")
    report = convert(model, "onehot-dense", partial=True)
    assert [f.path for f in report.converted] == ["direct/used"]
    [refused] = report.refused
    assert refused.path == "direct/emb" and "reads the table directly" in refused.reason
    direct = report.model.get_layer("direct")
    assert type(direct.emb) is keras.layers.Embedding  # the useless swap was undone
    assert type(direct.used).__name__ == "OneHotEmbedding"
    x = np.array([[1, 2, 3, 4]], "int32")
    np.testing.assert_array_equal(report.model(x), model(x))
    # inspect promises what convert does: the uncalled twin is not "convertible"
    rows = {r.path: r for r in graphkit.inspect_model(model).rows}
    assert not rows["direct/emb"].convertible and "never calls" in rows["direct/emb"].mark
    assert rows["direct/used"].convertible
