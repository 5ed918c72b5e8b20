"""export_onnx / graphkit export, run and bench: equivalence in onnxruntime, no unrolling, bad files."""

from __future__ import annotations

import json

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import graphkit
from graphkit import GraphkitError
from graphkit.cli import app
from graphkit.conversion import convert
from graphkit.onnx_export import NotEquivalentError, export_onnx
from graphkit.onnx_passes import OUT_OF_RANGE_NOTE, PASSES
from tests.conftest import FIXTURES, KERAS3_FIXTURES, load_fixture

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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
    from graphkit import onnx_export

    real = onnx_export.to_onnx_proto
    monkeypatch.setattr(onnx_export, "to_onnx_proto", lambda m, opset=17: real(wrong, opset))
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
