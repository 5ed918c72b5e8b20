"""Weights as function inputs (never in a GraphDef) and external data beside the .onnx file."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from graphkit.cli import app
from graphkit.errors import GraphkitError
from graphkit.onnx_export import NotEquivalentError, export_onnx

runner = CliRunner()


def _model(vocab=500, dim=8):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(tokens, keras.layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return model


def test_the_traced_graph_holds_no_weight():
    from graphkit.backends.keras_backend import stateless_serving_function

    model = _model(vocab=5000, dim=16)  # a 320 kB table
    serve, specs, variables = stateless_serving_function(model)
    graph = serve.get_concrete_function().graph.as_graph_def()
    biggest = max(
        (len(n.attr["value"].tensor.tensor_content) for n in graph.node if n.op == "Const"),
        default=0,
    )
    assert biggest < 1000  # only small constants: shapes, axes
    assert {tuple(v.shape) for v in variables} >= {(5000, 16)}


def test_external_data_export_verifies_and_runs(tmp_path):
    out = tmp_path / "m.onnx"
    report = export_onnx(_model(), out, external_data=True)
    data = tmp_path / "m.onnx.data"
    assert data.is_file() and report.external_data == str(data)
    assert report.external_bytes >= 500 * 8 * 4 and report.verify.equivalent
    proto = onnx.load(str(out), load_external_data=False)
    table = [t for t in proto.graph.initializer if tuple(t.dims) == (500, 8)]
    assert table and table[0].data_location == onnx.TensorProto.EXTERNAL
    assert {e.key: e.value for e in table[0].external_data}["location"] == "m.onnx.data"
    ran = runner.invoke(app, ["verify", str(tmp_path / "m.onnx"), str(out), "--samples", "8"])
    assert ran.exit_code == 0, ran.output


def test_fuse_onehot_on_external_tables(tmp_path):
    from graphkit.conversion import convert

    onehot = convert(_model(), "onehot-dense").model
    out = tmp_path / "f.onnx"
    report = export_onnx(onehot, out, external_data=True, fuse_onehot=True)
    assert report.passes[0].applied and report.verify.equivalent
    proto = onnx.load(str(out), load_external_data=False)
    fused = [t for t in proto.graph.initializer if tuple(t.dims) == (501, 8)]
    assert fused and fused[0].data_location == onnx.TensorProto.EXTERNAL


def test_model_and_data_are_one_unit(tmp_path, monkeypatch):
    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    export_onnx(_model(), out, external_data=True)
    before = (out.read_bytes(), data.read_bytes())
    with pytest.raises(GraphkitError, match="already exists"):
        export_onnx(_model(), out, external_data=True)
    out.unlink()  # the data file alone still blocks a new export without --force
    with pytest.raises(GraphkitError, match="m.onnx.data: already exists"):
        export_onnx(_model(), out, external_data=True)
    out.write_bytes(before[0])
    # a failed export leaves both as they were, and no temporary folder
    from graphkit.export import onnx as onnx_export

    real = onnx_export.trace
    wrong = _model()
    wrong.set_weights([w + 0.5 for w in wrong.get_weights()])
    monkeypatch.setattr(onnx_export, "trace", lambda m, opset=17, w=None: real(wrong, opset, w))
    with pytest.raises(NotEquivalentError):
        export_onnx(_model(), out, external_data=True, force=True, samples=8)
    assert (out.read_bytes(), data.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    monkeypatch.undo()
    # --force with inline weights replaces the model and removes the old data file
    report = export_onnx(_model(), out, force=True)
    assert out.is_file() and not data.exists()
    assert report.removed == str(data) and f"removed {data}" in report.format()


def test_cli_external_data_flag(tmp_path):
    out = tmp_path / "c.onnx"
    path = tmp_path / "m.keras"
    _model().save(path)
    result = runner.invoke(app, ["export", str(path), "--onnx", "-o", str(out), "--external-data"])
    assert result.exit_code == 0, result.output
    assert "bytes in external data" in result.stdout and (tmp_path / "c.onnx.data").is_file()


def test_report_counts_only_what_the_data_file_holds(tmp_path):
    from graphkit.conversion import convert

    out = tmp_path / "f.onnx"
    report = export_onnx(
        convert(_model(), "onehot-dense").model, out, external_data=True, fuse_onehot=True
    )
    size = (tmp_path / "f.onnx.data").stat().st_size
    assert report.external_bytes <= size < report.external_bytes + 4096 * 8  # + alignment


def test_inline_weights_past_the_protobuf_limit_are_refused_before_tracing(tmp_path, monkeypatch):
    from graphkit import onnx_weights

    monkeypatch.setattr(onnx_weights, "PROTOBUF_LIMIT", 1000)  # the 16 kB table is "too big"
    with pytest.raises(GraphkitError, match="drop --no-external-data"):
        export_onnx(_model(), tmp_path / "x.onnx", external_data=False)
    assert list(tmp_path.iterdir()) == []


def test_an_old_data_file_is_refused_before_the_export_with_external_data(tmp_path):
    (tmp_path / "m.onnx.data").write_bytes(b"old")
    path = tmp_path / "m.keras"
    _model().save(path)
    result = runner.invoke(
        app, ["export", str(path), "--onnx", "-o", str(tmp_path / "m.onnx"), "--external-data"]
    )
    assert result.exit_code == 2 and "m.onnx.data: already exists" in result.stderr
    assert (tmp_path / "m.onnx.data").read_bytes() == b"old"
