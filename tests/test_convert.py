"""graphkit.convert on every fixture model kind, both directions, through files."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.conversion import convert, convert_file, default_output_path
from graphkit.io import load_model
from graphkit.layers import OneHot
from tests.conftest import (
    FIXTURES,
    KERAS3_FIXTURES,
    assert_within_ulps,
    embedding_tables,
    fixture_inputs,
    load_fixture,
    max_abs_diff,
    run,
)


@pytest.mark.parametrize("name", KERAS3_FIXTURES)
def test_fixture_round_trip_through_files_is_exact(name, tmp_path):
    original = load_fixture(name)
    x = fixture_inputs(name)
    onehot_path = tmp_path / "onehot.keras"
    back_path = tmp_path / "back.keras"

    rep = convert_file(FIXTURES / f"{name}.keras", "onehot-dense", onehot_path)
    assert rep.converted and not rep.refused
    onehot = keras.saving.load_model(onehot_path)  # plain Keras, safe mode
    kinds = {type(layer) for layer in onehot._flatten_layers(include_self=False, recursive=True)}
    assert keras.layers.Embedding not in kinds and OneHot in kinds
    assert max_abs_diff(run(original, x), run(onehot, x)) == 0.0

    convert_file(onehot_path, "embedding", back_path)
    back = keras.saving.load_model(back_path)
    assert max_abs_diff(run(original, x), run(back, x)) == 0.0
    before, after = embedding_tables(original), embedding_tables(back)
    assert set(before) == set(after)
    for key in before:
        assert before[key].dtype == after[key].dtype
        assert before[key].tobytes() == after[key].tobytes(), key


def test_masks_flow_exactly_as_before():
    """Padding must not change the output of a masked LSTM, before and after conversion."""
    model = load_fixture("masked_lstm")
    new = convert(model, "onehot-dense").model
    short = {"tokens": np.array([[5, 7, 9]])}
    padded = {"tokens": np.array([[5, 7, 9, 0, 0, 0, 0]])}
    for m in (model, new):
        assert max_abs_diff(run(m, short), run(m, padded)) == 0.0
    assert max_abs_diff(run(model, padded), run(new, padded)) == 0.0


def test_shared_embedding_becomes_one_shared_pair_with_weights_stored_once():
    model = load_fixture("multi_io_shared")
    new = convert(model, "onehot-dense").model
    onehots = [layer for layer in new.layers if isinstance(layer, OneHot)]
    assert sorted(layer.name for layer in onehots) == [
        "shared_embedding_onehot",
        "user_embedding_onehot",
    ]
    shared = new.get_layer("shared_embedding_timedist")
    assert len(shared._inbound_nodes) == 2  # called on query and on doc
    kernels = [w for w in new.weights if "shared_embedding" in w.path]
    assert len(kernels) == 1


def test_frozen_embedding_stays_frozen_and_compile_config_is_kept():
    model = load_fixture("multi_io_shared")
    report = convert(model, "onehot-dense")
    new = report.model
    assert new.get_layer("user_embedding_timedist").trainable is False
    assert new.get_layer("shared_embedding_timedist").trainable is True
    assert new.compiled
    assert new.get_compile_config()["loss"] == model.get_compile_config()["loss"]
    assert any("optimizer state is not carried over" in n for n in report.notes)
    assert len(new.trainable_weights) == len(model.trainable_weights)


def test_nested_sequential_is_rewritten_inside():
    new = convert(load_fixture("nested"), "onehot-dense").model
    encoder = new.get_layer("encoder")
    assert isinstance(encoder, keras.Sequential)
    assert [type(layer).__name__ for layer in encoder.layers] == [
        "OneHot",
        "TimeDistributed",
        "LSTM",
    ]


def test_variable_length_axis_accepts_any_length():
    model = load_fixture("masked_gru_sequential")
    new = convert(model, "onehot-dense").model
    for length in (1, 4, 13):
        x = {"tokens": np.random.default_rng(length).integers(0, 40, size=(3, length))}
        assert max_abs_diff(run(model, x), run(new, x)) == 0.0


@pytest.mark.parametrize("fixture", ["legacy_keras2.h5", "sequential_keras3.h5"])
def test_legacy_h5_converts(fixture, tmp_path):
    src = FIXTURES / fixture
    out = tmp_path / "out.h5"
    convert_file(src, "onehot-dense", out)
    original, new = load_model(src), load_model(out)
    x = np.random.default_rng(0).integers(1, 50, size=(4, 6)).astype("int32")
    x[:, 4:] = 0
    assert max_abs_diff([np.asarray(original(x))], [np.asarray(new(x))]) == 0.0


def test_legacy_keras2_model_predicts_what_keras2_predicted():
    data = np.load(FIXTURES / "legacy_keras2.npz")
    model = load_model(FIXTURES / "legacy_keras2.h5")
    assert_within_ulps(model(data["embedding_input"]), data["expected"])


def test_default_output_path():
    assert (
        default_output_path("/a/b/model.keras", "onehot-dense").as_posix()
        == "/a/b/model.onehot-dense.keras"
    )
    assert default_output_path("m.h5", "embedding").as_posix() == "m.embedding.keras"


def test_unknown_target():
    with pytest.raises(GraphkitError, match="unknown target"):
        convert(load_fixture("sequential"), "onehot")


def test_legacy_keras2_functional_with_wrapped_lstm_converts_exactly(tmp_path):
    """Shared masked Embedding, GRU and Bidirectional(LSTM) saved by tf_keras: time_major is dropped."""
    data = np.load(FIXTURES / "legacy_keras2_functional.npz")
    x = {"a": data["a"], "b": data["b"]}
    src = FIXTURES / "legacy_keras2_functional.h5"
    model = load_model(src)
    here = np.asarray(model(x))
    assert_within_ulps(here, data["expected"])  # recorded by tf_keras on another machine
    out = tmp_path / "f.keras"
    rep = convert_file(src, "onehot-dense", out)
    assert [f.path for f in rep.converted] == ["shared_embedding"]
    np.testing.assert_array_equal(np.asarray(load_model(out)(x)), here)  # same process: bitwise
    assert src.read_bytes() == (FIXTURES / "legacy_keras2_functional.h5").read_bytes()


def test_legacy_time_major_true_is_refused_with_the_reason(tmp_path):
    import json
    import shutil

    import h5py

    path = tmp_path / "tm.h5"
    shutil.copyfile(FIXTURES / "legacy_keras2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"]["time_major"] = True
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(GraphkitError, match="'lstm' was saved with time_major=True"):
        load_model(path)


def test_keras2_compile_config_keras3_cannot_restore_is_dropped_with_a_note(tmp_path):
    """compile(loss='mse') in tf_keras: Keras 3 fails on it ("keras.metrics.mse ... is not a
    KerasSaveable subclass"). The model loads without it, and the report says so."""
    import json
    import shutil

    import h5py

    src = tmp_path / "seed.h5"
    shutil.copyfile(FIXTURES / "legacy_keras2.h5", src)
    with h5py.File(src, "r+") as f:
        config = json.loads(f.attrs["training_config"])
        config["loss"] = "mse"
        f.attrs["training_config"] = json.dumps(config)
    before = src.read_bytes()
    rep = convert_file(src, "onehot-dense", tmp_path / "seed.keras")
    (note,) = [n for n in rep.notes if "could not be restored in Keras 3" in n]
    assert "keras.metrics.mse" in note and "compile the model again" in note
    assert not any(n.startswith("optimizer state") for n in rep.notes)  # nothing compiled
    data = np.load(FIXTURES / "legacy_keras2.npz")
    assert_within_ulps(
        load_model(tmp_path / "seed.keras")(data["embedding_input"]), data["expected"]
    )
    assert src.read_bytes() == before
