"""export_onnx of what KerasHub models trace to (issue 17): Erfc, FNet's FFT2D, captured constants,
initializers no node reads, string preprocessing; each checked in onnxruntime against Keras."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from graphkit import GraphkitError
from graphkit.cli import app
from graphkit.onnx_export import export_onnx
from graphkit.onnx_passes.graph import node_reads
from graphkit.onnx_weights import Weights

SMALL = dict(num_layers=1, hidden_dim=16, intermediate_dim=32)


def _hub():
    return pytest.importorskip("keras_hub")


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _unread(path) -> list[str]:
    """Initializers of the main graph that no node (subgraphs included) and no output reads."""
    graph = onnx.load(str(path)).graph
    read = {o.name for o in graph.output}.union(*(node_reads(n) for n in graph.node))
    return [t.name for t in graph.initializer if t.name not in read]


def test_erfc_handler_matches_math_erfc():
    """The Erfc handler alone: a traced ``tf.math.erfc`` converts to 1 - Erf, values as erfc."""
    tf = pytest.importorskip("tensorflow")
    import tf2onnx

    from graphkit.tf_graph_fixes import custom_op_handlers

    spec = [tf.TensorSpec((None,), tf.float32, name="x")]
    fn = tf.function(lambda x: tf.math.erfc(x), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=spec, opset=17, custom_op_handlers=custom_op_handlers(17)
    )
    onnx.checker.check_model(proto, full_check=True)
    assert "Erfc" not in {n.op_type for n in proto.graph.node}
    x = np.linspace(-3, 3, 25, dtype=np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x})
    want = np.array([math.erfc(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_distilbert_exact_gelu_exports_and_verifies(tmp_path):
    hub = _hub()
    model = hub.models.DistilBertBackbone(
        vocabulary_size=100, num_heads=2, max_sequence_length=32, **SMALL
    )
    report = export_onnx(model, tmp_path / "m.onnx", samples=8)
    assert report.verify.equivalent
    ops = _ops(tmp_path / "m.onnx")
    assert "Erf" in ops and "Erfc" not in ops


def test_fnet_fft_exports_through_dft(tmp_path):
    hub = _hub()
    model = hub.models.FNetBackbone(vocabulary_size=100, max_sequence_length=32, **SMALL)
    report = export_onnx(model, tmp_path / "m.onnx", samples=8)
    assert report.verify.equivalent
    ops = _ops(tmp_path / "m.onnx")
    assert "DFT" in ops and not ops & {"FFT2D", "Complex", "Real", "Imag"}
    # below opset 17 ONNX has no DFT: refused in one line naming the layer and the op
    with pytest.raises(GraphkitError, match=r"layer 'f_net_layer_0' uses (Complex|FFT2D)") as e:
        export_onnx(model, tmp_path / "old.onnx", opset=16, verify=False)
    assert "\n" not in str(e.value) and "--opset 17" in str(e.value)
    assert not (tmp_path / "old.onnx").exists()


def test_gemma_captured_constant_becomes_an_initializer(tmp_path):
    hub = _hub()
    model = hub.models.GemmaBackbone(
        vocabulary_size=100, num_query_heads=2, num_key_value_heads=1, head_dim=8, **SMALL
    )
    report = export_onnx(model, tmp_path / "m.onnx", samples=8)
    assert report.verify.equivalent
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert sorted(i.name for i in graph.input) == sorted(t.name for t in model.inputs)
    # sqrt(hidden_dim), captured when traced, is now a constant of the graph
    scalars = [numpy_helper.to_array(t) for t in graph.initializer if not t.dims]
    assert any(np.isclose(v, math.sqrt(16)) for v in scalars)


def test_llama_untied_table_is_left_out_and_reported(tmp_path, capfd):
    hub = _hub()
    vocab, hidden = 100, SMALL["hidden_dim"]
    model = hub.models.LlamaBackbone(
        vocabulary_size=vocab, num_query_heads=2, num_key_value_heads=1, **SMALL
    )
    out = tmp_path / "m.onnx"
    report = export_onnx(model, out, samples=8)
    assert report.verify.equivalent
    assert report.left_out_initializers >= 1
    assert report.left_out_bytes >= vocab * hidden * 4  # the reverse table the backbone skips
    assert _unread(out) == []
    assert "left out" in report.format()
    assert report.to_dict()["left_out"]["bytes"] == report.left_out_bytes
    capfd.readouterr()
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert "Removing initializer" not in capfd.readouterr().err


def _dropout_model():
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(20, 4, name="emb")(ids)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    return keras.Model(ids, keras.layers.Dense(2, name="y")(x))


def test_dropout_seed_state_is_left_out_cli_json(tmp_path):
    model = _dropout_model()
    model.save(tmp_path / "m.keras")
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "m.keras"), "--onnx", "--samples", "8", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["left_out"] == {"initializers": 1, "bytes": 16}  # the int64[2] seed state
    assert _unread(tmp_path / "m.onnx") == []


def _if_model(initializers):
    """cond ? (x + w_then) : x, where w_then is read only inside the If's branch."""
    then = helper.make_graph(
        [helper.make_node("Add", ["x", "w_then"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_drop_unused_keeps_what_a_subgraph_reads():
    used = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w_then")
    dead = numpy_helper.from_array(np.zeros((3, 5), np.float32), "dead")
    model = _if_model([used, dead])
    weights = Weights(external=False)
    weights.drop_unused(model)
    assert [t.name for t in model.graph.initializer] == ["w_then"]
    assert weights.left_out == (1, 60)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([10.0, 20.0], np.float32)
    (y,) = sess.run(None, {"cond": np.array(True), "x": x})
    np.testing.assert_array_equal(y, x + [1.0, 2.0])


def test_text_vectorization_is_refused_naming_the_layer(tmp_path):
    tv = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4, name="tv")
    tv.adapt(["a b c", "d e"])
    text = keras.Input((1,), dtype="string", name="text")
    x = keras.layers.Embedding(20, 4, name="emb")(tv(text))
    model = keras.Model(text, keras.layers.GlobalAveragePooling1D()(x))
    with pytest.raises(GraphkitError, match=r"layer 'tv' \(TextVectorization\)") as e:
        export_onnx(model, tmp_path / "m.onnx")
    assert "after its preprocessing" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.onnx").exists()
