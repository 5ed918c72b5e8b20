"""export --litert: a .tflite file written by TensorFlow's TFLite converter, verified in the
LiteRT runtime against the eager Keras call (verify's coverage and tolerance rules).

The issue's models, tiny: the bag (Embedding -> pooling -> Dense) and the conv text model,
both variants, and a KerasHub BERT backbone; the GPU delegate's verdict; the deployment
options; a file that differs is never written; the 2 GiB FlatBuffer limit answers before
the converter starts.
"""

from __future__ import annotations

import json

import keras
import keras_hub
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from typer.testing import CliRunner

from graphkit import GraphkitError
from graphkit.cli import app
from graphkit.conversion import convert
from graphkit.export import NotEquivalentError, export_litert
from graphkit.export import litert as litert_writer
from tests.text_models import text_model

VOCAB, DIM, LENGTH = 40, 4, 8


def _model(kind: str):
    return text_model(kind, VOCAB, DIM, LENGTH)


def _form(kind: str, form: str):
    model = _model(kind)
    return model if form == "embedding" else convert(model, "onehot-dense").model


def _run(path, **inputs):
    interpreter = Interpreter(model_path=str(path))
    return interpreter.get_signature_runner()(**inputs)


@pytest.mark.parametrize("form", ["embedding", "onehot-dense"])
@pytest.mark.parametrize("kind", ["bag", "conv"])
def test_both_variants_export_verify_and_get_a_gpu_delegate_verdict(kind, form, tmp_path):
    model = _form(kind, form)
    out = tmp_path / f"{kind}.tflite"
    report = export_litert(
        model, out, samples=16, target="gpu-delegate", fixed_shapes={"tokens": (2, LENGTH)}
    )
    assert out.exists() and report.size_bytes == out.stat().st_size
    assert report.format_name == "litert" and report.verify.equivalent
    # the lookup in a form the GPU delegate's rules take: a flat int32 GATHER (the converter
    # fuses the int32 one-hot x table into an EMBEDDING_LOOKUP), no negative-index wrap
    assert {"GATHER", "EMBEDDING_LOOKUP"} & set(report.op_counts)
    assert not {"SELECT", "SELECT_V2", "LESS", "CAST"} & set(report.op_counts)
    verdict = report.coverage
    assert verdict.op_check_passes, verdict.format()
    assert "all" in verdict.format() and "ops supported" in verdict.format()
    assert any("[0, vocab)" in note for note in report.notes)
    # every row of the table was read by the check, and it is said so
    assert report.verify.coverage and all(t.complete for t in report.verify.coverage)
    # the file runs on its own, keyed by the Keras names, and gives what Keras gives
    x = np.arange(2 * LENGTH, dtype=np.int32).reshape(2, LENGTH) % VOCAB
    got = _run(out, tokens=x)
    assert list(got) == ["head"]
    np.testing.assert_allclose(got["head"], np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    # each stage has its time
    assert {"repair", "trace", "convert", "write", "verify", "target"} <= set(report.stages)
    # the classes' own calls are back once the trace is done
    assert keras.layers.Embedding.call.__name__ == "call"


@pytest.mark.parametrize("form", ["embedding", "onehot-dense"])
def test_without_the_target_the_op_check_names_what_the_delegate_refuses(form, tmp_path):
    from graphkit.export.litert_inspect import gpu_delegate

    model = _form("bag", form)
    out = tmp_path / "bag.tflite"
    report = export_litert(model, out, samples=8, fixed_shapes={"tokens": (2, LENGTH)})
    assert report.coverage is None and report.verify.equivalent
    verdict = gpu_delegate(out.read_bytes())
    assert not verdict.op_check_passes
    refused = {issue.op for issue in verdict.issues}
    assert refused & {"SELECT", "SELECT_V2", "GATHER", "ONE_HOT", "CAST"}, verdict.format()


def test_gpu_delegate_needs_fixed_shapes(tmp_path):
    with pytest.raises(GraphkitError, match="'tokens' has the dynamic shape \\(None, 8\\)"):
        export_litert(_model("bag"), tmp_path / "m.tflite", target="gpu-delegate")
    assert list(tmp_path.iterdir()) == []


def test_a_kerashub_backbone_exports_and_verifies(tmp_path):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=300,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    out = tmp_path / "bert.tflite"
    report = export_litert(
        backbone,
        out,
        samples=8,
        fixed_shapes={"token_ids": (1, 16), "segment_ids": (1, 16), "padding_mask": (1, 16)},
        target="gpu-delegate",
    )
    assert report.verify.equivalent
    assert set(report.inputs) == {"token_ids", "segment_ids", "padding_mask"}
    assert set(report.outputs) == {"sequence_output", "pooled_output"}
    assert report.deploy["inputs"]["token_ids"]["shape"] == [1, 16]
    assert "GATHER" in report.op_counts and report.coverage is not None


def test_index_dtype_int32_makes_int64_inputs_int32(tmp_path):
    tokens = keras.Input((LENGTH,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(VOCAB, DIM, name="emb")(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    out = tmp_path / "m.tflite"
    report = export_litert(model, out, samples=8, index_dtype="int32")
    assert report.deploy["inputs"]["tokens"]["dtype"] == "int32"
    details = Interpreter(model_path=str(out)).get_signature_runner().get_input_details()
    assert details["tokens"]["dtype"] == np.int32
    x = np.arange(2 * LENGTH, dtype=np.int32).reshape(2, LENGTH)
    np.testing.assert_allclose(
        next(iter(_run(out, tokens=x).values())),
        np.asarray(model(x.astype("int64"))),
        rtol=1e-6,
        atol=1e-7,
    )


def test_a_file_that_differs_is_never_written(tmp_path, monkeypatch):
    model = _model("bag")
    wrong = keras.models.clone_model(model)
    wrong.set_weights([w + 0.01 for w in model.get_weights()])
    real = litert_writer.frozen_function
    monkeypatch.setattr(litert_writer, "frozen_function", lambda m, *a, **k: real(wrong, *a, **k))
    out = tmp_path / "bad.tflite"
    with pytest.raises(NotEquivalentError) as info:
        export_litert(model, out, samples=8)
    assert not info.value.report.equivalent
    assert list(tmp_path.iterdir()) == []


def test_weights_over_the_flatbuffer_limit_are_refused_before_converting(tmp_path, monkeypatch):
    model = _model("bag")
    monkeypatch.setattr(litert_writer, "FLATBUFFER_LIMIT", 100)

    def never(*args, **kwargs):
        raise AssertionError("the converter must not start")

    monkeypatch.setattr(litert_writer, "convert", never)
    with pytest.raises(GraphkitError, match="a LiteRT .* file holds at most 100"):
        export_litert(model, tmp_path / "m.tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("litert") / "bag.keras"
    _model("bag").save(path)
    return path


def test_cli_export_litert_json_and_stage_times(tmp_path):
    path = tmp_path / "bag.keras"
    _model("bag").save(path)
    runner = CliRunner()
    res = runner.invoke(
        app, ["export", str(path), "--litert", "--samples", "8", "--json", "--debug"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["format"] == "litert" and data["output"] == str(tmp_path / "bag.tflite")
    assert data["verify"]["equivalent"] is True
    assert {"tensorflow", "load", "trace", "convert", "verify"} <= set(data["stages"])
    assert "stages: " in res.stderr
    # verify reads the file it wrote, against the Keras model
    res = runner.invoke(app, ["verify", str(path), str(tmp_path / "bag.tflite")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--onnx", "--litert"], "choose one export format: --onnx or --litert"),
        ([], "choose the export format: --onnx or --litert"),
        (["--litert", "--opset", "13"], "--opset is an ONNX option"),
        (["--litert", "--fuse-onehot"], "--fuse-onehot is an ONNX option"),
        (["--litert", "--target", "nnapi"], "--target nnapi: with --litert, the target is"),
        (["--litert", "-o", "x.onnx"], "a LiteRT output must end in .tflite"),
        (
            ["--onnx", "--target", "gpu-delegate"],
            "--target gpu-delegate is a LiteRT target (--litert)",
        ),
    ],
)
def test_cli_refuses_options_that_do_not_fit_the_format(saved, argv, message):
    res = CliRunner().invoke(app, ["export", str(saved), *argv])
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.output


def test_without_verification_the_runtime_is_not_needed(tmp_path, monkeypatch):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ai_edge_litert" else real(name, *a),
    )
    # verifying needs the runtime: refused before anything slow, in one line
    with pytest.raises(GraphkitError, match=r"needs the LiteRT runtime: pip install"):
        export_litert(_model("bag"), tmp_path / "a.tflite")
    assert list(tmp_path.iterdir()) == []
    # --no-verify writes the file without it (the interpreter import would fail)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    report = export_litert(_model("bag"), tmp_path / "b.tflite", verify=False)
    assert (tmp_path / "b.tflite").exists() and report.verify is None


def test_json_names_the_written_file_and_holds_no_onnx_fields(tmp_path):
    out = tmp_path / "m.tflite"
    data = export_litert(_model("bag"), out, samples=8).to_dict()
    assert data["verify"]["candidate"] == str(out)  # not the temporary file it ran on
    assert data["format"] == "litert" and "opset" not in data and "passes" not in data


def test_a_difference_is_named_as_a_litert_model(tmp_path, monkeypatch):
    model = _model("bag")
    wrong = keras.models.clone_model(model)
    wrong.set_weights([w + 0.01 for w in model.get_weights()])
    real = litert_writer.frozen_function
    monkeypatch.setattr(litert_writer, "frozen_function", lambda m, *a, **k: real(wrong, *a, **k))
    with pytest.raises(NotEquivalentError, match="the exported LiteRT model does not match"):
        export_litert(model, tmp_path / "bad.tflite", samples=8)


def test_cli_json_reports_an_error_on_stdout(saved, tmp_path):
    res = CliRunner().invoke(
        app, ["export", str(saved), "--litert", "-o", str(tmp_path / "x.onnx"), "--json"]
    )
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data["status"] == "error" and "must end in .tflite" in data["error"]


def test_mixed_precision_table_is_explained(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _model("bag")
    finally:
        keras.config.set_dtype_policy("float32")
    with pytest.raises(
        GraphkitError, match="takes no float16 table .* export the model in float32"
    ):
        export_litert(model, tmp_path / "m.tflite", samples=8)
    assert list(tmp_path.iterdir()) == []


def test_a_model_fixed_to_batch_one_earns_its_tolerance_on_32_samples(tmp_path):
    """The first batch of a batch-1 file is one sample: the tolerance is earned on the first
    32 samples instead (the Keras model takes any batch), and the report says so."""
    report = export_litert(
        _model("conv"), tmp_path / "m.tflite", samples=40, fixed_shapes={"tokens": (1, LENGTH)}
    )
    assert report.verify.equivalent
    sources = [o.tolerance_from for o in report.verify.outputs]
    assert sources and all("on 32 samples" in s for s in sources), sources
