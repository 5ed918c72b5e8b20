"""export_onnx / graphkit export, run and bench: equivalence in onnxruntime, no unrolling, bad files."""

from __future__ import annotations

import json

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphkit
from graphkit import GraphkitError
from graphkit.conversion import convert
from graphkit.onnx_export import NotEquivalentError, export_onnx
from graphkit.onnx_passes import OUT_OF_RANGE_NOTE, PASSES
from tests.cli_helpers import invoke
from tests.conftest import FIXTURES, KERAS3_FIXTURES, load_fixture


def _variant(name, variant):
    model = load_fixture(name)
    return model if variant == "embedding" else convert(model, "onehot-dense").model


@pytest.mark.parametrize("variant", ["embedding", "onehot-dense"])
@pytest.mark.parametrize("name", KERAS3_FIXTURES)
def test_every_fixture_exports_and_matches_in_onnxruntime(name, variant, tmp_path):
    model = _variant(name, variant)
    out = tmp_path / "m.onnx"
    report = export_onnx(model, out, samples=16)
    onnx.checker.check_model(str(out), full_check=True)
    assert report.verify.equivalent
    assert max(o.max_abs for o in report.verify.outputs) <= (
        1e-3 if name == "mixed_precision" else 1e-5
    )
    assert [i.name for i in onnx.load(str(out)).graph.input] == [t.name for t in model.inputs]
    # a fixed tolerance (no float64 twin of a mixed-precision model) is said, with its values
    fixed = [n for n in report.verify.notes if "fixed tolerances" in n]
    if name == "mixed_precision":
        assert fixed and "mixed precision" in fixed[0] and "rtol=0.001 atol=0.001" in fixed[0]
        assert {o.tolerance_from for o in report.verify.outputs} <= {
            "fixed default (float16 computation)",
            "fixed default (float16 output)",
        }
    else:
        assert fixed == [], fixed
    if variant == "onehot-dense":
        assert report.op_counts.get("OneHot", 0) >= 1
        # TimeDistributed adds no Loop: only the recurrent layers may have one
        rnn = any(isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers())
        assert report.op_counts.get("Loop", 0) == (1 if rnn else 0)


def test_legacy_h5_exports(tmp_path):
    report = export_onnx(FIXTURES / "legacy_keras2.h5", tmp_path / "legacy.onnx", samples=16)
    assert report.verify.equivalent and report.inputs == ["embedding_input"]


def _onehot_model(length):
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(500, 16, name="emb")(tokens)
    x = keras.layers.Dense(4, name="proj")(x)
    model = keras.Model(tokens, x)
    return convert(model, "onehot-dense").model


def test_node_count_does_not_grow_with_sequence_length(tmp_path):
    counts = {}
    for length in (8, 64, None):
        report = export_onnx(_onehot_model(length), tmp_path / f"m{length}.onnx", samples=8)
        counts[length] = report.nodes
        assert "Loop" not in report.op_counts and report.op_counts["MatMul"] == 2
    assert counts[8] == counts[64], counts
    assert counts[None] <= counts[8] + 8  # dynamic shapes cost a few Shape ops, never per step


def test_fuse_onehot_export_is_equivalent_and_has_no_onehot(tmp_path):
    report = export_onnx(_onehot_model(None), tmp_path / "f.onnx", fuse_onehot=True, samples=16)
    assert "OneHot" not in report.op_counts and report.op_counts["Gather"] >= 1
    assert report.verify.equivalent
    assert report.passes[0].applied


def test_lower_gather_export(tmp_path):
    report = export_onnx(
        load_fixture("sequential"), tmp_path / "l.onnx", lower_gather=True, samples=16
    )
    assert report.op_counts.get("OneHot") == 1 and report.verify.equivalent


def test_passes_run_by_name_and_the_alias_adds_no_second_run(tmp_path):
    report = export_onnx(
        _onehot_model(None),
        tmp_path / "p.onnx",
        passes=["fuse_onehot"],
        fuse_onehot=True,
        samples=8,
    )
    assert [p.name for p in report.passes] == ["fuse_onehot"] and report.passes[0].applied
    assert "OneHot" not in report.op_counts and report.verify.equivalent


def test_pass_names_are_checked_before_the_model_is_loaded(tmp_path):
    missing = tmp_path / "missing.keras"  # loading it would fail with "no such file"
    with pytest.raises(GraphkitError, match="unknown ONNX pass 'fuse': expected one of: "):
        export_onnx(missing, passes=["fuse"])
    with pytest.raises(GraphkitError, match="lower_gather and fuse_onehot cannot be combined"):
        export_onnx(missing, passes=["lower_gather"], fuse_onehot=True)


def test_not_equivalent_export_keeps_no_file(tmp_path, monkeypatch):
    model = load_fixture("sequential")
    wrong = keras.models.clone_model(model)
    wrong.set_weights([w + 0.01 for w in model.get_weights()])  # same graph, other weights
    from graphkit.export import onnx as onnx_export

    real = onnx_export.trace
    monkeypatch.setattr(onnx_export, "trace", lambda m, opset=17, w=None: real(wrong, opset, w))
    out = tmp_path / "bad.onnx"
    with pytest.raises(NotEquivalentError) as info:
        export_onnx(model, out, samples=8)
    assert not info.value.report.equivalent
    assert list(tmp_path.iterdir()) == []


def test_cli_export_run_and_verify(tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", FIXTURES / "masked_lstm.keras", "--onnx", "-o", out)
    assert result.exit_code == 0, result.output
    assert "verified in onnxruntime on 64 samples (tokens (64, 16) int32 in [0, " in result.stdout
    assert "): equivalent, max abs error" in result.stdout
    again = invoke("export", FIXTURES / "masked_lstm.keras", "--onnx", "-o", out)
    assert again.exit_code == 2 and "already exists" in again.stderr
    npz = tmp_path / "out.npz"
    ran = invoke("run", out, "--inputs", FIXTURES / "masked_lstm.npz", "-o", npz, "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["outputs"][0]["name"] == "head"
    expected = keras.saving.load_model(FIXTURES / "masked_lstm.keras").predict(
        np.load(FIXTURES / "masked_lstm.npz")["tokens"], verbose=0
    )
    np.testing.assert_allclose(np.load(npz)["head"], expected, atol=1e-5)
    verified = invoke("verify", FIXTURES / "masked_lstm.keras", out, "--samples", 32)
    assert verified.exit_code == 0 and "EQUIVALENT" in verified.stdout
    onnx_vs_onnx = graphkit.verify(out, out, samples=8)
    assert onnx_vs_onnx.exact


def test_cli_export_options(tmp_path):
    result = invoke("export", FIXTURES / "sequential.keras", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "--onnx" in result.stderr
    result = invoke(
        "export",
        FIXTURES / "sequential.keras",
        "--onnx",
        "--fuse-onehot",
        "--lower-gather",
        "-o",
        tmp_path / "x.onnx",
    )
    assert result.exit_code == 2 and "pick one" in result.stderr
    result = invoke("export", FIXTURES / "sequential.keras", "--onnx", "-o", tmp_path / "x.txt")
    assert result.exit_code == 2 and "must end in .onnx" in result.stderr
    result = invoke(
        "export", FIXTURES / "sequential.keras", "--onnx", "--opset", "9", "-o", tmp_path / "x.onnx"
    )
    assert result.exit_code == 2 and "opset" in result.stderr
    result = invoke(
        "export",
        FIXTURES / "sequential.keras",
        "--onnx",
        "--no-verify",
        "--json",
        "-o",
        tmp_path / "x.onnx",
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["verify"] is None
    assert list(tmp_path.iterdir()) == [tmp_path / "x.onnx"]


def test_cli_export_pass_by_name(tmp_path):
    onehot = tmp_path / "sequential.onehot.keras"
    converted = invoke(
        "convert", FIXTURES / "sequential.keras", "--to", "onehot-dense", "-o", onehot
    )
    assert converted.exit_code == 0, converted.output
    out = tmp_path / "fused.onnx"
    result = invoke("export", onehot, "--onnx", "--pass", "fuse_onehot", "-o", out, "--samples", 8)
    assert result.exit_code == 0, result.output
    assert "  fuse_onehot: " in result.stdout and "fused into Gather" in result.stdout
    assert "): equivalent, max abs error" in result.stdout
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "OneHot" not in ops and "Gather" in ops
    lowered = invoke(
        "export",
        FIXTURES / "sequential.keras",
        "--onnx",
        "--pass",
        "lower_gather",
        "--json",
        "-o",
        tmp_path / "lowered.onnx",
        "--samples",
        8,
    )
    assert lowered.exit_code == 0, lowered.output
    [entry] = json.loads(lowered.stdout)["passes"]
    assert entry["name"] == "lower_gather" and entry["applied"]
    assert entry["notes"] == [OUT_OF_RANGE_NOTE]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--pass", "fuse"],
            "unknown ONNX pass 'fuse': expected one of: " + ", ".join(PASSES),
        ),
        (
            ["--pass", "lower_gather", "--pass", "fuse_onehot"],
            "the ONNX passes lower_gather and fuse_onehot cannot be combined",
        ),
        (
            ["--pass", "fuse_onehot", "--lower-gather"],
            "the ONNX passes fuse_onehot and lower_gather cannot be combined",
        ),
    ],
)
def test_cli_export_refuses_unknown_and_conflicting_passes(tmp_path, args, message):
    out = tmp_path / "x.onnx"
    result = invoke("export", FIXTURES / "sequential.keras", "--onnx", *args, "-o", out)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert "Traceback" not in result.output and not out.exists()


def _bad_onnx_files(tmp_path):
    good = tmp_path / "good.onnx"
    export_onnx(load_fixture("sequential"), good, verify=False)
    data = good.read_bytes()
    files = {}
    files["not onnx"] = tmp_path / "noise.onnx"
    files["not onnx"].write_bytes(b"this is not a protobuf" * 5)
    files["truncated"] = tmp_path / "cut.onnx"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["empty"] = tmp_path / "empty.onnx"
    files["empty"].write_bytes(b"")
    # external data pointing outside the model's folder
    model = onnx.load(str(good))
    sub = tmp_path / "sub"
    sub.mkdir()
    onnx.save_model(
        model,
        str(sub / "ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    ext = onnx.load(str(sub / "ext.onnx"), load_external_data=False)
    for t in ext.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    files["escaping external data"] = sub / "escape.onnx"
    onnx.save_model(ext, str(files["escaping external data"]))
    return files


def test_bad_onnx_files_give_one_error_line(tmp_path):
    for label, path in _bad_onnx_files(tmp_path).items():
        for args in (
            ["run", path, "--inputs", FIXTURES / "sequential.npz"],
            ["verify", path, FIXTURES / "sequential.keras"],
        ):
            result = invoke(*args)
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 2, (label, result.output)
            assert (
                len(lines) == 1
                and lines[0].startswith("error: ")
                and "Traceback" not in result.output
            ), (label, lines)


def test_cuda_provider_never_falls_back_silently(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(load_fixture("sequential"), out, verify=False)
    result = invoke("run", out, "--inputs", FIXTURES / "sequential.npz", "--provider", "cuda")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2
        assert "CUDAExecutionProvider is not available" in result.stderr and "gpu" in result.stderr


def test_run_validates_inputs(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(load_fixture("sequential"), out, verify=False)
    bad = tmp_path / "bad.npz"
    np.savez(bad, tokens=np.full((2, 6), 99, np.int32))
    result = invoke("run", out, "--inputs", bad)
    assert result.exit_code == 2 and "out-of-vocabulary index 99" in result.stderr
    with pytest.raises(GraphkitError, match="takes an .onnx model"):
        from graphkit.run import run_model

        run_model(FIXTURES / "sequential.keras", FIXTURES / "sequential.npz")


def test_bench_reports_both_variants(tmp_path):
    result = invoke(
        "bench", FIXTURES / "sequential.keras", "--batch", 4, "--seq-len", 6, "--runs", 2, "--json"
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    labels = [(r["variant"], r["runtime"].split()[0]) for r in rows]
    assert labels == [
        ("embedding", "keras"),
        ("onehot-dense", "keras"),
        ("embedding", "onnxruntime"),
        ("onehot-dense", "onnxruntime"),
        ("onehot-dense --fuse-onehot", "onnxruntime"),
    ]
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in rows)
    table = invoke("bench", FIXTURES / "sequential.keras", "--batch", 2, "--runs", 1)
    assert table.exit_code == 0 and "median ms" in table.stdout


def test_dict_outputs_keep_their_keys_and_order(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 4, name="emb")(tokens)
    zeta = keras.layers.Dense(1, name="zeta_dense")(keras.layers.GlobalAveragePooling1D()(x))
    alpha = keras.layers.Dense(3, name="alpha_dense")(keras.layers.GlobalMaxPooling1D()(x))
    model = keras.Model(tokens, {"zeta": zeta, "alpha": alpha})
    report = export_onnx(model, tmp_path / "d.onnx", samples=8)
    assert report.outputs == ["alpha", "zeta"]
    shapes = {o.name: o.shape[1:] for o in report.verify.outputs}
    assert shapes == {"alpha": (3,), "zeta": (1,)}
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    assert [o.shape[-1] for o in session.get_outputs()] == [3, 1]


# -- export's own check on models that need long inputs ----------------------------------


@pytest.mark.parametrize(
    "build, needs", [("conv_text_classifier", 149), ("strided_conv_classifier", 25)]
)
def test_keras_io_conv_models_export_and_verify_with_no_flags(build, needs, tmp_path):
    from graphkit import examples
    from graphkit.io import save_model

    src = tmp_path / "model.keras"
    save_model(getattr(examples, build)(), src)
    result = invoke("export", src, "--onnx")
    assert result.exit_code == 0, result.output
    assert f"on 64 samples (tokens (64, {needs}) int64 in [0, 50)): equivalent" in result.stdout
    assert f"note: variable axes synthesized with length {needs}, not 16: the model needs " in (
        result.stdout
    )
    checked = invoke("verify", src, tmp_path / "model.onnx", "--samples", 8, "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["seq_len"] == needs  # onnxruntime ran that length too


def test_export_check_length_given_is_refused_with_the_cause_and_nothing_written(tmp_path):
    from graphkit import examples

    out = tmp_path / "m.onnx"
    model = examples.conv_text_classifier()
    with pytest.raises(GraphkitError) as info:
        export_onnx(model, out, seq_len=40)
    message = str(info.value)  # in the Python caller's words; the CLI's in for_cli()
    assert message.startswith("seq_len=40 does not fit the model: the Keras model fails: ")
    assert "Computed output size would be zero or negative" in message
    assert "pass seq_len=149 or more, or inputs=FILE.npz" in message
    cli = info.value.for_cli()
    assert cli.startswith("--seq-len 40 does not fit the model: the Keras model fails: ")
    assert "pass --seq-len 149 or more, or --inputs FILE.npz" in cli
    assert list(tmp_path.iterdir()) == []
    assert export_onnx(model, out, seq_len=160, samples=4).verify.seq_len == 160


def test_export_checks_on_inputs_from_a_file(tmp_path):
    from graphkit import examples
    from graphkit.io import save_model

    src = tmp_path / "conv.keras"
    save_model(examples.conv_text_classifier(), src)
    np.savez(tmp_path / "batch.npz", tokens=np.arange(3 * 170).reshape(3, 170) % 50)
    out = tmp_path / "conv.onnx"
    result = invoke("export", src, "--onnx", "--inputs", tmp_path / "batch.npz", "-o", out)
    assert result.exit_code == 0, result.output
    assert (
        "verified in onnxruntime on 3 samples (tokens (3, 170) int64 in [0, 50), values 0..49)"
        in (result.stdout)
    )
    assert "synthesized" not in result.stdout
    np.savez(tmp_path / "short.npz", tokens=np.ones((2, 20), "int64"))
    short = invoke(
        "export", src, "--onnx", "--inputs", tmp_path / "short.npz", "--force", "-o", out
    )
    assert short.exit_code == 2 and "failed to run" in short.stderr


def test_export_and_bench_report_their_steps(tmp_path):
    from graphkit import examples
    from graphkit.bench import bench
    from graphkit.io import save_model
    from graphkit.progress import Progress

    class Recorder(Progress):
        def __init__(self):
            self.steps = []

        def step(self, message):
            self.steps.append(message)

    src = tmp_path / "conv.keras"
    save_model(examples.conv_text_classifier(), src)
    heard = Recorder()
    export_onnx(src, tmp_path / "conv.onnx", samples=8, progress=heard)
    assert heard.steps[:2] == [f"loading {src}", "tracing the model and converting it with tf2onnx"]
    assert "finding an input length the model accepts" in heard.steps
    assert heard.steps[-1] == "comparing 8 samples"
    timed = Recorder()
    report = bench(src, batch=2, runs=1, warmup=0, both_variants=False, progress=timed)
    assert report.seq_len == 149 and "with length 149, not 64: the model needs" in report.notes[0]
    assert "timing onnxruntime (embedding, 1 runs)" in timed.steps


# --- deployment options: --index-dtype int32, --fixed-shape ---------------------------------


def _deploy_model(kind):
    """An int64 Embedding model (masked) and a OneHot + Dense one, both tiny."""
    from graphkit.layers import OneHot

    tokens = keras.Input((None,), dtype="int64", name="tokens")
    if kind == "embedding":
        x = keras.layers.Embedding(40, 4, mask_zero=True, name="emb")(tokens)
    else:
        x = keras.layers.Dense(4, name="proj")(OneHot(40, name="onehot")(tokens))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(3, name="head")(x))


@pytest.mark.parametrize("fuse", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize("options", ["int32", "fixed", "both"])
@pytest.mark.parametrize("kind", ["embedding", "onehot"])
def test_deployment_options_export_verified_and_equal_to_keras(kind, options, fuse, tmp_path):
    from onnx import TensorProto

    from tests.onnx_passes.helpers import all_static, assert_int32_indices

    int32, fixed = options in ("int32", "both"), options in ("fixed", "both")
    model = _deploy_model(kind)
    out = tmp_path / "m.onnx"
    report = export_onnx(
        model,
        out,
        index_dtype="int32" if int32 else None,
        fixed_shapes={"tokens": (2, 16)} if fixed else None,
        fuse_onehot=fuse,
        samples=8,
    )
    assert report.verify.equivalent
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    [tokens] = proto.graph.input
    dtype = tokens.type.tensor_type.elem_type
    assert dtype == (TensorProto.INT32 if int32 else TensorProto.INT64)
    if int32:
        assert_int32_indices(proto)
    if fixed:
        assert [d.dim_value for d in tokens.type.tensor_type.shape.dim] == [2, 16]
        assert all_static(proto)
        assert "no dynamic dimension left (onnx shape inference)" in report.passes[-1].applied
    if fuse and kind == "onehot":
        assert "OneHot" not in report.op_counts and "Gather" in report.op_counts
    deploy = report.to_dict()["deploy"]
    assert deploy["index_dtype"] == ("int32" if int32 else None)
    assert deploy["fixed_shapes"] == ({"tokens": [2, 16]} if fixed else {})
    shown = f"  inputs: tokens {'int32' if int32 else 'int64'} {'2x16' if fixed else '?x?'}"
    assert shown in report.format().splitlines()
    # the ONNX model computes what Keras computes, on a batch of the fixed shape
    x = np.random.default_rng(0).integers(0, 40, size=(2, 16))
    x[:, 12:] = 0  # padding: the embedding model masks it
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    [got] = session.run(None, {"tokens": x.astype(np.int32 if int32 else np.int64)})
    want = np.asarray(model(x.astype(np.int64), training=False))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fixed_shape_check_feeds_that_batch_and_the_onnx_side_reads_its_signature(tmp_path):
    from graphkit.backends import OnnxBackend
    from graphkit.verification import synthesize

    out = tmp_path / "m.onnx"
    report = export_onnx(
        _deploy_model("onehot"), out, index_dtype="int32", fixed_shapes={"tokens": "3x16"}
    )
    assert report.verify.samples == 66  # 64 rounded up to whole batches of 3
    assert report.verify.fed["tokens"] == ((66, 16), "int64")  # Keras' dtype, cast for onnx
    [spec] = OnnxBackend(out).inputs
    assert (spec.name, spec.shape, spec.dtype, spec.vocab) == ("tokens", (3, 16), "int32", 40)
    batches = list(synthesize([spec], samples=7, batch_size=16, seq_len=5, seed=0))
    assert [(b["tokens"].shape, b["tokens"].dtype) for b in batches] == [((3, 16), np.int32)] * 3
    with pytest.raises(GraphkitError, match="model takes batches of exactly 3"):
        graphkit.verify(out, out, inputs={"tokens": np.zeros((4, 16), np.int32)})


def test_an_int64_input_read_as_data_is_refused_and_nothing_is_written(tmp_path):
    tokens = keras.Input((5,), dtype="int64", name="tokens")
    emb = keras.layers.Flatten()(keras.layers.Embedding(40, 2, name="emb")(tokens))
    as_float = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32"), name="ids")(tokens)
    out_layer = keras.layers.Dense(1, name="head")(keras.layers.Concatenate()([emb, as_float]))
    model = keras.Model(tokens, out_layer)
    out = tmp_path / "m.onnx"
    with pytest.raises(GraphkitError) as info:
        export_onnx(model, out, index_dtype="int32")
    message = str(info.value)
    assert message.startswith(
        "--index-dtype int32 (which --target implies): input 'tokens' is int64 and "
    )
    assert "stays int64" in message and "declare that Keras Input int32" in message
    assert not out.exists()


@pytest.mark.parametrize(
    "shapes, message",
    [
        ({"tokns": (2, 16)}, "--fixed-shape tokns=2x16: the model has no input 'tokns'"),
        ({"tokens": (2, 16, 1)}, "input 'tokens' has rank 2 (shape (None, None)), not 3"),
        ({"tokens": "2x"}, "expected NAME=DIMS"),
    ],
)
def test_fixed_shapes_that_do_not_fit_fail_before_tf2onnx(shapes, message, tmp_path, monkeypatch):
    import graphkit.onnx_export as onnx_export

    def no_trace(*args, **kwargs):
        raise AssertionError("traced although the options were wrong")

    monkeypatch.setattr(onnx_export, "trace", no_trace)
    with pytest.raises(GraphkitError) as info:
        export_onnx(_deploy_model("embedding"), tmp_path / "m.onnx", fixed_shapes=shapes)
    assert message in str(info.value)


def test_a_fixed_shape_the_convolutions_cannot_take_is_refused_naming_the_layer(tmp_path):
    from graphkit import examples

    model = examples.strided_conv_classifier(seed=0)
    with pytest.raises(
        GraphkitError, match=r"fixed_shapes=\{.*: \(1, 2\)\}: the model does not take it"
    ) as info:
        export_onnx(model, tmp_path / "x.onnx", fixed_shapes={model.inputs[0].name: (1, 2)})
    assert "Computed output size would be zero or negative" in str(info.value)
    assert "=1x2: the model does not take it" in info.value.for_cli()  # --fixed-shape NAME=1x2
    assert list(tmp_path.iterdir()) == []
    fine = export_onnx(model, tmp_path / "y.onnx", fixed_shapes={model.inputs[0].name: (2, 40)})
    assert fine.verify.equivalent


def test_bench_says_when_it_times_another_batch_than_asked(tmp_path):
    from graphkit.bench import bench

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, name="emb")(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    report = bench(model, batch_size=8, seq_len=8, runs=2, warmup=1, both_variants=False)
    assert report.fed["tokens"][0] == (7, 8)
    assert any("timed batch 7, not 8" in note for note in report.notes)
    report = bench(model, batch_size=8, seq_len=6, runs=2, warmup=1, both_variants=False)
    assert report.fed["tokens"][0] == (8, 6)
    assert not any("timed batch" in note for note in report.notes)
