"""Names never collide: what a rewrite creates (layers, and the mask operations Keras adds
while the graph is rebuilt) is unique against every name in the model, whatever Keras'
session-wide naming counters say (issue 17, item 5).

A model built in a notebook after others holds names such as ``not_equal_1``; converted in a
fresh session (the CLI) or after Keras' counters were reset, Keras would give the same name
to the mask operation it creates while rebuilding. The tests put Keras' counters exactly
where they would produce a name of the model ("aimed"), which fails without the fix.
"""

from __future__ import annotations

import re
from collections import Counter

import keras
import numpy as np
import pytest
from keras import layers
from typer.testing import CliRunner

import graphkit
from graphkit import _keras_api
from graphkit.cli import app
from graphkit.conversion import convert_file

runner = CliRunner()


def masked_model(vocab: int = 20, name: str | None = None) -> keras.Model:
    """A small masked model, built only to advance Keras' naming counters."""
    i = keras.Input((None,), dtype="int32")
    x = layers.Embedding(vocab, 3, mask_zero=True)(i)
    return keras.Model(i, layers.GlobalAveragePooling1D()(x), name=name)


def notebook_model() -> keras.Model:
    """The issue's model, built as a notebook builds it (after other masked models)."""
    j = keras.Input((None,), dtype="int32", name="ids")
    f = keras.Input((3,), name="feat")
    e = layers.GlobalAveragePooling1D()(layers.Embedding(50, 4, mask_zero=True, name="e2")(j))
    return keras.Model([j, f], layers.Dense(1, name="y")(layers.Concatenate()([e, f])))


def nested_model() -> keras.Model:
    """The notebook model called inside another Functional that has its own masked table."""
    inner = notebook_model()
    j = keras.Input((None,), dtype="int32", name="outer_ids")
    f = keras.Input((3,), name="outer_feat")
    k = keras.Input((None,), dtype="int32", name="more_ids")
    m = layers.GlobalAveragePooling1D()(layers.Embedding(30, 3, mask_zero=True, name="e3")(k))
    out = layers.Concatenate()([inner([j, f]), m])
    return keras.Model([j, f, k], layers.Dense(1, name="z")(out))


def sequential_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(40, 4, mask_zero=True),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2),
        ]
    )


def inputs_for(model, seed: int = 0) -> list[np.ndarray]:
    """Indices covering every row (zeros, i.e. masked steps, included), floats elsewhere."""
    rng = np.random.default_rng(seed)
    out = []
    for tensor in model.inputs:
        if "int" in str(tensor.dtype):
            x = rng.integers(0, 30, size=(6, 9)).astype("int32")
            x[0, :] = 0  # an all-masked row
            x[1, 4:] = 0  # a zero tail
            out.append(x)
        else:
            out.append(rng.normal(size=(6, *tensor.shape[1:])).astype("float32"))
    return out


def all_names(model) -> list[str]:
    """Every operation name in every Functional graph of ``model`` (with repeats)."""
    names = []
    for layer in _keras_api.flatten_layers(model, include_self=True):
        inner = getattr(layer, "_functional", None)  # a Sequential's inner graph
        graph = layer if inner is None else inner
        if isinstance(graph, _keras_api.functional_class()):
            names += [op.name for op in graph.operations]
    return names


def aim_counters(model) -> list[str]:
    """Reset Keras' naming counters (a fresh session), then advance each so that the next
    name Keras gives equals a name the model already holds. Returns the aimed names."""
    keras.backend.clear_session()
    lowest: dict[str, int] = {}
    for name in all_names(model):
        found = re.fullmatch(r"(.+)_(\d+)", name)
        if found:
            base, number = found.group(1), int(found.group(2))
            lowest[base] = min(lowest.get(base, number), number)
    for base, number in lowest.items():
        for _ in range(number):
            keras.backend.get_uid(base)
    return [f"{base}_{number}" for base, number in lowest.items()]


def assert_unique(model) -> None:
    repeated = {n: c for n, c in Counter(all_names(model)).items() if c > 1}
    assert not repeated, repeated


def predict(model, xs):
    return [np.asarray(y) for y in keras.tree.flatten(model(xs if len(xs) > 1 else xs[0]))]


def assert_same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def round_trip(model, tmp_path, stem: str, *, aim: bool):
    """Save ``model``, load it back, convert to one-hot and back, saving and loading each
    result; with ``aim``, Keras' counters point at the model's names before each rewrite."""
    src = tmp_path / f"{stem}.keras"
    graphkit.save_model(model, src)
    loaded = graphkit.load_model(src)
    xs = inputs_for(loaded)
    reference = predict(loaded, xs)
    current = loaded
    for to, suffix in (("onehot-dense", "onehot"), ("embedding", "back")):
        if aim:
            assert aim_counters(current), "the model holds no auto-named operation to aim at"
        report = graphkit.convert(current, to, copy=False)  # aimed counters hold until the rebuild
        assert report.converted and not report.refused
        assert_unique(report.model)
        assert_same(predict(report.model, xs), reference)
        path = tmp_path / f"{stem}.{suffix}.keras"
        graphkit.save_model(report.model, path)
        current = graphkit.load_model(path)
        assert_unique(current)
        assert_same(predict(current, xs), reference)
    return current


@pytest.mark.parametrize("aim", [False, True], ids=["same-session", "aimed-counters"])
def test_notebook_model_converts_both_ways(tmp_path, aim):
    for _ in range(2):
        masked_model()  # the counters advance: the notebook model gets not_equal_N, N >= 1
    model = notebook_model()
    mask_ops = [n for n in all_names(model) if n.startswith("not_equal")]
    assert mask_ops and mask_ops != ["not_equal"], mask_ops
    back = round_trip(model, tmp_path, "m2", aim=aim)
    assert "e2" in [layer.name for layer in back.layers]


def test_nested_model_converts_both_ways(tmp_path):
    masked_model()
    round_trip(nested_model(), tmp_path, "nested", aim=True)


def test_sequential_model_converts_both_ways(tmp_path):
    masked_model()
    round_trip(sequential_model(), tmp_path, "seq", aim=False)


def test_converted_twice_in_one_session(tmp_path):
    """The same file converted again and again, one result kept alive beside the next."""
    masked_model()
    src = tmp_path / "m2.keras"
    graphkit.save_model(notebook_model(), src)
    xs = inputs_for(graphkit.load_model(src))
    kept = []
    for round_ in range(2):
        loaded = graphkit.load_model(src)
        aim_counters(loaded)
        onehot = graphkit.convert(loaded, "onehot-dense", copy=False).model
        back = graphkit.convert(onehot, "embedding").model
        for model in (onehot, back):
            assert_unique(model)
        path = tmp_path / f"round{round_}.onehot.keras"
        graphkit.save_model(onehot, path)
        kept.append(graphkit.load_model(path))
    reference = predict(graphkit.load_model(src), xs)
    for model in kept:
        assert_same(predict(model, xs), reference)


def test_rules_avoid_operation_names():
    """A rule's new layer name never takes an operation's name (``e2_onehot`` held by an op)."""
    from graphkit.engine import all_layer_names

    model = notebook_model()
    ops = {n for n in all_names(model) if n.startswith("not_equal")}
    assert ops <= all_layer_names(model)


def test_h5_converts_or_is_refused_in_one_line(tmp_path):
    masked_model()
    src = tmp_path / "m2.keras"
    graphkit.save_model(notebook_model(), src)
    aim_counters(graphkit.load_model(src))
    out = tmp_path / "m2.onehot.h5"
    try:
        convert_file(src, "onehot-dense", out)
    except graphkit.GraphkitError as exc:
        message = str(exc)
        assert "\n" not in message and "NotEqual" in message, message
        assert not out.exists()
    else:
        loaded = graphkit.load_model(out)
        xs = inputs_for(loaded)
        assert_same(predict(loaded, xs), predict(graphkit.load_model(src), xs))


def test_cli_converts_the_notebook_model_in_a_fresh_session(tmp_path):
    """The issue's steps: one masked model, then the notebook model, saved; a fresh session
    (counters reset, as in a new process) runs ``graphkit convert``, both ways."""
    keras.backend.clear_session()
    masked_model()
    src = tmp_path / "m2.keras"
    notebook_model().save(src)
    keras.backend.clear_session()  # what a new process starts with
    onehot = tmp_path / "m2.onehot.keras"
    result = runner.invoke(app, ["convert", str(src), "--to", "onehot-dense", "-o", str(onehot)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    keras.backend.clear_session()
    back = tmp_path / "m2.back.keras"
    result = runner.invoke(app, ["convert", str(onehot), "--to", "embedding", "-o", str(back)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    h5 = tmp_path / "m2.onehot.h5"
    keras.backend.clear_session()
    result = runner.invoke(app, ["convert", str(src), "--to", "onehot-dense", "-o", str(h5)])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    original, converted = graphkit.load_model(src), graphkit.load_model(back)
    xs = inputs_for(original)
    assert_same(predict(converted, xs), predict(original, xs))
