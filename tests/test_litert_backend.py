""".tflite files as a third backend: LiteRTBackend's signature and index ranges, verify
(Keras vs LiteRT, ONNX vs LiteRT, LiteRT vs LiteRT, outputs paired by name, weights), run
and bench on a .tflite, and bad files refused in one line.

The .tflite files are made here with TensorFlow's converter from a ``tf.function`` that
calls ``model.stateless_call`` with the weights as constants and returns ``{output name:
tensor}``, so the signature's keys are the Keras names and the weights are frozen (tracing
``model(x)`` keeps them as resource variables that the converted file never initializes).
Lengths are fixed where a model holds a TimeDistributed (see KNOWN.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.errors import GraphkitError
from tests.cli_helpers import error_line, invoke


def to_tflite(model, path, *, signature: bool = True) -> bytes:
    """Convert ``model`` to ``path``: one signature, keys = the Keras input/output names."""
    import tensorflow as tf

    trainable = [tf.constant(v.numpy()) for v in model.trainable_variables]
    frozen = [tf.constant(v.numpy()) for v in model.non_trainable_variables]
    specs = [
        tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name.split(":")[0])
        for t in model.inputs
    ]
    names = list(model.output_names)

    def serve(*args):
        x = args[0] if len(args) == 1 else list(args)
        out, _ = model.stateless_call(trainable, frozen, x, training=False)
        outs = list(out.values()) if isinstance(out, dict) else out
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        if isinstance(out, dict):
            return {k: out[k] for k in names}
        return dict(zip(names, outs))

    function = tf.function(serve, input_signature=specs)
    concrete = function.get_concrete_function()
    if signature:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    else:  # the deprecated path: a file with no signature at all
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    data = converter.convert()
    path.write_bytes(data)
    return data


def bag_model(seed: int = 0, length=None):
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 8, name="emb")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(3, activation="tanh", name="scores")(x)
    return keras.Model(tokens, out, name="bag")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bag model (.keras, .tflite, .onnx), its one-hot form, a two-input and a
    two-output model, each as .keras and .tflite."""
    import keras

    from graphkit.conversion import convert
    from graphkit.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("litert")
    out = {}
    bag = bag_model()
    bag.save(folder / "bag.keras")
    to_tflite(bag, folder / "bag.tflite")
    export_onnx(bag, folder / "bag.onnx", verify=False)
    out["bag"] = bag

    onehot = convert(bag_model(length=6), "onehot-dense").model
    onehot.save(folder / "onehot.keras")
    to_tflite(onehot, folder / "onehot.tflite")

    keras.utils.set_random_seed(1)
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    feats = keras.Input((4,), dtype="float32", name="feats")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(30, 4, name="emb")(tokens))
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, name="proj")(feats)])
    two_in = keras.Model([tokens, feats], keras.layers.Dense(2, name="out")(x), name="two_in")
    two_in.save(folder / "two_in.keras")
    to_tflite(two_in, folder / "two_in.tflite")

    keras.utils.set_random_seed(2)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.GlobalMaxPooling1D()(keras.layers.Embedding(40, 6, name="emb")(tokens))
    zeta = keras.layers.Dense(3, name="zeta")(x)
    alpha = keras.layers.Dense(2, name="alpha")(x)
    two_out = keras.Model(tokens, [zeta, alpha], name="two_out")
    two_out.save(folder / "two_out.keras")
    to_tflite(two_out, folder / "two_out.tflite")
    out["folder"] = folder
    return out


def test_signature_names_shapes_and_index_ranges(files):
    from graphkit.backends import LiteRTBackend, open_backend

    folder = files["folder"]
    backend = open_backend(folder / "bag.tflite")
    assert isinstance(backend, LiteRTBackend) and backend.kind == "litert"
    (spec,) = backend.inputs
    assert (spec.name, spec.shape, spec.dtype) == ("tokens", (None, None), "int32")
    # the GATHER behind Keras' negative-index wrap (LESS/ADD/SELECT_V2) reads a 50-row table
    assert spec.role == "index" and spec.vocab == 50 and spec.tables[0].rows == 50
    assert backend.output_names == ["scores"]

    onehot = LiteRTBackend(folder / "onehot.tflite")
    (spec,) = onehot.inputs
    assert spec.shape == (None, 6) and spec.role == "index" and spec.vocab == 50
    assert spec.tables[0].table.startswith("ONE_HOT")

    two_in = LiteRTBackend(folder / "two_in.tflite")
    roles = {s.name: (s.role, s.vocab, s.dtype) for s in two_in.inputs}
    assert roles == {"tokens": ("index", 30, "int32"), "feats": (None, None, "float32")}


def test_outputs_run_by_name_and_resize_per_batch(files):
    from graphkit.backends import LiteRTBackend

    keras_model = files["bag"]
    backend = LiteRTBackend(files["folder"] / "bag.tflite")
    for shape in ((3, 7), (5, 2)):
        x = np.random.default_rng(0).integers(0, 50, shape).astype("int32")
        (got,) = backend.run({"tokens": x})
        assert got.shape == (shape[0], 3)
        np.testing.assert_allclose(got, keras_model(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(GraphkitError, match="values outside the range of int32"):
        backend.run({"tokens": np.full((1, 3), 2**40, "int64")})


def test_keras_vs_litert_equal_with_earned_tolerance_and_weights(files):
    from graphkit.verification import verify

    folder = files["folder"]
    for name in ("bag", "onehot", "two_in"):
        report = verify(folder / f"{name}.keras", folder / f"{name}.tflite", samples=64)
        assert report.equivalent, (name, report.format())
        assert all(s.tolerance_from.startswith("earned") for s in report.outputs), name
        # the table (GATHER) or the one-hot kernel, and the Dense kernel (FULLY_CONNECTED,
        # transposed back), are paired by value and bitwise equal
        assert report.weights.compared and report.weights.count("equal") >= 2, (
            name,
            report.weights.format_lines(),
        )
        assert report.weights.ok


def test_changed_table_in_the_tflite_file_differs_through_the_cli(files, tmp_path):
    from graphkit.backends import LiteRTBackend

    folder = files["folder"]
    data = bytearray((folder / "bag.tflite").read_bytes())
    table = files["bag"].get_layer("emb").embeddings.numpy()
    at = bytes(data).find(table.tobytes())
    assert at > 0  # the table is stored as is
    changed = table.copy()
    changed[7] += 0.25
    data[at : at + table.nbytes] = changed.tobytes()
    path = tmp_path / "changed.tflite"
    path.write_bytes(bytes(data))
    assert LiteRTBackend(path).constants()  # still a valid file
    result = invoke("verify", folder / "bag.keras", path, "--samples", "64")
    assert result.exit_code == 1, result.output
    assert "differ" in result.stdout.lower()
    # the weights line: the Keras table against the GATHER's constant, row 7 only
    assert "emb/embeddings <-> " in result.stdout and "rows 7 differ" in result.stdout
    assert "NOT EQUIVALENT" in result.stdout


def test_onnx_vs_litert_and_litert_vs_litert_use_the_fixed_runtime_tolerance(files):
    from graphkit.verification import verify

    folder = files["folder"]
    report = verify(folder / "bag.onnx", folder / "bag.tflite", samples=64)
    assert report.equivalent, report.format()
    assert any("ONNX against LiteRT: fixed tolerances" in n for n in report.notes)
    assert all(s.rtol == 1e-4 and s.atol == 1e-5 for s in report.outputs)
    report = verify(folder / "bag.tflite", folder / "bag.tflite", samples=64)
    assert report.equivalent and any("LiteRT against LiteRT" in n for n in report.notes)
    assert report.weights.count("equal") >= 2 and report.weights.ok
    result = invoke("verify", folder / "bag.onnx", folder / "bag.tflite", "--samples", "32")
    assert result.exit_code == 0, result.output


def test_outputs_are_paired_by_name_not_position(files):
    from graphkit.backends import open_backend
    from graphkit.verification import verify

    folder = files["folder"]
    keras_side = open_backend(folder / "two_out.keras")
    litert = open_backend(folder / "two_out.tflite")
    assert keras_side.output_names == ["zeta", "alpha"]
    assert litert.output_names == ["alpha", "zeta"]  # the converter's order, not Keras'
    x = {"tokens": np.arange(12, dtype="int32").reshape(2, 6)}
    by_name = dict(zip(litert.output_names, litert.run(x)))
    assert by_name["zeta"].shape == (2, 3) and by_name["alpha"].shape == (2, 2)
    report = verify(folder / "two_out.keras", folder / "two_out.tflite", samples=32)
    assert report.equivalent, report.format()
    assert [s.name for s in report.outputs] == ["zeta", "alpha"]


def test_run_and_bench_on_a_tflite_file(files, tmp_path):
    folder = files["folder"]
    x = np.random.default_rng(3).integers(0, 50, (4, 9)).astype("int32")
    np.savez(tmp_path / "x.npz", tokens=x)
    y = tmp_path / "y.npz"
    result = invoke("run", folder / "bag.tflite", "--inputs", tmp_path / "x.npz", "-o", y)
    assert result.exit_code == 0, result.output
    assert "scores: shape (4, 3) float32" in result.stdout
    got = np.load(y)["scores"]
    np.testing.assert_allclose(got, files["bag"](x).numpy(), rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "bad.npz", tokens=np.full((2, 3), 60, "int32"))
    assert "out-of-vocabulary index 60" in error_line(
        invoke("run", folder / "bag.tflite", "--inputs", tmp_path / "bad.npz")
    )

    result = invoke("bench", folder / "bag.tflite", "--runs", "3", "--batch-size", "4", "--json")
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert [r["runtime"] for r in report["rows"]] == ["litert cpu"]
    assert report["rows"][0]["median_ms"] > 0


def test_provider_cuda_is_refused_for_a_tflite_side(files):
    folder = files["folder"]
    model = folder / "bag.tflite"
    line = error_line(invoke("run", model, "--inputs", model, "--provider", "cuda"))
    assert "runs .tflite files on the CPU only" in line
    with pytest.raises(GraphkitError, match="CPU only"):
        from graphkit.backends import LiteRTBackend

        LiteRTBackend(folder / "bag.tflite", provider="cuda")


def test_a_file_without_signature_runs_by_tensor_names(tmp_path):
    from graphkit.backends import LiteRTBackend

    model = bag_model(seed=4, length=5)
    to_tflite(model, tmp_path / "plain.tflite", signature=False)
    backend = LiteRTBackend(tmp_path / "plain.tflite")
    assert any("no signature" in n for n in backend.notes)
    (spec,) = backend.inputs
    assert spec.vocab == 50 and spec.shape[1] == 5
    x = np.random.default_rng(0).integers(0, 50, (3, 5)).astype("int32")
    (got,) = backend.run({spec.name: x})
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_files_are_one_line_never_a_crash(files, tmp_path):
    from graphkit.backends import LiteRTBackend

    good = (files["folder"] / "bag.tflite").read_bytes()
    rng = np.random.default_rng(0)
    cases = {"empty.tflite": b"", "short.tflite": good[:6], "onnx.tflite": b"\x08\x07" * 40}
    for k in range(12):
        cases[f"cut{k}.tflite"] = good[: int(rng.integers(8, len(good)))]
        noise = rng.integers(0, 256, int(rng.integers(8, 3000)), dtype=np.uint8).tobytes()
        cases[f"noise{k}.tflite"] = noise[:4] + b"TFL3" + noise[8:]
        flipped = bytearray(good)
        for _ in range(16):
            flipped[int(rng.integers(8, len(good)))] = int(rng.integers(0, 256))
        cases[f"flip{k}.tflite"] = bytes(flipped)
    refused = 0
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            backend = LiteRTBackend(path)
            backend.run({s.name: np.zeros((1, 4), s.dtype) for s in backend.inputs})
        except GraphkitError as exc:
            assert "\n" not in str(exc)
            refused += 1
        except Exception as exc:  # a flipped weight byte may still load; it may not crash
            if not name.startswith("flip"):
                raise AssertionError(f"{name}: {exc!r}") from exc
    assert refused >= 28  # every empty, short, cut and noisy file
    (tmp_path / "folder.tflite").mkdir()
    for name, words in (
        ("short.tflite", "not a LiteRT (.tflite) model"),
        ("cut0.tflite", "LiteRT cannot load it"),
        ("empty.tflite", "empty file"),
        ("folder.tflite", "is a directory"),
        ("missing.tflite", "no such file"),
    ):
        line = error_line(invoke("verify", files["folder"] / "bag.keras", tmp_path / name))
        assert words in line, line


def test_missing_runtime_is_one_line(files, monkeypatch):
    import sys

    from graphkit.backends import LiteRTBackend

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(GraphkitError, match=r"pip install 'keras-graphkit\[litert\]'"):
        LiteRTBackend(files["folder"] / "bag.tflite")


def test_float16_weights_read_through_dequantize(files, tmp_path):
    import tensorflow as tf

    from graphkit.backends import LiteRTBackend
    from graphkit.verification import verify

    model = files["bag"]
    weights = [tf.constant(v.numpy()) for v in model.trainable_variables]
    spec = [tf.TensorSpec((None, None), tf.int32, name="tokens")]
    function = tf.function(
        lambda x: {"scores": model.stateless_call(weights, [], x)[0]}, input_signature=spec
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path = tmp_path / "f16.tflite"
    path.write_bytes(converter.convert())
    backend = LiteRTBackend(path)
    assert backend.half_precision  # float16 constants: the float16 tolerance
    assert backend.inputs[0].vocab == 50  # the GATHER's table through its DEQUANTIZE
    report = verify(files["folder"] / "bag.keras", path, samples=64)
    assert report.equivalent, report.format()
    assert all(s.rtol == 1e-3 and s.atol == 1e-3 for s in report.outputs)
    # the float32 Keras table and kernel, cast to float16, are the file's constants
    assert report.weights.count("equal") == 2 and report.weights.ok


def test_unfrozen_variables_are_noted_and_give_no_range(files, tmp_path):
    """Tracing ``model(x)`` and converting with the model as trackable_obj keeps the weights
    as resource variables that nothing in the file initializes (TensorFlow 2.21)."""
    import tensorflow as tf

    from graphkit.backends import LiteRTBackend

    model = files["bag"]
    spec = [tf.TensorSpec((None, None), tf.int32, name="tokens")]
    function = tf.function(lambda x: {"scores": model(x)}, input_signature=spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    )
    path = tmp_path / "variables.tflite"
    path.write_bytes(converter.convert())
    backend = LiteRTBackend(path)
    assert any("VAR_HANDLE" in n and "uninitialized" in n for n in backend.notes), backend.notes
    (spec,) = backend.inputs
    assert spec.role is None and "no constant table" in spec.note  # verify asks for --range


def test_keras_own_litert_export_is_compared_as_the_keras_output(files, tmp_path):
    """Keras' ``model.export(format="litert")`` names its one output ``output_0``."""
    from graphkit.backends import LiteRTBackend
    from graphkit.verification import verify

    path = tmp_path / "keras_export.tflite"
    files["bag"].export(str(path), format="litert", verbose=False)
    assert LiteRTBackend(path).output_names == ["output_0"]
    report = verify(files["folder"] / "bag.keras", path, samples=64)
    assert report.equivalent, report.format()
    assert [s.name for s in report.outputs] == ["scores"]
    assert any("'output_0'" in n and "compared as 'scores'" in n for n in report.notes)
    two = verify(files["folder"] / "two_out.keras", files["folder"] / "two_out.tflite", samples=8)
    assert not any("output_0" in n for n in two.notes)


def test_an_unused_seq_len_names_the_side_whose_shapes_are_fixed(tmp_path):
    """A variable-length Keras model against its LiteRT export fixed to 1x16: --seq-len 8
    cannot be used, because of the .tflite's fixed shape, not for want of a variable axis."""
    import keras

    import graphkit
    from graphkit.export import export_litert

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4, name="emb")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2, name="out")(x))
    export_litert(model, tmp_path / "m.tflite", fixed_shapes={"tokens": (1, 16)}, verify=False)
    report = graphkit.verify(model, tmp_path / "m.tflite", seq_len=8, samples=8)
    note = next(n for n in report.notes if n.startswith("--seq-len 8 not used"))
    assert "the candidate takes fixed shapes (tokens 1x16)" in note, note
    # bench on it: the batch of 1 is the file's, not one avoided for the sequence length
    from graphkit.bench import bench as run_bench

    bench = run_bench(tmp_path / "m.tflite", runs=2)
    assert "timed batch 1, not 32: the model takes batches of 1 only" in bench.notes, bench.notes
