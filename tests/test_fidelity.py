"""Fidelity: the Keras reference is the eager call, outputs pair by name, reports tell what ran."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import graphkit
from graphkit import GraphkitError
from graphkit.backends import KerasBackend, OnnxBackend, probe_batch
from graphkit.cli import app
from graphkit.errors import cause_line, one_line
from graphkit.io import save_model
from graphkit.onnx_export import export_onnx, to_onnx_proto
from tests.conftest import FIXTURES
from tests.rules.test_repair_time_distributed import tagger, tokens

runner = CliRunner()


@pytest.fixture(scope="module")
def tagger_files(tmp_path_factory):
    """The issue's tagger (Keras TimeDistributed head, softmax), saved and exported."""
    folder = tmp_path_factory.mktemp("tagger")
    model = tagger("softmax")
    save_model(model, folder / "tagger.keras")
    report = export_onnx(folder / "tagger.keras", folder / "tagger.onnx")
    return model, folder, report


def test_exported_tagger_equals_the_eager_call_at_every_length_in_one_session(tagger_files):
    model, folder, report = tagger_files
    assert [(f.path, f.status) for f in report.repairs] == [("tags", "repaired")]
    assert "repaired tags (TimeDistributed)" in report.format()
    session = ort.InferenceSession(str(folder / "tagger.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["tags"]
    for shape in [(4, 35), (3, 7), (1, 50), (16, 16)]:
        x = tokens(*shape)
        (got,) = session.run(None, {"tokens": x})
        want = np.asarray(model(x))
        assert got.shape == want.shape == shape + (7,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_verify_and_run_agree_with_the_eager_call_on_a_35_step_batch(tagger_files, tmp_path):
    model, folder, _ = tagger_files
    x = tokens(4, 35)
    np.savez(tmp_path / "batch.npz", tokens=x)
    report = graphkit.verify(
        folder / "tagger.keras", folder / "tagger.onnx", tmp_path / "batch.npz"
    )
    assert report.equivalent, report.format()
    assert report.outputs[0].shape == (4, 35, 7)
    assert "tokens (4, 35) int32" in report.format()
    out = runner.invoke(
        app, ["run", str(folder / "tagger.onnx"), "--inputs", str(tmp_path / "batch.npz")]
    )
    assert out.exit_code == 0 and "tags: shape (4, 35, 7)" in out.stdout


def test_keras_reference_runs_eagerly_where_the_trace_is_wrong_and_names_the_layer():
    model = tagger()
    backend = KerasBackend(model, "tagger.keras")
    x = tokens(16, 16)  # batch == length: the trace looks right on this batch alone
    (got,) = backend.run({"tokens": x})
    assert backend.mode == "eager"
    (note,) = backend.notes
    assert "'tags' (TimeDistributed)" in note and "eager" in note
    np.testing.assert_array_equal(got, np.asarray(model(x)))
    (again,) = backend.run({"tokens": tokens(3, 7)})
    assert again.shape == (3, 7, 7)


def test_keras_reference_keeps_the_checked_trace_where_it_is_right():
    backend = KerasBackend(graphkit.convert(tagger(), "onehot-dense").model)
    x = tokens(5, 9)
    (got,) = backend.run({"tokens": x})
    assert backend.mode == "traced" and backend.notes == []
    np.testing.assert_array_equal(got, np.asarray(backend.model(x)))


def test_probe_batch_size_differs_from_every_variable_length():
    spec = KerasBackend(tagger()).inputs
    for n, length in [(16, 16), (1, 1), (3, 4), (4, 3), (256, 8), (256, 9)]:
        batch = tokens(n, length)
        (x,) = probe_batch([batch], spec)
        assert x.shape[0] != length and x.shape[1] == length
        assert x.shape[0] <= 9  # a few rows: the eager half of the check stays cheap
        np.testing.assert_array_equal(x[0], batch[0])  # rows of the batch itself


def test_verify_catches_an_onnx_with_keras_time_distributed_bug(tmp_path):
    model = tagger()
    bad = tmp_path / "unrepaired.onnx"
    onnx.save_model(to_onnx_proto(model), str(bad))  # traced as is: Keras' bug inside
    # batch size 16 == length 16 would hide it: verify's first batch is one sample shorter
    report = graphkit.verify(model, bad, samples=32, batch_size=16, seq_len=16)
    assert not report.equivalent
    assert report.outputs[0].shape_mismatch is not None
    assert any("first batch of 15 samples" in n for n in report.notes)


def test_outputs_are_paired_by_name_when_the_onnx_lists_them_in_another_order(tmp_path):
    path = tmp_path / "two.onnx"
    export_onnx(FIXTURES / "multi_io_shared.keras", path)
    proto = onnx.load(str(path))
    outputs = list(proto.graph.output)
    assert len(outputs) == 2
    del proto.graph.output[:]
    proto.graph.output.extend(reversed(outputs))
    onnx.save_model(proto, str(path))
    report = graphkit.verify(FIXTURES / "multi_io_shared.keras", path, samples=16)
    assert report.equivalent, report.format()
    assert [o.name for o in report.outputs] == KerasBackend(
        graphkit.load_model(FIXTURES / "multi_io_shared.keras")
    ).output_names


def test_onnx_outputs_take_the_keras_names_even_when_a_tensor_already_has_one(tmp_path):
    inp = keras.Input((3,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="Identity")(inp))
    proto = to_onnx_proto(model)
    assert [o.name for o in proto.graph.output] == ["Identity"]
    onnx.checker.check_model(proto, full_check=True)


def test_h5_that_keras_cannot_read_back_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "masked.h5"
    result = runner.invoke(
        app,
        ["convert", str(FIXTURES / "masked_lstm.keras"), "--to", "onehot-dense", "-o", str(out)],
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {out}: Keras cannot load back the file it writes")
    assert "NotEqual" in line and ".keras" in line and "--import" not in line
    assert list(tmp_path.iterdir()) == []


def test_loading_an_h5_with_keras_mask_ops_does_not_suggest_import(tmp_path):
    keras_h5 = tmp_path / "from_keras.h5"
    graphkit.load_model(FIXTURES / "masked_lstm.keras").save(keras_h5)  # Keras' own writer
    result = runner.invoke(app, ["inspect", str(keras_h5)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "unknown layer 'NotEqual': if it is Keras' own operation" in line
    assert "save the model as .keras" in line


@keras.saving.register_keras_serializable(package="blog")
class OneHot(keras.layers.Layer):  # the blog's name, a Keras op's name too
    def call(self, x):
        return keras.ops.one_hot(keras.ops.cast(x, "int32"), 4)

    def compute_output_shape(self, shape):
        return tuple(shape) + (4,)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_users_layer_named_like_a_keras_operation_asks_for_import(tmp_path, suffix):
    inp = keras.Input((3,), dtype="int32")
    path = tmp_path / f"blog{suffix}"
    keras.Model(inp, OneHot()(inp)).save(path)
    from keras.src.saving import object_registration

    registry = object_registration.GLOBAL_CUSTOM_OBJECTS
    saved = registry.pop("blog>OneHot")
    try:
        result = runner.invoke(app, ["inspect", str(path)])
    finally:
        registry["blog>OneHot"] = saved
    assert result.exit_code == 2
    assert "--import" in result.stderr and "Keras' own operation" not in result.stderr


def test_fused_model_reports_and_checks_the_real_vocabulary(tmp_path):
    onehot = graphkit.convert(graphkit.load_model(FIXTURES / "sequential.keras"), "onehot-dense")
    path = tmp_path / "fused.onnx"
    export_onnx(onehot.model, path, fuse_onehot=True)
    vocab = OnnxBackend(tmp_path / "fused.onnx").inputs[0].vocab
    (embedding,) = [
        layer
        for layer in graphkit.load_model(FIXTURES / "sequential.keras").layers
        if isinstance(layer, keras.layers.Embedding)
    ]
    assert vocab == embedding.input_dim  # not input_dim + 1: the fused table's extra row
    bad = np.zeros((1, 6), "int32")
    bad[0, 2] = vocab
    np.save(tmp_path / "bad.npy", bad)
    result = runner.invoke(app, ["run", str(path), "--inputs", str(tmp_path / "bad.npy")])
    assert result.exit_code == 2
    assert f"valid indices are 0..{vocab - 1}" in result.stderr


TF_ERROR = (
    "Graph execution error:\n\nDetected at node functional_1/time_distributed_1/strided_slice "
    'defined at (most recent call last):\n  File "x.py", line 3, in <module>\n    f(x)\n'
    "slice index 21 of dimension 0 out of bounds.\n\t [[{{node strided_slice}}]] "
    "[Op:__inference_serve_123]"
)
TF_FUNCTION_ERROR = (
    "{{function_node __inference_<lambda>_220}} slice index 16 of dimension 0 out of bounds.\n"
    "\t [[{{function_node f_body}}{{node functional_1/StridedSlice}}]] [Op:__inference_<lambda>_220]"
)
KERAS_LAYER_ERROR = (
    "Exception encountered when calling MaxPooling1D.call().\n\n\x1b[1m{{function_node "
    "__wrapped__MaxPool}} Computed output size would be negative: -1 [Op:MaxPool] name: \x1b[0m"
    "\n\nArguments received by MaxPooling1D.call():\n  • inputs=tf.Tensor(shape=(2, 4, 4))"
)


@pytest.mark.parametrize(
    "text, cause",
    [
        (TF_ERROR, "slice index 21 of dimension 0 out of bounds."),
        (TF_FUNCTION_ERROR, "slice index 16 of dimension 0 out of bounds."),
        (KERAS_LAYER_ERROR, "Computed output size would be negative: -1"),
        ("plain message\nsecond line", "plain message"),
        (
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: "
            "tokens for the following indices\n index: 1 Got: 3 Expected: 6\n Please fix "
            "either the inputs/outputs or the model.",
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: "
            "tokens for the following indices index: 1 Got: 3 Expected: 6 Please fix "
            "either the inputs/outputs or the model.",
        ),
        ("", ""),
    ],
)
def test_error_lines_keep_the_cause(text, cause):
    assert cause_line(text) == cause


def test_one_line_of_an_empty_message_is_the_type_name():
    assert one_line(ValueError()) == "ValueError"
    assert (
        one_line(ValueError("x" * 500)).endswith("...")
        and len(one_line(ValueError("x" * 500))) < 320
    )


def conv_text_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 4)(inp)
    x = keras.layers.Conv1D(3, 5, name="conv")(x)
    x = keras.layers.MaxPooling1D(5)(x)
    x = keras.layers.Conv1D(3, 5)(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))


def test_a_model_that_needs_longer_inputs_fails_with_the_cause_in_one_line(tmp_path):
    save_model(conv_text_model(), tmp_path / "conv.keras")
    result = runner.invoke(
        app,
        ["verify", str(tmp_path / "conv.keras"), str(tmp_path / "conv.keras"), "--seq-len", "6"],
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    # the length the user chose is checked before anything runs: the layer, the cause, the flag
    assert line.startswith("error: --seq-len 6 does not fit the model: the reference fails: ")
    assert "(MaxPooling1D): Computed output size would be zero or negative" in line
    assert "pass --seq-len 29 or more" in line
    assert "Graph execution error" not in line and "{{" not in line


def test_onnxruntime_failures_are_one_line_without_its_own_log(tmp_path):
    path = tmp_path / "conv.onnx"
    export_onnx(conv_text_model(), path, verify=False)
    np.save(tmp_path / "short.npy", np.ones((2, 3), "int32"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "run",
            str(path),
            "--inputs",
            str(tmp_path / "short.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: onnxruntime failed: "), (
        proc.stderr
    )
    assert "[E:onnxruntime" not in proc.stderr


def test_reports_print_the_shapes_that_ran(tmp_path):
    inp = keras.Input((12,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 3)(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)))
    save_model(model, tmp_path / "fixed.keras")
    report = graphkit.verify(tmp_path / "fixed.keras", tmp_path / "fixed.keras", samples=10)
    text = report.format()
    assert "tokens (10, 12) int32 in [0, 20)" in text and "variable" not in text
    from graphkit.bench import bench

    result = bench(tmp_path / "fixed.keras", batch=4, runs=1, warmup=0)
    assert "tokens (4, 12) int32" in result.format() and "length 64" not in result.format()
    assert result.to_dict()["inputs"] == {"tokens": {"shape": [4, 12], "dtype": "int32"}}
    assert result.to_dict()["seq_len"] is None  # no variable axis: --seq-len changed nothing
    assert {r.runtime for r in result.rows if r.runtime.startswith("keras")} == {"keras traced"}


def test_verify_refuses_missing_and_extra_output_names_with_both_lists(tmp_path):
    inp = keras.Input((3,), name="x")
    a = keras.Model(inp, keras.layers.Dense(2, name="left")(inp))
    b = keras.Model(inp, keras.layers.Dense(2, name="right")(inp))
    with pytest.raises(GraphkitError, match=r"reference has \['left'\], candidate has \['right'\]"):
        graphkit.verify(a, b, samples=2)


def test_a_layer_giving_two_outputs_names_them_apart_in_keras_and_onnx(tmp_path):
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    shared = keras.layers.Dense(2, name="shared")
    model = keras.Model([a, b], [shared(a), shared(b)])  # a siamese pair
    assert KerasBackend(model).output_names == ["shared", "shared_1"]
    report = export_onnx(model, tmp_path / "pair.onnx")
    assert report.outputs == ["shared", "shared_1"] and report.verify.equivalent
    assert graphkit.verify(model, model, samples=4).equivalent


@pytest.mark.parametrize(
    "samples, batch_size, seq_len, plan",
    [
        (64, 16, 16, [15, 16, 16, 16, 1]),
        (16, 32, 16, [15, 1]),  # one batch, as long as the sequences
        (40, 16, 16, [16, 16, 8]),  # the last batch already differs
        (64, 32, 16, [32, 32]),
        (1, 8, 1, [1]),  # nothing else is possible
    ],
)
def test_synthesized_batches_are_never_all_as_long_as_the_sequences(
    samples, batch_size, seq_len, plan
):
    from graphkit.verification import batch_plan

    spec = KerasBackend(tagger()).inputs
    assert batch_plan(spec, samples, batch_size, seq_len) == plan


def test_a_fixed_batch_size_is_probed_as_it_is_and_blames_no_layer():
    inp = keras.Input((None,), batch_size=4, dtype="int32", name="tokens")
    x = keras.layers.Embedding(10, 3)(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    backend = KerasBackend(model)
    (out,) = backend.run({"tokens": np.ones((4, 4), "int32")})
    assert backend.mode == "traced" and backend.notes == [] and out.shape == (4, 4, 2)


def test_a_stateful_model_runs_eagerly_once_per_batch_and_says_why():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 2), batch_size=3, name="x")
    model = keras.Model(inp, keras.layers.GRU(4, stateful=True, name="g")(inp))
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    backend = KerasBackend(model)
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype("float32")
    (out,) = backend.run({"x": x})
    assert backend.mode == "eager" and "stateful layer 'g'" in backend.notes[0]
    np.testing.assert_array_equal(out, np.asarray(twin(x)))  # states advanced once, not twice


def test_bench_on_a_one_element_input_prints_its_shape(tmp_path):
    from graphkit.bench import bench

    inp = keras.Input((1,), dtype="int32", name="user")
    x = keras.layers.Flatten()(keras.layers.Embedding(7, 2)(inp))
    save_model(keras.Model(inp, keras.layers.Dense(1, name="score")(x)), tmp_path / "u.keras")
    text = bench(tmp_path / "u.keras", batch=3, runs=1, warmup=0).format()
    assert "inputs user (3, 1) int32;" in text and "length" not in text


def test_run_prints_the_inputs_that_ran(tmp_path):
    np.savez(tmp_path / "in.npz", tokens=tokens(2, 5))
    path = tmp_path / "seq.onnx"
    export_onnx(FIXTURES / "sequential.keras", path)  # fixed length 6: 5 is refused
    bad = runner.invoke(app, ["run", str(path), "--inputs", str(tmp_path / "in.npz")])
    assert bad.exit_code == 2 and "shape (2, 5), expected (None, 6)" in bad.stderr
    np.savez(tmp_path / "in.npz", tokens=np.ones((2, 6), "int64"))
    ok = runner.invoke(app, ["run", str(path), "--inputs", str(tmp_path / "in.npz")])
    assert ok.exit_code == 0 and "  input tokens: shape (2, 6) int32" in ok.stdout


def test_sequential_with_a_keras_time_distributed_exports_right(tmp_path):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32", name="tokens"),
            keras.layers.Embedding(30, 4, mask_zero=True),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(2), name="tags"),
        ]
    )
    report = export_onnx(model, tmp_path / "seq_td.onnx")
    assert [(f.path, f.status) for f in report.repairs] == [("tags", "repaired")]
    session = ort.InferenceSession(
        str(tmp_path / "seq_td.onnx"), providers=["CPUExecutionProvider"]
    )
    for shape in [(4, 35), (3, 7)]:
        x = tokens(*shape, vocab=30)
        (got,) = session.run(None, {"tokens": x})
        np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_bench_times_the_repaired_model_like_its_converted_variant(tagger_files):
    from graphkit.bench import bench

    _, folder, _ = tagger_files
    result = bench(folder / "tagger.keras", batch=3, seq_len=5, runs=1, warmup=0)
    keras_rows = {r.variant: r.runtime for r in result.rows if r.runtime.startswith("keras")}
    assert keras_rows == {"embedding": "keras traced", "onehot-dense": "keras traced"}
    assert any("TimeDistributed repaired (tags)" in n for n in result.notes)


def test_renaming_a_tensor_out_of_an_outputs_way_reaches_loop_bodies():
    import onnx.parser

    from graphkit.onnx_export import _rename_outputs

    proto = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x, int64 n, bool c) => (float[2] y) {
            score = Relu(x)
            y = Loop(n, c, score) <body = b (int64 i, bool ci, float[2] acc) => (bool co, float[2] out) {
                co = Identity(ci)
                out = Add(acc, score)
            }>
        }
        """
    )
    _rename_outputs(proto, ["score"])  # the Keras output name is an internal tensor's
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["score"]
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([1.0, -2.0], "float32")
    (got,) = session.run(None, {"x": x, "n": np.array(2), "c": np.array(True)})
    np.testing.assert_array_equal(got, np.maximum(x, 0) * 3)


@pytest.mark.parametrize("passes", [(), ("fuse_onehot",)])
def test_exported_onehot_equals_keras_for_every_index_negative_ones_included(tmp_path, passes):
    """ONNX's OneHot wraps -depth..-1 to the last rows; Keras' gives zero rows for them."""
    keras.utils.set_random_seed(6)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = graphkit.layers.OneHot(7, name="oh")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(x))
    path = tmp_path / "oh.onnx"
    export_onnx(model, path, passes=list(passes))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.array([[0, 6, -1, -7, -8, 7, 100]], "int32")
    (got,) = session.run(None, {"tokens": x})
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(
        np.asarray(model(x))[0, 2:],
        np.zeros((5, 3), "float32") + model.get_layer("head").bias.numpy(),
    )


def test_the_trace_note_names_each_input_shape_where_they_differ():
    """Keras' TimeDistributed fails when traced with an unknown time axis: the backend runs
    the model eagerly and says so, naming each input's shape of the probe batch."""
    enc = keras.Input((None,), dtype="int32", name="enc")
    dec = keras.Input((None,), dtype="int32", name="dec")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(30, 4)(enc))
    steps = keras.layers.TimeDistributed(keras.layers.Dense(5))(keras.layers.Embedding(30, 4)(dec))
    model = keras.Model([enc, dec], steps + keras.ops.expand_dims(keras.layers.Dense(5)(pooled), 1))
    backend = KerasBackend(model)
    rng = np.random.default_rng(0)
    args = [rng.integers(0, 30, (8, 10), dtype="int32"), rng.integers(0, 30, (8, 7), dtype="int32")]
    assert backend.choose_mode(args) == "eager"
    (note,) = backend.notes
    assert "disagrees with the eager call at layer" in note
    assert "on a batch of enc 8x10, dec 8x7)" in note, note
