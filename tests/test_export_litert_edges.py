"""LiteRT export at its edges (found in review, each once a bug):

- a model that runs eagerly but cannot be traced is one ``error:`` line, as with --onnx;
- ``--target gpu-delegate`` on a model with an int64 index input passes its own GPU op check
  (int32 indices implied, and kept int32 from the signature to the lookup: no CAST pair);
- a lookup-table layer (IntegerLookup) is named in the error, as the ONNX export does.
"""

from __future__ import annotations

import keras
import pytest
from typer.testing import CliRunner

from graphkit import GraphkitError
from graphkit.cli import app
from graphkit.export import export_litert


@keras.saving.register_keras_serializable(package="graphkit_litert_edges")
class PythonIf(keras.layers.Layer):
    """Runs eagerly, but a Python ``if`` on a tensor cannot be traced with autograph off."""

    def call(self, x):
        if keras.ops.sum(x) > 0:
            return x * 2.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def _untraceable():
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, name="emb")(tokens)
    x = PythonIf(name="python_if")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, x)


def test_litert_trace_failure_is_one_error_line(tmp_path):
    path = tmp_path / "untraceable.keras"
    _untraceable().save(path)
    result = CliRunner().invoke(
        app, ["export", str(path), "--litert", "-o", str(tmp_path / "m.tflite")]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output
    assert not (tmp_path / "m.tflite").exists()


def test_gpu_delegate_int64_input_passes_its_own_op_check(tmp_path):
    tokens = keras.Input((8,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(30, 4, name="emb")(tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(tokens, keras.layers.Dense(2, name="head")(x))
    report = export_litert(
        model,
        tmp_path / "m.tflite",
        samples=8,
        target="gpu-delegate",
        fixed_shapes={"tokens": (1, 8)},
    )
    assert report.coverage.op_check_passes, report.coverage.format()


def test_lookup_table_layer_is_named_in_the_litert_error(tmp_path):
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.IntegerLookup(vocabulary=[3, 7, 9], name="lookup")(ids)
    x = keras.layers.Embedding(5, 4)(x)
    model = keras.Model(ids, keras.layers.GlobalAveragePooling1D()(x))
    with pytest.raises(GraphkitError) as info:
        export_litert(model, tmp_path / "m.tflite", samples=8)
    assert "lookup" in str(info.value) and "tf.Placeholder" not in str(info.value)


def test_a_tflite_file_named_onnx_is_recognised(tmp_path):
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, name="emb")(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    keras_path, out = tmp_path / "m.keras", tmp_path / "m.tflite"
    model.save(keras_path)
    export_litert(model, out, samples=8)
    wrong = tmp_path / "m.onnx"
    wrong.write_bytes(out.read_bytes())
    res = CliRunner().invoke(app, ["verify", str(keras_path), str(wrong)])
    assert res.exit_code == 2
    assert "not an ONNX model but a LiteRT (.tflite) file: name it .tflite" in res.stderr


@keras.saving.register_keras_serializable(package="graphkit_litert_edges")
class RelativeDistance(keras.layers.Layer):
    """int64 |i - j| over the positions (as relative-position attention computes): TFLite has
    no int64 ABS or SIGN, but with a fixed length the converter folds them to a constant."""

    def call(self, x):
        pos = keras.ops.arange(keras.ops.shape(x)[1], dtype="int64")
        dist = keras.ops.sign(keras.ops.sum(keras.ops.abs(pos[:, None] - pos[None, :]), axis=-1))
        return x + keras.ops.cast(dist, x.dtype)[None, :, None]

    def compute_output_shape(self, input_shape):
        return input_shape


def _relative():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, name="emb")(tokens)
    x = RelativeDistance(name="rel")(x)
    return keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))


def test_every_op_the_converter_refuses_is_named_with_the_fixed_shape_hint(tmp_path):
    model = _relative()
    with pytest.raises(GraphkitError) as info:
        export_litert(model, tmp_path / "m.tflite", samples=8)
    text = str(info.value)
    assert "ops that are not TFLite builtins: tf.Abs, tf.Sign" in text, text
    assert "fixed_shapes=" in text and "dynamic axes: tokens" in text
    assert not (tmp_path / "m.tflite").exists()
    path = tmp_path / "m.keras"
    model.save(path)
    res = CliRunner().invoke(
        app, ["export", str(path), "--litert", "-o", str(tmp_path / "c.tflite")]
    )
    assert res.exit_code == 2 and "--fixed-shape NAME=DIMS" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # and the hint holds: fixed, the same model converts and verifies
    report = export_litert(model, tmp_path / "f.tflite", samples=8, fixed_shapes={"tokens": (2, 6)})
    assert report.verify.equivalent


def test_keras_quantized_layers_are_named_as_the_cause(tmp_path):
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 16, name="emb")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(3, name="out")(x))
    model.quantize("int8")
    with pytest.raises(GraphkitError) as info:
        export_litert(model, tmp_path / "m.tflite", samples=8)
    text = str(info.value)
    assert "Keras-quantized layers ('emb' (int8), 'out' (int8))" in text, text
    assert "export this one to ONNX" in text and "\n" not in text


def test_each_converter_error_line_once_without_its_source_location():
    from graphkit.export.litert import _converter_errors, _refused_ops

    text = (
        "<unknown>:0: error: loc(fused['Abs:', 'callsite(...)']): 'tf.Abs' op is neither a "
        "custom op nor a flex op\n<unknown>:0: note: see current operation\n"
        "<unknown>:0: error: 'tf.Sign' op is neither a custom op nor a flex op\n"
        "<unknown>:0: error: 'tf.Abs' op is neither a custom op nor a flex op\n"
        "<unknown>:0: error: failed while converting: 'main'\n"
    )
    errors = _converter_errors(RuntimeError(text))
    assert errors[-1] == "failed while converting: 'main'"
    assert _refused_ops(errors) == ["tf.Abs", "tf.Sign"]
