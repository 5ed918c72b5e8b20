"""compare_weights: weights paired across Keras/ONNX models and compared bit for bit."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import graphkit
from graphkit import examples
from graphkit.backends.keras_backend import KerasBackend
from graphkit.backends.onnx_backend import OnnxBackend
from graphkit.verification import weights as weights_module
from graphkit.verification.weights import WeightPair, WeightsReport, compare_weights


def _table_model(vocab: int = 2000, dim: int = 6, seed: int = 0):
    """tokens -> Embedding(vocab, dim) 'token_emb' -> pooling -> Dense 'head'."""
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(
        vocab,
        dim,
        name="token_emb",
        embeddings_initializer=keras.initializers.RandomNormal(seed=seed),
    )(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(
        3, name="head", kernel_initializer=keras.initializers.RandomNormal(seed=seed + 1)
    )(x)
    return keras.Model(tokens, out, name="table_model")


def _copy(model):
    """An independent copy: same layer names, its own variables."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _bump(variable, index, delta):
    values = keras.ops.convert_to_numpy(variable).copy()
    values[index] += delta
    variable.assign(values)


def _pair(report: WeightsReport, reference: str) -> WeightPair:
    (pair,) = [p for p in report.pairs if p.reference == reference]
    return pair


def test_keras_against_a_copy_of_itself_is_all_equal():
    model = examples.masked_lstm()
    report = compare_weights(KerasBackend(model), KerasBackend(_copy(model)))
    assert report.ok and report.compared
    assert len(report.pairs) == len(model.weights)
    assert {p.status for p in report.pairs} == {"equal"}
    assert {p.paired_by for p in report.pairs} == {"path"}
    assert report.format_lines()[0].startswith(f"weights: {len(model.weights)} pairs bitwise equal")
    assert report.failures() == []


def test_one_element_changed_names_the_table_and_row():
    model = _table_model()
    other = _copy(model)
    _bump(other.get_layer("token_emb").embeddings, (1234, 3), 1e-3)
    report = compare_weights(KerasBackend(model), KerasBackend(other))
    assert not report.ok
    pair = _pair(report, model.get_layer("token_emb").embeddings.path)
    assert pair.status == "differs" and pair.paired_by == "path"
    assert pair.rows == "1234" and pair.differing == 1
    assert pair.max_abs == pytest.approx(1e-3, rel=1e-2)
    lines = report.format_lines()
    assert "1 differ" in lines[0]
    assert any("token_emb/embeddings: rows 1234 differ, max abs 0.001" in line for line in lines)
    (failure,) = report.failures()
    assert "token_emb" in failure and "1234" in failure
    assert report.to_dict()["differs"] == 1 and report.to_dict()["ok"] is False
    # the other weights are still equal
    assert all(p.status == "equal" for p in report.pairs if p is not pair)


def test_row_ranges_and_elements_are_compressed():
    model = _table_model(vocab=40)
    other = _copy(model)
    table = other.get_layer("token_emb").embeddings
    values = keras.ops.convert_to_numpy(table).copy()
    values[[3, 4, 5, 6, 7, 9]] += 0.5
    table.assign(values)
    _bump(other.get_layer("head").bias, 2, 0.25)
    report = compare_weights(KerasBackend(model), KerasBackend(other))
    table_pair = _pair(report, model.get_layer("token_emb").embeddings.path)
    assert (table_pair.rows, table_pair.unit) == ("3..7, 9", "rows")
    bias_pair = _pair(report, model.get_layer("head").bias.path)
    assert (bias_pair.rows, bias_pair.unit, bias_pair.status) == ("2", "elements", "differs")
    assert bias_pair.max_abs == pytest.approx(0.25)


def test_small_slices_give_the_same_answer(monkeypatch):
    """Row ranges that cross slice boundaries merge into one."""
    monkeypatch.setattr(weights_module, "SLICE_BYTES", 7 * 6 * 4)  # 7 rows per slice
    model = _table_model(vocab=100)
    other = _copy(model)
    table = other.get_layer("token_emb").embeddings
    values = keras.ops.convert_to_numpy(table).copy()
    values[10:31] -= 1.0
    table.assign(values)
    pair = _pair(compare_weights(KerasBackend(model), KerasBackend(other)), table.path)
    assert pair.rows == "10..30" and pair.differing == 21
    assert pair.max_abs == pytest.approx(1.0)


def test_embedding_vs_onehot_dense_pairs_table_and_kernel():
    model = examples.masked_lstm()
    converted = graphkit.convert(model, "onehot-dense").model
    report = compare_weights(KerasBackend(model), KerasBackend(converted))
    assert report.ok
    assert {p.status for p in report.pairs} == {"equal"}
    assert report.candidate_only == []
    table = _pair(report, model.get_layer("embedding").embeddings.path)
    assert table.candidate == "embedding_dense/kernel" and table.paired_by == "rewrite"


def test_perturbed_dense_kernel_of_the_rewrite_differs():
    model = examples.masked_lstm()
    converted = graphkit.convert(model, "onehot-dense").model
    (kernel,) = [v for v in converted.weights if v.path == "embedding_dense/kernel"]
    _bump(kernel, (17, 2), 1e-3)
    report = compare_weights(KerasBackend(model), KerasBackend(converted))
    assert not report.ok
    table = _pair(report, model.get_layer("embedding").embeddings.path)
    assert table.status == "differs" and table.candidate == "embedding_dense/kernel"
    assert table.rows == "17"
    assert any("embedding_dense/kernel" in line for line in report.failures())


def _onehot_with_bias():
    from graphkit.layers import OneHot

    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = OneHot(30, name="tok_onehot")(tokens)
    x = keras.layers.Dense(
        5, name="tok_dense", bias_initializer=keras.initializers.RandomNormal(seed=3)
    )(x)
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten(name="flat")(x))
    return keras.Model(tokens, out, name="onehot_bias")


def test_folded_bias_is_transformed_not_compared():
    model = _onehot_with_bias()
    folded = graphkit.convert(model, "embedding").model
    report = compare_weights(KerasBackend(model), KerasBackend(folded))
    assert report.ok
    kernel = _pair(report, "tok_dense/kernel")
    assert kernel.status == "transformed" and kernel.paired_by == "rewrite"
    assert kernel.candidate.endswith("/embeddings")
    assert _pair(report, "tok_dense/bias").status == "transformed"
    assert _pair(report, "head/kernel").status == "equal"
    assert "2 transformed by the rewrite, 0 differ" in report.format_lines()[0]
    # and the other way round (embedding form as the reference)
    back = compare_weights(KerasBackend(folded), KerasBackend(model))
    assert back.ok and back.count("transformed") == 1 and back.candidate_only == []


def _export(model, path, **options):
    graphkit.export_onnx(model, path, verify=False, **options)
    return path


def _perturb_initializer(src, dst, name, index, delta):
    proto = onnx.load(str(src))
    for tensor in proto.graph.initializer:
        if tensor.name == name:
            values = numpy_helper.to_array(tensor).copy()
            values[index] += delta
            tensor.CopyFrom(numpy_helper.from_array(values, name))
    onnx.save(proto, str(dst))
    return dst


def _initializer_of(report: WeightsReport, reference: str) -> str:
    return _pair(report, reference).candidate


def test_keras_vs_onnx_export_with_a_perturbed_table(tmp_path):
    model = _table_model()
    good = _export(model, tmp_path / "good.onnx")
    report = compare_weights(KerasBackend(model), OnnxBackend(good))
    assert report.ok and report.count("equal") == len(model.weights)
    table_path = model.get_layer("token_emb").embeddings.path
    name = _initializer_of(report, table_path)
    bad = _perturb_initializer(good, tmp_path / "bad.onnx", name, (1234, 0), 1e-3)
    report = compare_weights(KerasBackend(model), OnnxBackend(bad))
    assert not report.ok
    pair = _pair(report, table_path)
    assert pair.status == "differs" and pair.paired_by == "value" and pair.rows == "1234"
    # ONNX vs ONNX: by initializer name
    onnx_report = compare_weights(OnnxBackend(good), OnnxBackend(bad))
    assert not onnx_report.ok
    assert _pair(onnx_report, name).rows == "1234"
    assert _pair(onnx_report, name).paired_by == "path"


def test_fused_table_is_compared_on_its_valid_rows(tmp_path):
    model = examples.masked_lstm()
    converted = graphkit.convert(model, "onehot-dense").model
    fused = _export(converted, tmp_path / "fused.onnx", fuse_onehot=True)
    report = compare_weights(KerasBackend(model), OnnxBackend(fused))
    assert report.ok
    table_path = model.get_layer("embedding").embeddings.path
    pair = _pair(report, table_path)
    assert pair.status == "equal" and "fused table" in pair.note
    bad = _perturb_initializer(fused, tmp_path / "bad.onnx", pair.candidate, (250, 1), 1e-3)
    pair = _pair(compare_weights(KerasBackend(model), OnnxBackend(bad)), table_path)
    assert pair.status == "differs" and pair.rows == "250"


def test_external_data_is_read_in_place(tmp_path):
    model = _table_model(vocab=300)
    path = _export(model, tmp_path / "ext.onnx", external_data=True)
    assert (tmp_path / "ext.onnx.data").exists()
    report = compare_weights(KerasBackend(model), OnnxBackend(path))
    assert report.ok and report.count("equal") == len(model.weights)
    other = _copy(model)
    _bump(other.get_layer("token_emb").embeddings, (299, 5), -0.5)
    report = compare_weights(KerasBackend(other), OnnxBackend(path))
    assert _pair(report, other.get_layer("token_emb").embeddings.path).rows == "299"


def test_unreadable_backend_degrades_to_a_note():
    class Odd:
        kind = "tflite"

    report = compare_weights(Odd(), Odd())
    assert report.ok and not report.compared
    assert report.format_lines()[0].startswith("weights: not compared")
    assert report.to_dict()["compared"] is False


def test_sample_positions_are_shared_by_equal_shapes():
    a = weights_module._sample_positions(200_000, 8)
    b = weights_module._sample_positions(200_000, 8)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 200_000
    assert 0 in a and 199_999 in a


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    from onnx import TensorProto

    tensor = TensorProto()
    tensor.name, tensor.data_type = "t", TensorProto.FLOAT
    tensor.dims.extend([2, 2])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../outside.bin"
    (tmp_path.parent / "outside.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="outside"):
        weights_module._onnx_array(tensor, np.dtype("float32"), (2, 2), str(tmp_path))


def test_float16_fused_table_is_compared_in_float16(tmp_path):
    """mixed_float16: the export's fused table holds the float32 table cast to float16."""
    model = examples.mixed_precision()
    converted = graphkit.convert(model, "onehot-dense").model
    path = _export(converted, tmp_path / "mp.onnx", fuse_onehot=True)
    table_path = model.get_layer("embedding").embeddings.path
    pair = _pair(compare_weights(KerasBackend(model), OnnxBackend(path)), table_path)
    assert pair.status == "equal" and "compared in float16" in pair.note
    bad = _perturb_initializer(path, tmp_path / "bad.onnx", pair.candidate, (42, 0), 0.01)
    pair = _pair(compare_weights(KerasBackend(model), OnnxBackend(bad)), table_path)
    assert pair.status == "differs" and pair.rows == "42"


@keras.saving.register_keras_serializable(package="graphkit_weight_labels")
class TokPos(keras.layers.Layer):
    """Two tables held as attributes whose layers Keras auto-names (embedding, embedding_1)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = keras.layers.Embedding(50, 4)
        self.pos_emb = keras.layers.Embedding(8, 4)

    def call(self, x):
        return self.token_emb(x) + self.pos_emb(keras.ops.arange(keras.ops.shape(x)[-1]))


def test_a_changed_weight_is_named_by_the_path_inspect_prints():
    def build():
        tokens = keras.Input((8,), dtype="int32", name="tokens")
        x = keras.layers.GlobalAveragePooling1D()(TokPos(name="tok_pos")(tokens))
        return keras.Model(tokens, x)

    model, other = build(), build()
    other.set_weights(model.get_weights())
    _bump(other.get_layer("tok_pos").token_emb.embeddings, (7, 0), 0.5)
    report = compare_weights(KerasBackend(model), KerasBackend(other))
    (failure,) = [p for p in report.pairs if p.status == "differs"]
    assert failure.reference == "tok_pos/token_emb/embeddings" and failure.rows == "7"
    paths = {p.reference for p in report.pairs}
    assert "tok_pos/pos_emb/embeddings" in paths
    inspected = {row.path for row in graphkit.inspect_model(model).rows}
    assert {"tok_pos/token_emb", "tok_pos/pos_emb"} <= inspected
