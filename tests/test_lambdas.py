"""One-hot Lambdas: read without running (marshal as data), adopted in safe mode, run with --unsafe.

The recipe fixtures (``fixtures/recipe_*.h5``) are the blog's ``Lambda(K.one_hot)`` models saved
by tf_keras 2.21 (``scripts/make_fixtures.py --legacy``); their ``.npz`` hold tf_keras' own
predictions.
"""

from __future__ import annotations

import base64
import json
import marshal
import struct

import keras
import numpy as np
import pytest
from keras import ops

from graphkit.conversion import convert_file
from graphkit.errors import GraphkitError
from graphkit.io import load_model
from graphkit.lambdas.adopt import parse_requests
from graphkit.lambdas.marshal_data import LAYOUT_38, UnreadableCode, read_code
from graphkit.lambdas.recognise import recognise
from graphkit.layers import OneHot
from tests.cli_helpers import invoke
from tests.conftest import FIXTURES, assert_within_ulps

RECIPES = ["recipe_td_dense", "recipe_lstm", "recipe_uint8_300"]
K = None  # the name the recipe's code looks up (never called here)


def _config(fn, arguments=None, name="lam"):
    code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
    return {
        "name": name,
        "function": {"class_name": "__lambda__", "config": {"code": code}},
        "arguments": arguments or {},
    }


def _recipe(x, num_classes):
    return K.one_hot(K.cast(x, "uint8"), num_classes=num_classes)


# --- reading code as data -------------------------------------------------------------------


def test_reads_names_constants_and_parameters_of_this_pythons_code():
    code = read_code(marshal.dumps(_recipe.__code__))
    assert code.names == ("K", "one_hot", "cast")
    assert "uint8" in code.consts and code.parameters == ("x", "num_classes")
    assert code.name == "_recipe"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"N",
        marshal.dumps((1, 2)),
        marshal.dumps(_recipe.__code__)[:-5],
        marshal.dumps(_recipe.__code__) + b"\x00",
        b"c" + b"\xff" * 40,
        b"\xe3" + b"\x00" * 4 * 5 + b"r\x00\x00\x00\x00",
    ],
)
def test_truncated_hostile_or_other_data_is_unreadable(data):
    with pytest.raises(UnreadableCode):
        read_code(data)


def _w_long(n):
    return struct.pack("<i", n)


def _w_str(s):
    b = s.encode()
    return b"z" + bytes([len(b)]) + b


def _w_tuple(items):
    return b")" + bytes([len(items)]) + b"".join(items)


def _python38_recipe_code() -> bytes:
    """``_recipe``'s code as Python 3.8 marshals it (handmade: 3.8 is not installed here)."""
    ops38 = [
        (116, 0),  # LOAD_GLOBAL K
        (106, 1),  # LOAD_ATTR one_hot
        (116, 0),  # LOAD_GLOBAL K
        (160, 2),  # LOAD_METHOD cast
        (124, 0),  # LOAD_FAST x
        (100, 1),  # LOAD_CONST 'uint8'
        (161, 2),  # CALL_METHOD 2
        (124, 1),  # LOAD_FAST num_classes
        (100, 2),  # LOAD_CONST ('num_classes',)
        (141, 2),  # CALL_FUNCTION_KW 2
        (83, 0),  # RETURN_VALUE
    ]
    co_code = bytes(b for pair in ops38 for b in pair)
    body = b"".join(_w_long(n) for n in (2, 0, 0, 2, 5, 0x43))  # 3.8: six counts
    body += b"s" + _w_long(len(co_code)) + co_code
    body += _w_tuple([b"N", _w_str("uint8"), _w_tuple([_w_str("num_classes")])])
    body += _w_tuple([_w_str("K"), _w_str("one_hot"), _w_str("cast")])
    body += _w_tuple([_w_str("x"), _w_str("num_classes")])
    body += _w_tuple([]) + _w_tuple([])
    body += _w_str("<string>") + _w_str("_one_hot") + _w_long(1) + b"s" + _w_long(0)
    return b"c" + body


def test_reads_and_certifies_python_38_code():
    raw = _python38_recipe_code()
    assert read_code(raw).layout == LAYOUT_38
    config = {
        "name": "lambda",
        "function": [base64.b64encode(raw).decode(), None, None],
        "function_type": "lambda",
        "arguments": {"num_classes": 100},
    }
    info = recognise(config)
    assert info.certain and info.depth == 100 and info.casts == ["uint8"] and info.wrap == 256


def test_reading_never_unmarshals(monkeypatch):
    from keras.src.utils import python_utils

    import graphkit.lambdas.marshal_data as reader

    def refuse(*args, **kwargs):
        raise AssertionError("a Lambda's code was unmarshalled")

    monkeypatch.setattr(python_utils, "func_load", refuse)  # what Keras unmarshals with
    model = load_model(FIXTURES / "recipe_td_dense.h5")  # safe mode: adopted from its config
    assert isinstance(model.layers[0], OneHot)
    assert not hasattr(reader, "marshal")  # the reader does not even import marshal


# --- recognising and being certain ------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, arguments, depth, casts",
    [
        (_recipe, {"num_classes": 100}, 100, ["uint8"]),
        (lambda x, n: ops.one_hot(ops.cast(x, "uint8"), n), {"n": 30}, 30, ["uint8"]),
        (lambda x: keras.ops.one_hot(x, 12), {}, 12, []),
        (lambda x: K.cast(K.one_hot(K.cast(x, "int32"), 5), "float32"), {}, 5, ["int32"]),
    ],
)
def test_certain_one_hots(fn, arguments, depth, casts):
    info = recognise(_config(fn, arguments))
    assert info.certain, info.why_not_certain
    assert (info.depth, info.casts) == (depth, casts)


@pytest.mark.parametrize(
    "fn, arguments, why",
    [
        (lambda x, n: K.one_hot(K.cast(x, "uint8"), n) * 2, {"n": 30}, "BINARY_OP"),
        (lambda x, n: K.one_hot(K.cast(x * x, "uint8"), n), {"n": 30}, "BINARY_OP"),
        (lambda x: ops.one_hot(x, 5, axis=0), {}, "another axis"),
        (lambda x: np.one_hot(x, 5), {}, "unknown module"),
        (lambda x, n: K.one_hot(x, n), {"n": 3, "m": 4}, "parameters"),
    ],
)
def test_recognised_but_not_certain(fn, arguments, why):
    info = recognise(_config(fn, arguments))
    assert info.one_hot and not info.certain
    assert why in info.why_not_certain


def test_other_lambdas_and_named_functions():
    assert not recognise(_config(lambda x: x**2)).one_hot
    named = {
        "name": "enc",
        "function": {"module": "builtins", "class_name": "function", "config": "to_one_hot"},
        "arguments": {"num_classes": 30},
    }
    info = recognise(named)
    assert info.one_hot and not info.certain and info.depth == 30
    assert "not in the file" in info.why_not_certain


def test_parse_requests():
    assert parse_requests(["a", "b=300"]) == {"a": None, "b": 300}
    for bad in ("=3", "a=0", "a=x"):
        with pytest.raises(GraphkitError, match="--onehot-lambda"):
            parse_requests([bad])


# --- the recipe's models, in safe mode --------------------------------------------------------


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_loads_in_safe_mode_and_predicts_what_tf_keras_predicted(name):
    data = np.load(FIXTURES / f"{name}.npz")
    notes, findings = [], []
    model = load_model(FIXTURES / f"{name}.h5", notes=notes, findings=findings)
    assert isinstance(model.layers[0], OneHot) and model.layers[0].wrap == 256
    (finding,) = findings
    assert (
        "certainly one_hot" in finding.notes[0] and "none of its code was run" in finding.notes[0]
    )
    assert any("compile config" in n for n in notes)  # Keras 2's 'mse' is dropped, with a note
    assert_within_ulps(np.asarray(model(data["x"])), data["expected"], ulps=8)


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("to", ["embedding", "onehot-dense"])
def test_recipe_converts_both_ways_to_safe_files_without_lambdas(name, to, tmp_path):
    data = np.load(FIXTURES / f"{name}.npz")
    out = tmp_path / "out.keras"
    convert_file(FIXTURES / f"{name}.h5", to, out)
    back = keras.saving.load_model(out)  # plain Keras, safe mode, graphkit imported
    layers = list(back._flatten_layers())
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in layers)
    assert_within_ulps(np.asarray(back(data["x"])), data["expected"], ulps=8)
    if name == "recipe_lstm":  # the safe OneHot feeds the LSTM
        assert isinstance(back.layers[0], OneHot) and isinstance(back.layers[1], keras.layers.LSTM)
    elif to == "embedding":
        assert isinstance(back.layers[0], keras.layers.Embedding)


def test_uint8_aliasing_is_exact_for_every_index_and_reported(tmp_path):
    out = tmp_path / "emb.keras"
    report = convert_file(FIXTURES / "recipe_uint8_300.h5", "embedding", out)
    text = report.format()
    assert "indices 256..299 share the rows of 0..43" in text
    original = load_model(FIXTURES / "recipe_uint8_300.h5")
    converted = keras.saving.load_model(out)
    x = np.concatenate([np.arange(300), np.zeros(1)]).reshape(-1, 7).astype("float32")
    np.testing.assert_array_equal(converted(x), original(x))
    table = np.asarray(converted.layers[0].embeddings)
    np.testing.assert_array_equal(table[256:300], table[:44])


def test_unwrap_indices_gives_own_rows_and_verify_shows_the_difference(tmp_path):
    out = tmp_path / "unwrapped.keras"
    report = convert_file(FIXTURES / "recipe_uint8_300.h5", "embedding", out, unwrap_indices=True)
    assert any("--unwrap-indices: 'lambda'" in n for n in report.notes)
    table = np.asarray(keras.saving.load_model(out).layers[0].embeddings)
    assert not np.array_equal(table[256:300], table[:44])
    result = invoke("verify", FIXTURES / "recipe_uint8_300.h5", out, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["equivalent"] is False


def test_named_function_needs_the_flag_and_then_converts(tmp_path):
    with pytest.raises(GraphkitError, match="--onehot-lambda onehot_fn") as info:
        load_model(FIXTURES / "lambda_k3_named.keras")
    assert "refused in safe mode" in str(info.value)
    data = np.load(FIXTURES / "lambda_k3_named.npz")
    out = tmp_path / "named.keras"
    report = convert_file(
        FIXTURES / "lambda_k3_named.keras", "onehot-dense", out, onehot_lambdas=["onehot_fn"]
    )
    assert "on your word" in report.format()
    back = keras.saving.load_model(out)
    assert_within_ulps(back(data["x"]), data["expected"])  # recorded on another CPU


def test_depth_from_the_flag_and_bad_names(tmp_path):
    model = load_model(FIXTURES / "lambda_k3_named.keras", onehot_lambdas={"onehot_fn": 30})
    assert model.get_layer("onehot_fn").input_dim == 30
    with pytest.raises(GraphkitError, match="no Lambda named 'nope'.*onehot_fn"):
        load_model(FIXTURES / "lambda_k3_named.keras", onehot_lambdas=["nope"])


@pytest.mark.parametrize("fixture", ["lambda_marker.keras", "lambda_marker.h5"])
def test_safe_mode_never_runs_lambda_code(fixture, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("GRAPHKIT_MARKER", str(marker))
    src = FIXTURES / fixture
    name = "marker" if fixture.endswith(".keras") else "lambda"
    shown = invoke("inspect", src)  # shown as it would be adopted, with the flag to adopt it
    assert shown.exit_code == 0 and f"pass --onehot-lambda {name}" in shown.stdout
    refused = invoke("convert", src, "--to", "embedding", "-o", tmp_path / "r.keras")
    assert refused.exit_code == 2 and f"--onehot-lambda {name}" in refused.stderr
    for args in (
        ("inspect", src, "--onehot-lambda", name),
        ("convert", src, "--to", "embedding", "-o", tmp_path / "a.keras", "--onehot-lambda", name),
        (
            "convert",
            src,
            "--to",
            "onehot-dense",
            "-o",
            tmp_path / "b.keras",
            "--onehot-lambda",
            name,
        ),
        ("verify", src, tmp_path / "a.keras", "--onehot-lambda", name, "--samples", "8"),
        ("export", src, "--onnx", "-o", tmp_path / "a.onnx", "--onehot-lambda", name),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    assert not marker.exists()
    # the proof that the marker works: --unsafe runs the code
    load_model(src, unsafe=True, onehot_lambdas=())
    assert marker.exists()


# --- --unsafe: the Lambda runs (Keras 2 names provided) and is proven ---------------------------


@pytest.mark.parametrize("name", RECIPES)
def test_unsafe_runs_the_recipe_code_on_keras_3(name):
    data = np.load(FIXTURES / f"{name}.npz")
    model = load_model(FIXTURES / f"{name}.h5", unsafe=True)
    assert isinstance(model.layers[0], keras.layers.Lambda)
    assert_within_ulps(np.asarray(model(data["x"])), data["expected"], ulps=8)


def test_unsafe_conversion_proves_the_lambda_by_running_it(tmp_path):
    out = tmp_path / "u.keras"
    report = convert_file(FIXTURES / "recipe_uint8_300.h5", "embedding", out, unsafe=True)
    text = report.format()
    assert "proven by running it on indices 0..555: one_hot(i % 256, 300)" in text
    data = np.load(FIXTURES / "recipe_uint8_300.npz")
    assert_within_ulps(np.asarray(keras.saving.load_model(out)(data["x"])), data["expected"], 8)


def test_unsafe_named_function_says_what_to_import():
    with pytest.raises(GraphkitError, match="--import MODULE_OR_FILE.py that defines it"):
        load_model(FIXTURES / "lambda_k3_named.keras", unsafe=True)


def test_keras3_lambda_expression_auto_adopted_in_safe_mode(tmp_path):
    data = np.load(FIXTURES / "lambda_k3_expr.npz")
    model = load_model(FIXTURES / "lambda_k3_expr.keras")
    assert isinstance(model.get_layer("onehot_lambda"), OneHot)
    assert_within_ulps(np.asarray(model(data["x"])), data["expected"])  # recorded on another CPU


def test_inspect_marks_lambdas(tmp_path):
    result = invoke("inspect", FIXTURES / "recipe_uint8_300.h5")
    assert result.exit_code == 0
    assert "Lambda, adopted as OneHot (its saved code is certainly one_hot" in result.stdout
    result = invoke("inspect", FIXTURES / "lambda_k3_named.keras", "--json")
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.stdout)["layers"] if r["path"] == "onehot_fn"]
    assert row["role"] == "lambda" and "pass --onehot-lambda onehot_fn" in row["detail"]


# --- what a trial as a new user found ------------------------------------------------------


def _keras3_lambda_model(path, fn, depth=10, name="lam"):
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Lambda(fn, name=name)(tokens)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(tokens, out)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    model.save(path)
    return model


def test_code_that_does_more_is_never_hinted_and_a_forced_adoption_warns(tmp_path):
    src = tmp_path / "half.keras"
    _keras3_lambda_model(src, lambda x: ops.one_hot(x, 10) * 0.5)
    result = invoke("convert", src, "--to", "embedding", "-o", tmp_path / "a.keras")
    assert result.exit_code == 2
    assert "is not a plain one-hot" in result.stderr and "--onehot-lambda" not in result.stderr
    forced = invoke(
        "convert", src, "--to", "embedding", "-o", tmp_path / "b.keras", "--onehot-lambda", "lam"
    )
    assert forced.exit_code == 0 and "WARNING: Lambda 'lam'" in forced.stdout
    # the reference is adopted too: verify says so, and --unsafe shows the real difference
    same = invoke("verify", src, tmp_path / "b.keras", "--onehot-lambda", "lam")
    assert "ran as graphkit's OneHot, not as their own code" in same.stdout
    real = invoke("verify", src, tmp_path / "b.keras", "--unsafe")
    assert real.exit_code == 1, real.output


def test_keras3_ops_lambda_runs_under_unsafe_and_is_proven(tmp_path):
    src = tmp_path / "ops.keras"
    model = _keras3_lambda_model(src, lambda x: ops.one_hot(ops.cast(x, "int32"), 10))
    out = tmp_path / "o.keras"
    report = convert_file(src, "embedding", out, unsafe=True)
    assert "proven by running it" in report.format()
    x = np.arange(12).reshape(2, 6).astype("int32") % 10
    np.testing.assert_array_equal(keras.saving.load_model(out)(x), model(x))


def test_integer_default_argument_is_a_certain_depth(tmp_path):
    src = tmp_path / "default.keras"
    model = _keras3_lambda_model(src, lambda x, n=10: ops.one_hot(x, n))
    loaded = load_model(src)
    assert isinstance(loaded.get_layer("lam"), OneHot) and loaded.get_layer("lam").input_dim == 10
    x = np.arange(12).reshape(2, 6).astype("int32") % 10
    np.testing.assert_array_equal(loaded(x), model(x))


def test_a_depth_that_does_not_fit_the_next_kernel_is_refused(tmp_path):
    src = tmp_path / "m.keras"
    _keras3_lambda_model(src, lambda x: ops.one_hot(x, 10))
    for depth in ("9", "11"):
        result = invoke(
            "convert",
            src,
            "--to",
            "onehot-dense",
            "-o",
            tmp_path / "x.keras",
            "--onehot-lambda",
            f"lam={depth}",
        )
        assert result.exit_code == 2 and "is that depth right?" in result.stderr, result.output
        assert f"with Lambda 'lam' as OneHot({depth})" in result.stderr
        assert "Traceback" not in result.output
    huge = invoke("inspect", src, "--onehot-lambda", "lam=99999999999")
    assert huge.exit_code == 2 and "past the int32 index range" in huge.stderr
    assert not (tmp_path / "x.keras").exists()


def test_a_wrong_depth_for_a_keras2_recipe_names_the_right_one(tmp_path):
    result = invoke(
        "convert",
        FIXTURES / "recipe_td_dense.h5",
        "--to",
        "onehot-dense",
        "-o",
        tmp_path / "x.keras",
        "--onehot-lambda",
        "lambda=99",
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.keras").exists()
    assert "depth" in result.stderr and "100" in result.stderr
