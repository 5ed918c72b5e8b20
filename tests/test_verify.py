"""graphkit.verify: it must pass equal models, catch different ones, and refuse bad input."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import keras
import numpy as np
import pytest

import graphkit
from graphkit import GraphkitError
from graphkit.conversion import convert, convert_file
from graphkit.io import load_model, save_model
from tests.cli_helpers import invoke
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """fixtures/<name>.keras converted to onehot-dense, saved in a temporary folder."""
    folder = tmp_path_factory.mktemp("converted")
    out = {}
    for name in ("sequential", "masked_lstm", "multi_io_shared"):
        out[name] = folder / f"{name}.onehot.keras"
        convert_file(FIXTURES / f"{name}.keras", "onehot-dense", out[name])
    return out


def test_converted_models_are_exactly_equivalent(converted):
    for name, path in converted.items():
        report = graphkit.verify(FIXTURES / f"{name}.keras", path, samples=40, batch_size=16)
        assert report.equivalent and report.exact, report.format()
        assert report.samples == 40
        assert all(o.max_abs == 0.0 and o.exceeding == 0 for o in report.outputs)


def test_cli_exit_0_and_table(converted):
    result = invoke(
        "verify", FIXTURES / "masked_lstm.keras", converted["masked_lstm"], "--samples", 20
    )
    assert result.exit_code == 0, result.output
    assert "EQUIVALENT (bit for bit on " in result.stdout
    assert "covering every row of 1 table)" in result.stdout
    assert "head" in result.stdout


def test_perturbed_weight_is_caught_and_located(converted, tmp_path):
    model = load_model(converted["sequential"])
    bias = model.get_layer("head").bias
    bias.assign(bias.numpy() + np.array([0.0, 0.0, 1e-4], "float32"))
    bad = tmp_path / "perturbed.keras"
    save_model(model, bad)
    result = invoke("verify", FIXTURES / "sequential.keras", bad, "--samples", 50, "--json")
    assert result.exit_code == 1, result.output
    (out,) = json.loads(result.stdout)["outputs"]
    assert out["ok"] is False and out["exact"] is False
    assert out["worst_index"][1] == 2  # the perturbed unit
    assert out["exceeding"] == 50  # every sample, only that unit
    assert out["max_abs_error"] == pytest.approx(1e-4, rel=0.05)
    table = invoke("verify", FIXTURES / "sequential.keras", bad, "--samples", 50)
    assert (
        table.exit_code == 1
        and "NOT EQUIVALENT" in table.stdout
        and "worst element" in table.stdout
    )


def test_swapped_embedding_rows_are_caught_on_synthesized_inputs(tmp_path):
    model = load_model(FIXTURES / "masked_lstm.keras")
    emb = model.get_layer("embedding")
    table = emb.get_weights()[0]
    table[[3, 7]] = table[[7, 3]]
    emb.set_weights([table])
    report = graphkit.verify(FIXTURES / "masked_lstm.keras", model, samples=64)
    assert not report.equivalent
    assert report.outputs[0].exceeding > 0


def test_tolerances_decide(converted, tmp_path):
    model = load_model(converted["sequential"])
    bias = model.get_layer("head").bias
    bias.assign(bias.numpy() + 1e-4)
    strict = graphkit.verify(FIXTURES / "sequential.keras", model, samples=8)
    assert not strict and [p.candidate for p in strict.weights.differing] == ["head/bias"]
    loose = graphkit.verify(FIXTURES / "sequential.keras", model, samples=8, atol=1e-3)
    assert loose and loose.weights.count("within") == 1  # the bias moved by 1e-4 <= atol
    assert not graphkit.verify(FIXTURES / "sequential.keras", model, samples=8, atol=1e-5)


def test_junit_report(converted, tmp_path):
    junit = tmp_path / "verify.xml"
    result = invoke(
        "verify",
        FIXTURES / "multi_io_shared.keras",
        converted["multi_io_shared"],
        "--samples",
        10,
        "--junit",
        junit,
    )
    assert result.exit_code == 0, result.output
    root = ET.parse(junit).getroot()
    # one case per output, and one for the weights
    assert root.get("failures") == "0" and root.get("tests") == "3"
    names = [case.get("name") for case in root.findall(".//testcase")]
    assert names[-1] == "weights" and len(names) == 3


def test_junit_failure(tmp_path):
    model = load_model(FIXTURES / "masked_lstm.keras")
    emb = model.get_layer("embedding")
    emb.set_weights([emb.get_weights()[0] + 0.5])
    save_model(model, tmp_path / "changed.keras")
    junit = tmp_path / "verify.xml"
    result = invoke(
        "verify",
        FIXTURES / "masked_lstm.keras",
        tmp_path / "changed.keras",
        "--junit",
        junit,
        "--samples",
        4,
    )
    assert result.exit_code == 1
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert len(failures) == 2 and "exceed" in failures[0].get("message")
    assert "embedding/embeddings" in failures[1].get("message")  # the changed table, named


def test_outputs_with_other_names_are_refused_with_both_lists():
    result = invoke(
        "verify",
        FIXTURES / "masked_lstm.keras",
        FIXTURES / "masked_gru_sequential.keras",
        "--samples",
        4,
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: outputs are matched by name")
    assert "reference has ['head']" in line and "candidate has [" in line


def test_reproducible_synthesis_with_seed():
    a = graphkit.verify(
        FIXTURES / "masked_lstm.keras", FIXTURES / "masked_lstm.keras", samples=8, seed=5
    )
    b = graphkit.verify(
        FIXTURES / "masked_lstm.keras", FIXTURES / "masked_lstm.keras", samples=8, seed=5
    )
    assert a.to_dict() == b.to_dict()  # timings stay out of the report: it is reproducible
    from graphkit.backends import open_backend
    from graphkit.verification import synthesize

    spec = open_backend(FIXTURES / "masked_lstm.keras").inputs
    (x1,), (x2,) = list(synthesize(spec, 4, 4, 10, 1)), list(synthesize(spec, 4, 4, 10, 1))
    np.testing.assert_array_equal(x1["tokens"], x2["tokens"])
    tokens = x1["tokens"]
    assert tokens.max() < 300 and tokens.min() >= 0
    assert (tokens[:, 0] > 0).all()  # at least one real token per row
    for row in tokens:  # padding only at the end
        nz = np.flatnonzero(row == 0)
        assert nz.size == 0 or (nz == np.arange(nz[0], len(row))).all()


def test_inputs_from_files(tmp_path):
    npz = FIXTURES / "multi_io_shared.npz"
    assert (
        graphkit.verify(
            FIXTURES / "multi_io_shared.keras", FIXTURES / "multi_io_shared.keras", npz
        ).samples
        == 4
    )
    npy = tmp_path / "x.npy"
    np.save(npy, np.load(FIXTURES / "masked_lstm.npz")["tokens"])
    assert graphkit.verify(
        FIXTURES / "masked_lstm.keras", FIXTURES / "masked_lstm.keras", npy
    ).equivalent


def test_in_memory_models_and_dict_inputs():
    model = load_model(FIXTURES / "nested.keras")
    new = convert(model, "onehot-dense").model
    x = dict(np.load(FIXTURES / "nested.npz"))
    report = graphkit.verify(model, new, x)
    assert report and report.exact


def _npz(tmp_path, **arrays):
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({}, "missing input 'tokens'"),
        ({"tokens": np.ones((2, 5), "int32"), "extra": np.ones(2)}, "unexpected key(s) 'extra'"),
        ({"tokens": np.ones((2, 5), "float32")}, "expects integers"),
        ({"tokens": np.ones((2,), "int32")}, "rank 1"),
        ({"tokens": np.full((2, 5), 300, "int32")}, "out-of-vocabulary index 300 at (0, 0)"),
        ({"tokens": np.array([[1, -2, 3]], "int64")}, "negative index -2 at (0, 1)"),
    ],
)
def test_bad_input_files_exit_2_naming_the_input(tmp_path, arrays, fragment):
    path = _npz(tmp_path, **arrays)
    result = invoke(
        "verify", FIXTURES / "masked_lstm.keras", FIXTURES / "masked_lstm.keras", "--inputs", path
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_fixed_length_mismatch_and_nan_index(tmp_path):
    with pytest.raises(
        GraphkitError, match=r"input 'tokens': shape \(2, 4\), expected \(None, 6\)"
    ):
        graphkit.verify(
            FIXTURES / "sequential.keras",
            FIXTURES / "sequential.keras",
            {"tokens": np.ones((2, 4), "int32")},
        )
    x = np.ones((2, 8), "float32")
    x[1, 3] = np.nan
    with pytest.raises(GraphkitError, match=r"'embedding_input': NaN index at \(1, 3\)"):
        graphkit.verify(
            FIXTURES / "legacy_keras2.h5", FIXTURES / "legacy_keras2.h5", {"embedding_input": x}
        )


def test_not_an_npz_and_npy_for_several_inputs(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(GraphkitError, match="not a readable .npy/.npz file"):
        graphkit.verify(FIXTURES / "sequential.keras", FIXTURES / "sequential.keras", junk)
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones((2, 7), "int32"))
    with pytest.raises(GraphkitError, match="model has 3 inputs"):
        graphkit.verify(FIXTURES / "multi_io_shared.keras", FIXTURES / "multi_io_shared.keras", npy)


def test_mismatched_signatures_exit_2(tmp_path):
    result = invoke("verify", FIXTURES / "multi_io_shared.keras", FIXTURES / "masked_lstm.keras")
    assert result.exit_code == 2 and result.stderr.startswith("error: input names differ")
    other = tmp_path / "wide.keras"
    inp = keras.Input((None, None), dtype="int32", name="tokens")
    save_model(keras.Model(inp, keras.layers.Embedding(300, 2)(inp)), other)
    result = invoke("verify", FIXTURES / "masked_lstm.keras", other)
    assert result.exit_code == 2 and "rank 2 in the reference, 3 in the candidate" in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--samples", "0"], "--samples must be at least 1"),
        (["--rtol", "-1"], "--rtol must be a finite number"),
        (["--provider", "tpu"], "--provider 'tpu'"),
    ],
)
def test_bad_options_exit_2(args, fragment):
    result = invoke("verify", FIXTURES / "sequential.keras", FIXTURES / "sequential.keras", *args)
    assert result.exit_code == 2 and fragment in result.stderr


def test_missing_model_exit_2(tmp_path):
    result = invoke("verify", tmp_path / "a.keras", FIXTURES / "sequential.keras")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_half_precision_outputs_get_half_tolerance(tmp_path):
    inp = keras.Input((None,), dtype="int32", name="tokens")
    policy = keras.mixed_precision.Policy("mixed_float16")
    model = keras.Model(inp, keras.layers.Embedding(20, 3, dtype=policy)(inp))
    report = graphkit.verify(model, convert(model, "onehot-dense").model, samples=4)
    assert report.exact and report.outputs[0].dtype == "float16" and report.outputs[0].atol == 1e-3


def test_memory_is_bounded_statistics_only(converted):
    report = graphkit.verify(
        FIXTURES / "sequential.keras", converted["sequential"], samples=3000, batch_size=500
    )
    assert report.samples == 3000 and report.outputs[0].shape == (3000, 3)
    kept = [v for v in vars(report.outputs[0]).values() if isinstance(v, np.ndarray)]
    assert kept == []


def test_copying_a_model_file_is_equivalent(tmp_path):
    copy = tmp_path / "copy.keras"
    shutil.copyfile(FIXTURES / "masked_gru_sequential.keras", copy)
    assert graphkit.verify(FIXTURES / "masked_gru_sequential.keras", copy, samples=16).exact


def test_string_inputs_need_a_file_and_then_work(tmp_path):
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorize.adapt(["a b c", "b c d e"])
    text = keras.Input((), dtype="string", name="text")
    x = keras.layers.Embedding(20, 3, name="emb")(vectorize(text))
    model = keras.Model(text, keras.layers.GlobalAveragePooling1D()(x))
    converted = convert(model, "onehot-dense").model
    with pytest.raises(GraphkitError, match="cannot synthesize string inputs; pass inputs="):
        graphkit.verify(model, converted, samples=4)
    report = graphkit.verify(model, converted, {"text": np.array(["a b", "c d e", "zz"])})
    assert report.exact and report.samples == 3
    with pytest.raises(GraphkitError, match="expects strings"):
        graphkit.verify(model, converted, {"text": np.ones(3)})


# -- the length of synthesized variable axes fits the model ------------------------------


@pytest.fixture(scope="module")
def conv_models(tmp_path_factory):
    """keras.io's two conv text classifiers, tiny, saved: name -> (path, length they need)."""
    from graphkit import examples

    folder = tmp_path_factory.mktemp("conv")
    out = {}
    for build, needs in (
        (examples.conv_text_classifier, 149),
        (examples.strided_conv_classifier, 25),
    ):
        path = folder / f"{build.__name__}.keras"
        save_model(build(), path)
        out[build.__name__] = (path, needs)
    return out


@pytest.mark.parametrize("name", ["conv_text_classifier", "strided_conv_classifier"])
def test_synthesized_length_is_one_the_model_takes_and_the_report_says_so(conv_models, name):
    path, needs = conv_models[name]
    model = load_model(path)
    report = graphkit.verify(path, convert(model, "onehot-dense").model, samples=8)
    assert report.exact and report.seq_len == needs
    assert report.fed["tokens"][0] == (8, needs)
    (note,) = [n for n in report.notes if "synthesized with length" in n]
    assert f"with length {needs}, not 16: the model needs at least {needs}" in note
    assert f"at {needs - 1}, layer 'conv" in note and "(Conv1D): Computed output size" in note
    assert report.to_dict()["seq_len"] == needs


def test_a_length_given_is_used_or_refused_with_the_cause_and_the_flag(conv_models):
    path, needs = conv_models["conv_text_classifier"]
    report = graphkit.verify(path, path, samples=4, seq_len=160)
    assert report.seq_len == 160 and not any("synthesized with length" in n for n in report.notes)
    with pytest.raises(GraphkitError) as info:
        graphkit.verify(path, path, samples=4, seq_len=100)
    message = str(info.value)  # the Python caller's words; for_cli() has the flags
    assert message.startswith("seq_len=100 does not fit the model: the reference fails: ")
    assert "layer 'conv2' (Conv1D): Computed output size would be zero or negative" in message
    assert f"pass seq_len={needs} or more, or inputs=FILE.npz" in message
    assert f"pass --seq-len {needs} or more, or --inputs FILE.npz" in info.value.for_cli()
    result = invoke("verify", path, path, "--seq-len", 20)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "error: --seq-len 20 does not fit the model" in result.stderr


def test_cli_verify_finds_the_length_without_flags(conv_models):
    path, _ = conv_models["strided_conv_classifier"]
    result = invoke("verify", path, path, "--samples", 4, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is the report alone; stderr is not a terminal
    assert data["seq_len"] == 25 and data["fed"]["tokens"]["shape"] == [4, 25]
    assert result.stderr == ""


def test_onnx_models_get_a_length_by_trying(conv_models, tmp_path):
    from graphkit.onnx_export import export_onnx

    path, needs = conv_models["strided_conv_classifier"]
    onnx_path = tmp_path / "m.onnx"
    export_onnx(path, onnx_path, verify=False)
    report = graphkit.verify(onnx_path, onnx_path, samples=4)  # no shape rules: doubling
    assert report.exact and report.seq_len == 32
    (note,) = [n for n in report.notes if "synthesized with length" in n]
    assert "length 32, not 16: at length 16 the reference fails: onnxruntime's Conv node" in note
    assert "Invalid input shape" in note
    both = graphkit.verify(path, onnx_path, samples=4)  # Keras' rules, checked in onnxruntime too
    assert both.equivalent and both.seq_len == needs


def test_no_length_fits_names_the_cause_and_the_flag():
    tokens = keras.Input((None,), name="x")
    folded = keras.layers.Reshape((3, -1), name="fold")(tokens)  # lengths divisible by 3 only
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(folded))
    with pytest.raises(GraphkitError) as info:
        graphkit.verify(model, model, samples=2)
    message = str(info.value)
    assert message.startswith("no input length from 1 to 4096 fits the model: at length 16 the ")
    assert "layer 'fold' (Reshape)" in message and "pass seq_len=L" in message
    assert "pass --seq-len L" in info.value.for_cli()
    assert graphkit.verify(model, model, samples=2, seq_len=9).seq_len == 9


def test_models_that_take_the_default_length_keep_it_without_a_note():
    report = graphkit.verify(
        FIXTURES / "masked_lstm.keras", FIXTURES / "masked_lstm.keras", samples=4
    )
    assert report.seq_len == 16 and not any("synthesized with length" in n for n in report.notes)
    fixed = graphkit.verify(FIXTURES / "sequential.keras", FIXTURES / "sequential.keras", samples=4)
    assert fixed.seq_len is None  # no variable axis


def test_progress_hears_each_step_and_the_samples():
    from graphkit.progress import Progress

    class Recorder(Progress):
        def __init__(self):
            self.steps, self.counts = [], []

        def step(self, message):
            self.steps.append(message)

        def advance(self, done, total=None):
            self.counts.append((done, total))

    heard = Recorder()
    path = FIXTURES / "masked_lstm.keras"
    graphkit.verify(path, path, samples=40, batch_size=16, progress=heard)
    assert heard.steps[:2] == [f"loading {path}", f"loading {path}"]
    assert heard.steps[-1] == "comparing 40 samples" and heard.counts[-1] == (40, 40)
    counted = []  # a plain function still hears (done, total)
    report = graphkit.verify(
        path, path, samples=20, progress=lambda done, total: counted.append((done, total))
    )
    # 20 samples of 16 steps cannot reach 299 rows: verify synthesized more, and said so
    assert report.samples > 20 and counted[-1] == (report.samples, report.samples)
    assert any(f"synthesized {report.samples} samples, not 20" in n for n in report.notes)


def test_a_model_with_a_position_table_gets_a_shorter_length():
    """A model that refuses lengths past its position table (KerasHub's, 32 rows) gets a
    shorter length than the default 64, with a note, where only longer ones were tried."""
    import keras_hub

    from graphkit.backends import KerasBackend
    from graphkit.verification import fit_seq_len

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 4, name="tok_pos")(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    backend = KerasBackend(model)
    choice = fit_seq_len([("model", backend)], backend.inputs, None, default=64)
    assert choice.length == 32 and "not 64" in choice.note
