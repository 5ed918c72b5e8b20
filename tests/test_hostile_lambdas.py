"""Hostile Lambda layers (issue 18): the bytecode reader's work is bounded (graphkit.limits),
configs of the wrong shape are read without a traceback, the --unsafe proof is bounded and checks
what the Lambda gives, and a Keras 3 Functional one-hot Lambda (saved with ``mask=None``) is
adopted. Fuzzed bytes and configs give a result or a refusal, never another exception.
"""

from __future__ import annotations

import base64
import copy
import json
import marshal
import opcode
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from graphkit import limits
from graphkit.cli import app
from graphkit.errors import GraphkitError
from graphkit.lambdas.adopt import Adoption, adopt
from graphkit.lambdas.marshal_data import CodeData, UnreadableCode, read_code
from graphkit.lambdas.recognise import LambdaInfo, recognise

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
K = None  # the name the crafted code looks up (never called)


# Compiled here, not loaded from a .pyc: marshal then writes no back-reference for the keyword
# names, which _shared_chain replaces byte for byte.
RECIPE = compile(
    "def _recipe(x):\n    return K.one_hot(K.cast(x, 'uint8'), num_classes=10)\n",
    "<recipe>",
    "exec",
).co_consts[0]


def _w_long(n: int) -> bytes:
    return struct.pack("<i", n)


def _lambda_config(raw: bytes, **extra) -> dict:
    config = {
        "name": "lam",
        "function": {
            "class_name": "__lambda__",
            "config": {"code": base64.b64encode(raw).decode("ascii")},
        },
        "arguments": {},
    }
    config.update(extra)
    return config


def _shared_chain(levels: int) -> bytes:
    """The recipe's code with its keyword names ``("num_classes",)`` replaced by a chain of
    shared tuples ``t_k = (t_k-1, t_k-1)``: a few hundred bytes that hash in 2^levels steps.
    Built by hand: Python's own code constructor would walk the chain (and never end)."""
    from graphkit.lambdas import marshal_data

    data = marshal.dumps(RECIPE)
    reader = marshal_data._Reader(data, marshal_data.LAYOUT_311)
    reader.obj()
    first = reader.refs.index("num_classes")  # the chain's back-references start there
    old = b")\x01\xda\x0bnum_classes"
    head, tail = data.split(old)

    def tup(k: int) -> bytes:  # t_levels takes reference `first`, t_0 `first + levels`
        if k == 0:
            return bytes([ord(")") | 0x80, 1]) + b"\xda\x0bnum_classes"
        return bytes([ord(")") | 0x80, 2]) + tup(k - 1) + b"r" + _w_long(first + levels - k + 1)

    # the one back-reference after the chain (the qualname, same as the name) moves on
    i = tail.index(b"\xda\x07_recipe") + 9
    assert tail[i : i + 1] == b"r"
    ref = struct.unpack("<i", tail[i + 1 : i + 5])[0]
    tail = tail[:i] + b"r" + _w_long(ref + levels + 1) + tail[i + 5 :]
    return head + tup(levels) + tail


def _patched_code(code, *, before_load_fast: bytes = b"", after_resume: bytes = b"") -> bytes:
    """The marshalled ``code`` with raw instructions inserted (3.11+ layout)."""
    raw = code.co_code
    at = raw.index(bytes([opcode.opmap["LOAD_FAST"]]))
    raw = raw[:2] + after_resume + raw[2:at] + before_load_fast + raw[at:]
    return marshal.dumps(code.replace(co_code=raw))


def _in_subprocess(source: str, timeout: float = 60) -> str:
    """Run ``source`` in a fresh Python (a hang in C code cannot be interrupted in-process)."""
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# --- item 3: bounded work on the bytecode ----------------------------------------------------


def test_a_chain_of_shared_tuples_is_refused_quickly_naming_the_limit():
    small = _shared_chain(2)
    assert marshal.loads(small).co_consts[-1] == ((("num_classes",),) * 2,) * 2  # well formed
    raw = _shared_chain(60)
    assert len(raw) < 2000
    out = _in_subprocess(
        "import base64, time\n"
        "from graphkit.lambdas.recognise import recognise\n"
        "t = time.perf_counter()\n"
        f"info = recognise({{'name': 'lam', 'function': {{'class_name': '__lambda__', "
        f"'config': {{'code': {base64.b64encode(raw).decode()!r}}}}}}})\n"
        "print(info.why_not_certain); print(time.perf_counter() - t)\n",
        timeout=60,
    )
    why, seconds = out.strip().splitlines()
    assert "graphkit.limits.LAMBDA_MAX_EXPANDED_SIZE" in why
    assert float(seconds) < 1


def test_shared_constants_within_the_limit_are_read():
    code = read_code(_shared_chain(10))  # 2^10 uses of one string: small
    assert isinstance(code, CodeData) and code.names == ("K", "one_hot", "cast")


@pytest.mark.parametrize(
    ("insert", "limit"),
    [
        (dict(before_load_fast=bytes([opcode.opmap["EXTENDED_ARG"], 0xFF]) * 450_000), "BYTECODE"),
        (dict(before_load_fast=bytes([opcode.opmap["EXTENDED_ARG"], 0xFF]) * 4), "EXTENDED_ARGS"),
        (dict(after_resume=bytes([opcode.opmap["NOP"], 0]) * 5000), "INSTRUCTIONS"),
    ],
)
def test_long_or_prefixed_code_is_not_decoded_past_the_limits(insert, limit):
    raw = _patched_code(RECIPE, **insert)
    start = time.perf_counter()
    info = recognise(_lambda_config(raw))
    assert time.perf_counter() - start < 1
    assert info.one_hot and not info.certain
    assert f"graphkit.limits.LAMBDA_MAX_{limit}" in info.why_not_certain


def test_three_extended_args_are_still_decoded():
    raw = _patched_code(RECIPE, before_load_fast=bytes([opcode.opmap["EXTENDED_ARG"], 0]) * 3)
    info = recognise(_lambda_config(raw))
    assert info.certain and info.depth == 10


def test_the_500k_extended_arg_file_is_refused_in_one_line(tmp_path):
    raw = _patched_code(
        RECIPE, before_load_fast=bytes([opcode.opmap["EXTENDED_ARG"], 0xFF]) * 450_000
    )
    path = _keras_with_lambda(tmp_path, _lambda_config(raw))
    assert path.stat().st_size < 20_000
    start = time.perf_counter()
    result = runner.invoke(
        app, ["convert", str(path), "--to", "embedding", "-o", str(tmp_path / "o.keras")]
    )
    assert time.perf_counter() - start < 30
    assert result.exit_code == 2, result.output
    assert "graphkit.limits.LAMBDA_MAX_BYTECODE_BYTES" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_oversize_code_is_refused_naming_the_limit():
    info = recognise(_lambda_config(b"\xe3" + b"\0" * limits.LAMBDA_MAX_MARSHAL_BYTES))
    assert "graphkit.limits.LAMBDA_MAX_MARSHAL_BYTES" in info.why_not_certain


# --- item 4: configs of the wrong shape, on the inspect path ---------------------------------


def _keras_with_lambda(tmp_path: Path, lambda_config: dict, name: str = "m.keras") -> Path:
    """A saved Sequential(Input int32 (4,), Lambda one-hot 10, Dense 3) whose Lambda config is
    replaced by ``lambda_config`` in its config.json."""
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Lambda(lambda x: keras.ops.one_hot(x, 10), name="lam"),
            keras.layers.Dense(3),
        ]
    )
    saved = tmp_path / f"saved_{name}"
    model.save(saved)
    path = tmp_path / name
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"] = lambda_config
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)
    return path


def _hostile_configs() -> dict[str, dict]:
    good = _lambda_config(marshal.dumps(RECIPE))
    out = {}
    out["function is a list of a list"] = {**good, "function": [[1], 2, 3]}
    out["function is a list of a string"] = {**good, "function": ["x"]}
    c = copy.deepcopy(good)
    c["function"]["config"] = [1]
    out["function config is a list"] = c
    c = copy.deepcopy(good)
    c["function"]["config"]["defaults"] = 3
    out["defaults is an int"] = c
    c = copy.deepcopy(good)
    c["function"]["config"]["defaults"] = {"a": 1}
    out["defaults is a dict"] = c
    for what, names in (("an int", 5), ("ints", (1, 2)), ("a list", "x")):
        raw = marshal.dumps(RECIPE.replace(co_consts=(None, "uint8", 10, names)))
        out[f"keyword names are {what}"] = _lambda_config(raw)
    return out


@pytest.mark.parametrize("what", sorted(_hostile_configs()))
def test_configs_of_the_wrong_shape_are_read_without_a_traceback(what):
    info = recognise(_hostile_configs()[what])
    assert isinstance(info, LambdaInfo) and not info.certain


@pytest.mark.parametrize(
    "what", ["function config is a list", "defaults is an int", "keyword names are an int"]
)
def test_inspect_and_convert_give_one_line_or_a_result(what, tmp_path):
    path = _keras_with_lambda(tmp_path, _hostile_configs()[what])
    for args in (
        ["inspect", str(path)],
        ["convert", str(path), "--to", "embedding", "-o", str(tmp_path / "o.keras")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert (
                result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
            )


def test_a_lambda_whose_output_is_not_its_declared_shape_is_kept_with_the_reason(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Lambda(keras.activations.relu, output_shape=(4, 7), name="lam"),
        ]
    )
    path = tmp_path / "relu.keras"
    model.save(path)
    result = runner.invoke(app, ["inspect", str(path), "--unsafe"])
    assert result.exit_code == 0, result.output
    assert "not the one-hot shape" in result.output and "Traceback" not in result.output


def test_a_huge_one_hot_depth_is_not_proven_by_running_it(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Lambda(lambda x: keras.ops.one_hot(x, 2**31 - 1), name="lam"),
        ]
    )
    path = tmp_path / "huge.keras"
    model.save(path)
    start = time.perf_counter()
    result = runner.invoke(app, ["inspect", str(path), "--unsafe"])
    assert time.perf_counter() - start < 30
    assert result.exit_code == 0, result.output
    assert "graphkit.limits.LAMBDA_PROOF_MAX_DEPTH" in result.output


def test_the_proof_runs_in_bounded_chunks(monkeypatch):
    import graphkit.rules.lambda_to_onehot as rule

    monkeypatch.setattr(rule, "LAMBDA_PROOF_CHUNK_VALUES", 1000)
    sizes = []

    def one_hot(x):
        if None not in tuple(x.shape):  # eager: called once per run
            sizes.append(int(np.prod(x.shape)))
        return keras.ops.one_hot(keras.ops.cast(x, "uint8"), 300)

    layer = keras.layers.Lambda(one_hot)
    layer(keras.Input((None,), dtype="int32"))
    sizes.clear()
    wrap, unstable = rule._prove(layer, (None, None), 300)
    assert wrap == 256 and len(unstable) == 0  # still the proof: the uint8 wrap is found
    assert sizes and max(sizes) * 300 <= 1000 and sum(sizes) == 2 * (300 + rule.BEYOND)
    monkeypatch.setattr(rule, "LAMBDA_PROOF_CHUNK_VALUES", 100)
    refusal = rule._prove(layer, (None, None), 300)
    assert "graphkit.limits.LAMBDA_PROOF_CHUNK_VALUES" in refusal.reason


# --- item 6: a Keras 3 Functional one-hot Lambda (mask=None in its saved call) ---------------


@pytest.mark.parametrize("head", [False, True])
@pytest.mark.parametrize("flag", [[], ["--onehot-lambda", "lam"]])
def test_a_functional_one_hot_lambda_is_adopted_in_safe_mode(tmp_path, head, flag):
    i = keras.Input((5,))  # float input: Keras records mask=None in the Lambda's call
    x = keras.layers.Lambda(
        lambda x: keras.ops.one_hot(keras.ops.cast(x, "int32"), 10), name="lam"
    )(i)
    if head:
        x = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(i, x)
    path = tmp_path / "f.keras"
    model.save(path)
    saved = json.loads(zipfile.ZipFile(path).read("config.json"))
    lam = next(layer for layer in saved["config"]["layers"] if layer["class_name"] == "Lambda")
    assert lam["inbound_nodes"][0]["kwargs"] == {"mask": None}  # what made it fail
    out = tmp_path / "o.keras"
    result = runner.invoke(app, ["convert", str(path), "--to", "embedding", "-o", str(out), *flag])
    assert result.exit_code == 0, result.output
    data = np.array([[0, 1, 2, 9, 3], [4, 5, 6, 7, 8]], dtype="float32")
    converted = keras.saving.load_model(out)  # safe mode
    np.testing.assert_allclose(
        converted.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-6
    )


# --- fuzzing the reader --------------------------------------------------------------------


SEEDS = [marshal.dumps(RECIPE), _shared_chain(3)]
SEEDS.append(marshal.dumps((lambda x, n=7: keras.ops.one_hot(x, n)).__code__))


@st.composite
def mutated(draw, seeds=SEEDS):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):  # 0: the seed itself (reaches the decoder)
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "ref"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        else:  # a back-reference to anything, anywhere
            data[at:at] = b"r" + _w_long(draw(st.integers(-2, 40)))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_marshal_bytes_give_code_or_unreadable(data):
    start = time.perf_counter()
    try:
        found = read_code(data)
    except UnreadableCode as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(found, CodeData)
    assert time.perf_counter() - start < 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def lambda_configs(draw):
    config = _lambda_config(draw(st.sampled_from(SEEDS) | mutated()))
    for key in draw(st.sets(st.sampled_from(["defaults", "closure", "code"]))):
        config["function"]["config"][key] = draw(JSON)
    for key in draw(
        st.sets(
            st.sampled_from(
                ["function", "arguments", "mask", "output_shape", "function_type", "name"]
            )
        )
    ):
        config[key] = draw(JSON)
    if draw(st.booleans()):
        config["arguments"] = {"num_classes": draw(st.integers(-5, 2**32))}
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lambda_configs(), st.booleans(), st.booleans(), st.booleans())
def test_fuzzed_lambda_configs_give_a_result_or_one_graphkit_error(config, ask, unsafe, legacy):
    start = time.perf_counter()
    info = recognise(config)
    assert isinstance(info, LambdaInfo)
    info.describe(), info.formula()
    model = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Lambda", "config": config}]},
    }
    name = str(config.get("name", "lambda"))
    try:
        result = adopt(model, {name: None} if ask else {}, unsafe=unsafe, legacy=legacy)
    except GraphkitError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, Adoption)
        result.hint(unsafe)
    assert time.perf_counter() - start < 1
