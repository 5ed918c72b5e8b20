"""``graphkit.verification.locate``: the first layer where two models part."""

from __future__ import annotations

import json

import keras
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import graphkit
from graphkit import examples
from graphkit.backends import KerasBackend, OnnxBackend
from graphkit.errors import GraphkitError
from graphkit.verification.locate import Divergence, locate

RTOL, ATOL = 1e-5, 1e-6


def _copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _bump(variable, amount: float = 0.01) -> None:
    variable.assign(keras.ops.convert_to_numpy(variable) + amount)


def _batch(backend, rows: int = 8, length: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = {}
    for spec in backend.inputs:
        shape = [rows] + [length if d is None else d for d in spec.shape[1:]]
        if spec.vocab:
            batch[spec.name] = rng.integers(1, spec.vocab, shape).astype(spec.dtype)
        else:
            batch[spec.name] = rng.normal(size=shape).astype(spec.dtype)
    return batch


def _dense_chain(kind: str):
    """Four Dense layers in a row: ``d0`` .. ``d3``."""
    layers = [keras.layers.Dense(5, activation="tanh", name=f"d{i}") for i in range(4)]
    if kind == "sequential":
        return keras.Sequential([keras.Input((3,), name="x"), *layers], name="chain")
    x = inputs = keras.Input((3,), name="x")
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name="chain")


@pytest.mark.parametrize("kind", ["functional", "sequential"])
@pytest.mark.parametrize("which", [0, 2])
def test_keras_copy_with_one_dense_changed_names_it(kind, which):
    model = _dense_chain(kind)
    copy = _copy(model)
    _bump(copy.get_layer(f"d{which}").kernel)
    ref = KerasBackend(model)
    found = locate(ref, KerasBackend(copy), _batch(ref), RTOL, ATOL)
    assert found.first == f"d{which}"
    assert found.upstream_equal == which  # d0 .. d(which-1) are equal
    assert [c.layer for c in found.compared] == ["d0", "d1", "d2", "d3"]
    assert [c.ok for c in found.compared] == [i < which for i in range(4)]
    assert found.first_max_abs == max(c.max_abs for c in found.compared[which : which + 1])
    assert f"'d{which}'" in found.line() and f"{which} layer" in found.line()
    json.dumps(found.to_dict())


def test_equal_models_part_nowhere():
    model = examples.masked_lstm()
    ref = KerasBackend(model)
    found = locate(ref, KerasBackend(_copy(model)), _batch(ref), RTOL, ATOL)
    assert found.first is None
    assert found.compared and all(c.ok for c in found.compared)
    assert {"embedding", "lstm", "head"} <= {c.layer for c in found.compared}
    assert "no compared layer differs" in found.line()


def test_nested_model_is_descended_into():
    model = examples.nested()
    copy = _copy(model)
    _bump(copy.get_layer("encoder").get_layer("enc_lstm").cell.kernel)
    ref = KerasBackend(model)
    found = locate(ref, KerasBackend(copy), _batch(ref), RTOL, ATOL)
    assert found.first == "encoder/enc_lstm"
    assert "encoder/enc_embedding" in [c.layer for c in found.compared[: found.upstream_equal]]


@pytest.mark.parametrize("factory", [examples.sequential, examples.masked_lstm])
def test_converted_model_with_its_dense_changed_names_the_embedding(factory):
    model = factory()
    converted = graphkit.convert(model, "onehot-dense").model
    ref, cand = KerasBackend(model), KerasBackend(converted)
    batch = _batch(ref)
    # the rewrite itself is exact: no layer differs
    assert locate(ref, cand, batch, 0.0, 0.0).first is None
    _bump(converted.get_layer("embedding_timedist").layer.kernel)
    found = locate(ref, cand, batch, RTOL, ATOL)
    assert found.first == "embedding"
    assert found.first_candidate == "embedding_timedist"
    # the other way round: the converted model is the reference, the Embedding its match
    back = locate(cand, ref, batch, RTOL, ATOL)
    assert back.first == "embedding_timedist" and back.first_candidate == "embedding"


def test_embedding_folded_back_is_matched_through_the_reverse_rule():
    model = examples.masked_lstm()
    converted = graphkit.convert(model, "onehot-dense").model
    _bump(converted.get_layer("embedding_timedist").layer.kernel)
    folded = graphkit.convert(converted, "embedding").model
    ref = KerasBackend(converted)
    found = locate(ref, KerasBackend(folded), _batch(ref), RTOL, ATOL)
    assert found.first is None  # the fold copies the changed kernel: they agree
    assert ("embedding_timedist", "embedding") in [(c.layer, c.candidate) for c in found.compared]


def _table_name(proto, shape) -> str:
    names = [t.name for t in proto.graph.initializer if tuple(t.dims) == tuple(shape)]
    assert len(names) == 1, names
    return names[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """masked_lstm, its export, and a copy of the export with table rows 1.. moved by 0.01."""
    folder = tmp_path_factory.mktemp("locate")
    model = examples.masked_lstm()
    good = folder / "good.onnx"
    graphkit.export_onnx(model, good, verify=False)
    proto = onnx.load(str(good))
    name = _table_name(proto, model.get_layer("embedding").embeddings.shape)
    for init in proto.graph.initializer:
        if init.name == name:
            table = numpy_helper.to_array(init).copy()
            table[1:] += 0.01
            init.CopyFrom(numpy_helper.from_array(table, name))
    bad = folder / "bad.onnx"
    onnx.save(proto, str(bad))
    return model, good, bad


def test_keras_vs_its_export_parts_nowhere(exported):
    model, good, _ = exported
    ref = KerasBackend(model)
    found = locate(ref, OnnxBackend(good), _batch(ref), RTOL, ATOL)
    assert found.first is None, found.line()
    assert {"embedding", "lstm", "head"} <= {c.layer for c in found.compared}


def test_keras_vs_export_with_a_changed_table_names_the_embedding(exported):
    model, _, bad = exported
    ref = KerasBackend(model)
    found = locate(ref, OnnxBackend(bad), _batch(ref), RTOL, ATOL)
    assert found.first == "embedding", found.line()
    assert found.upstream_equal == 0
    assert found.compared[0].onnx_tensor == found.first_candidate
    # the ONNX file as the reference: the same layer, by its Keras name
    back = locate(OnnxBackend(bad), ref, _batch(ref), RTOL, ATOL)
    assert back.first == "embedding", back.line()


def test_onnx_vs_onnx_by_tensor_name(exported):
    _, good, bad = exported
    ref = OnnxBackend(good)
    batch = _batch(ref)
    assert locate(ref, OnnxBackend(good), batch, RTOL, ATOL).first is None
    found = locate(ref, OnnxBackend(bad), batch, RTOL, ATOL)
    assert found.first is not None and found.first.startswith("embedding"), found.line()
    assert "Gather" in found.first
    assert all(c.ok for c in found.compared[: found.upstream_equal])


def test_onnx_without_layer_names_gives_a_note(tmp_path):
    """An ONNX model that tf2onnx did not make: nothing to match, a note instead of an error."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("d3", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["d3"], name="neg")], "g", [x], [y])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    model = _dense_chain("functional")
    ref = KerasBackend(model)
    found = locate(ref, OnnxBackend(path), _batch(ref), RTOL, ATOL)
    assert isinstance(found, Divergence) and found.first is None
    assert found.note and "no ONNX node is named after a Keras layer" in found.note
    assert found.line().startswith("first difference not located")


def test_bad_usage_is_a_graphkit_error():
    model = _dense_chain("functional")
    ref = KerasBackend(model)
    with pytest.raises(GraphkitError, match="no input 'x'"):
        locate(ref, ref, {"y": np.zeros((2, 3), "float32")}, RTOL, ATOL)
    with pytest.raises(GraphkitError, match="two backends"):
        locate(model, ref, _batch(ref), RTOL, ATOL)
    with pytest.raises(GraphkitError, match=">= 0"):
        locate(ref, ref, _batch(ref), -1.0, ATOL)
