"""The tolerance a model earns (graphkit.verification.tolerance): float64 twins, and issue 16's
acceptance test: an honest ONNX export passes with margin, one changed table element fails."""

from __future__ import annotations

import functools

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from keras import ops
from onnx import numpy_helper

from graphkit import examples
from graphkit.backends import KerasBackend
from graphkit.backends.keras_backend import eager_call
from graphkit.conversion import convert
from graphkit.onnx_export import export_onnx
from graphkit.verification.tolerance import (
    FLOOR_ATOL,
    FLOOR_RTOL,
    EarnedTolerance,
    K,
    earn_tolerances,
    float64_twin,
    tolerance_from,
)
from tests.conftest import load_fixture

# -- float64 twins ---------------------------------------------------------------------------


def _model(name: str):
    # hidden_embedding: a custom layer that creates its Embeddings itself
    return examples.BUILDERS.get(name, getattr(examples, name))()


def _form(model, form: str):
    if form == "keras":
        return model
    if form == "converted":
        to = "embedding" if any(t.__class__.__name__ == "OneHot" for t in _layers(model)) else None
        return convert(model, to or "onehot-dense", partial=True).model
    raise AssertionError(form)


def _layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def _batch(model, seed: int, rows: int):
    long = model.name in ("conv_text_classifier",)
    return examples.sample_inputs(model, seed=seed, batch=rows, seq_len=160 if long else 12)


TWIN_MODELS = [
    "sequential",
    "masked_lstm",
    "masked_gru_sequential",
    "multi_io_shared",
    "nested",
    "onehot_dense",
    "conv_text_classifier",
    "hidden_embedding",
    "with_lambda",
]


@pytest.mark.parametrize(
    "name, form",
    [
        (name, form)
        for name in TWIN_MODELS
        for form in ("keras", "converted")
        # with_lambda's converted form is its keras form plus one Embedding: covered once
        if not (name == "with_lambda" and form == "converted")
    ],
)
def test_twin_computes_the_same_function_in_float64(name, form):
    model = _form(_model(name), form)
    twin = float64_twin(model)
    assert not isinstance(twin, str), twin
    assert [t.name for t in twin.inputs] == [t.name for t in model.inputs]
    for a, b in zip(model.weights, twin.weights):
        want = np.asarray(a)
        got = np.asarray(b)
        if want.dtype.kind == "f":
            assert got.dtype == np.float64, b.path
        np.testing.assert_array_equal(got, want.astype(got.dtype))
    batch = _batch(model, 0, 8)
    args = [batch[t.name] for t in model.inputs]
    ref32, ref64 = eager_call(model, args), eager_call(twin, args)
    for r32, r64 in zip(ref32, ref64):
        assert r64.dtype == np.float64 and r64.shape == r32.shape
        scale = float(np.abs(r64).max())
        assert float(np.abs(r32 - r64).max()) <= 1e-5 * max(scale, 1.0)
    # the twin's weights are its own: changing them leaves the model alone
    before = np.asarray(model.weights[0]).copy()
    twin.weights[0].assign(np.asarray(twin.weights[0]) + 1.0)
    np.testing.assert_array_equal(np.asarray(model.weights[0]), before)
    assert not np.array_equal(np.asarray(twin.weights[0]), np.asarray(model.weights[0]))


@keras.saving.register_keras_serializable(package="graphkit_tests", name="CastsToFloat32")
class CastsToFloat32(keras.layers.Layer):
    """A layer that casts to float32 itself, whatever its dtype policy."""

    def call(self, x):
        return ops.cast(x, "float32") * 2.0


class NotRebuildable(keras.layers.Layer):
    """A custom layer taking an object Keras cannot serialize (no config, so no rebuild)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * self.scale.value


class _Scale:
    value = 3.0


def _tiny(layer):
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(2, name="dense")(layer(x)), name="tiny")


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.table = keras.layers.Embedding(10, 3)
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(self.table(x))


def _subclassed_view():
    from graphkit.subclassed import functional_view

    model = Subclassed()
    model(np.zeros((2, 4), "int32"))
    return functional_view(model)


@pytest.mark.parametrize(
    "build, expected",
    [
        (examples.mixed_precision, "mixed_float16"),
        (lambda: _tiny(CastsToFloat32(name="to32")), "'to32'"),
        (lambda: _tiny(NotRebuildable(_Scale(), name="custom")), "'custom' (NotRebuildable)"),
        (_subclassed_view, "(Subclassed)"),
    ],
    ids=["mixed_precision", "casts_to_float32", "not_rebuildable", "subclassed_view"],
)
def test_no_twin_gives_a_one_line_reason(build, expected):
    reason = float64_twin(build())
    assert isinstance(reason, str) and "\n" not in reason
    assert expected in reason, reason


def test_no_twin_above_the_memory_limit(monkeypatch):
    from graphkit.verification import tolerance

    model = examples.masked_lstm()
    size = 8 * sum(int(np.prod(w.shape)) for w in model.weights)
    monkeypatch.setattr(tolerance, "MAX_TWIN_BYTES", size - 1)
    reason = float64_twin(model)
    assert isinstance(reason, str) and "GiB" in reason
    monkeypatch.setattr(tolerance, "MAX_TWIN_BYTES", size)
    assert not isinstance(float64_twin(model), str)


def test_keras_defaults_are_restored_after_a_twin():
    float64_twin(examples.masked_lstm())
    float64_twin(_tiny(NotRebuildable(_Scale(), name="custom")))
    assert keras.config.floatx() == "float32"
    assert keras.config.dtype_policy().name == "float32"


# -- earning a tolerance ---------------------------------------------------------------------


def _earn(model, batch):
    backend = KerasBackend(model)
    ref = dict(zip(backend.output_names, backend.run(batch)))
    return backend, ref, earn_tolerances(backend, batch, ref)


def test_tolerance_is_k_times_the_measured_error_with_floors():
    big = tolerance_from(1e-6, 1e-5, 32)
    assert (big.atol, big.rtol) == (K * 1e-6, K * 1e-5)
    assert f"{K}x" in big.source and "32 samples" in big.source
    small = tolerance_from(0.0, 0.0, 8)
    assert (small.atol, small.rtol) == (FLOOR_ATOL, FLOOR_RTOL) and "floor" in small.source
    assert 2**-26 <= FLOOR_ATOL <= 2**-20 and 2**-26 <= FLOOR_RTOL <= 2**-20


def test_earned_from_the_reference_own_error():
    model = examples.masked_lstm()
    batch = _batch(model, 1, 32)
    backend, ref, earned = _earn(model, batch)
    assert set(earned) == {"head"}
    tol = earned["head"]
    assert isinstance(tol, EarnedTolerance) and tol.samples == 32
    twin = float64_twin(model)
    ref64 = eager_call(twin, [batch["tokens"]])[0]
    e_abs = float(np.abs(ref["head"].astype("float64") - ref64).max())
    assert tol.e_abs == pytest.approx(e_abs, rel=1e-12) and 0 < tol.e_abs < 1e-5
    assert tol.e_rel == pytest.approx(e_abs / float(np.abs(ref64).max()), rel=1e-12)
    assert tol.atol == max(K * tol.e_abs, FLOOR_ATOL)
    assert tol.rtol == max(K * tol.e_rel, FLOOR_RTOL)


def test_an_exact_lookup_gets_the_floor():
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    model = keras.Model(tokens, keras.layers.Embedding(9, 3, name="table")(tokens))
    _, _, earned = _earn(model, {"tokens": np.arange(8, dtype="int32").reshape(2, 4)})
    (tol,) = earned.values()
    assert tol.e_abs == 0.0 and tol.atol == FLOOR_ATOL and "floor" in tol.source


def test_integer_outputs_and_mixed_precision_give_reasons():
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(9, 3, name="table")(tokens)
    argmax = keras.layers.Lambda(lambda t: ops.argmax(t, axis=-1), name="argmax")(x)
    model = keras.Model(tokens, argmax)
    _, _, reason = _earn(model, {"tokens": np.arange(8, dtype="int32").reshape(2, 4)})
    assert isinstance(reason, str) and "no float output" in reason

    model = examples.mixed_precision()
    _, _, reason = _earn(model, _batch(model, 1, 4))
    assert isinstance(reason, str) and "float16" in reason


def test_a_failing_float64_run_is_a_reason_not_a_traceback():
    model = examples.sequential()
    backend = KerasBackend(model)
    batch = _batch(model, 1, 4)
    ref = dict(zip(backend.output_names, backend.run(batch)))
    reason = earn_tolerances(backend, {"wrong_name": batch["tokens"]}, ref)
    assert isinstance(reason, str) and "float64 run failed" in reason
    reason = earn_tolerances(backend, batch, {})
    assert isinstance(reason, str) and "no reference output" in reason


# -- issue 16's acceptance test: honest exports pass, a changed table element fails ----------

EXPORTS = [
    ("sequential", "keras", False),
    ("sequential", "converted", True),
    ("masked_lstm", "keras", False),
    ("masked_lstm", "converted", False),
    ("masked_gru_sequential", "converted", True),
    ("multi_io_shared", "keras", False),
    ("multi_io_shared", "converted", False),
    ("nested", "keras", False),
    ("nested", "converted", True),
    ("onehot_dense", "keras", False),
    ("onehot_dense", "converted", False),
    ("conv_text_classifier", "keras", False),
    ("conv_text_classifier", "converted", True),
    ("hidden_embedding", "converted", False),
]
FIXTURE_MODELS = {"masked_gru_sequential", "multi_io_shared", "nested", "onehot_dense"}


@functools.cache
def _exported(name: str, form: str, fuse: bool, folder: str):
    model = load_fixture(name) if name in FIXTURE_MODELS else _model(name)
    model = _form(model, form)
    path = f"{folder}/{name}_{form}_{fuse}.onnx"
    export_onnx(model, path, verify=False, fuse_onehot=fuse)
    return model, onnx.load(path)


def _ort(proto, batch) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})
    return dict(zip([o.name for o in session.get_outputs()], out))


def _table(model, proto, backend, batch):
    """(initializer name, row, column) of an exported table element that ``batch`` reads."""
    weights = [np.asarray(w) for w in model.weights if len(w.shape) == 2]
    for spec in backend.inputs:
        if not spec.vocab:
            continue
        row = int(batch[spec.name].flat[0])
        for init in proto.graph.initializer:
            a = numpy_helper.to_array(init)
            if (
                a.ndim != 2
                or a.dtype != np.float32
                or a.shape[0] not in (spec.vocab, spec.vocab + 1)
            ):
                continue
            for w in weights:
                if w.shape[0] == spec.vocab and w.shape[1] == a.shape[1]:
                    if np.array_equal(a[: spec.vocab], w):
                        return init.name, row, 0
    raise AssertionError("no exported table found")


def _changed(proto, where, delta):
    name, row, col = where
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for init in out.graph.initializer:
        if init.name == name:
            a = numpy_helper.to_array(init).copy()
            a[row, col] += np.float32(delta)
            init.CopyFrom(numpy_helper.from_array(a, name))
    return out


def _worst(ref, cand, earned) -> tuple[float, float]:
    """(max |cand - ref|, max of |cand - ref| / (atol + rtol |ref|)) over the outputs."""
    move, ratio = 0.0, 0.0
    for name, tol in earned.items():
        r, c = ref[name].astype("float64"), cand[name].astype("float64")
        diff = np.abs(c - r)
        move = max(move, float(diff.max()))
        ratio = max(ratio, float((diff / (tol.atol + tol.rtol * np.abs(r))).max()))
    return move, ratio


@pytest.mark.parametrize("name, form, fuse", EXPORTS)
def test_honest_export_passes_and_a_changed_table_element_fails(name, form, fuse, tmp_path_factory):
    folder = str(tmp_path_factory.getbasetemp())
    model, proto = _exported(name, form, fuse, folder)
    backend = KerasBackend(model)
    first = _batch(model, 1, 32)
    earned = earn_tolerances(backend, first, dict(zip(backend.output_names, backend.run(first))))
    assert isinstance(earned, dict), earned
    # judged on other, more samples than the tolerance was earned on
    batch = _batch(model, 2, 128)
    ref = dict(zip(backend.output_names, backend.run(batch)))
    honest, honest_ratio = _worst(ref, _ort(proto, batch), earned)
    assert honest_ratio <= 0.5, f"honest export at {honest_ratio:.3f} of the earned tolerance"

    where = _table(model, proto, backend, batch)
    move, ratio = _worst(ref, _ort(_changed(proto, where, 1e-3), batch), earned)
    assert ratio > 1.0, (
        f"a 1e-3 change moved the outputs by {move:.3g}, {ratio:.2f} of the tolerance"
    )

    # the bar of issue 16: a change that moves the outputs by 100x the honest error fails
    scale = max(float(np.abs(r).max()) for r in ref.values())
    bar = 100 * max(honest, float(np.spacing(np.float32(scale))))  # an exact export: 100 ulps
    delta = 1e-3 * bar / move
    for _ in range(20):
        move, ratio = _worst(ref, _ort(_changed(proto, where, delta), batch), earned)
        if move >= bar:
            break
        delta *= 1.5
    assert move >= bar
    assert ratio > 1.0, f"moved by {move:.3g} (bar {bar:.3g}) but at {ratio:.2f} of the tolerance"
