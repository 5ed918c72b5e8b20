"""graphkit.export.litert_inspect: the ops of a .tflite and the GPU-delegate verdict (TensorFlow's
Analyzer beside graphkit's op check from TF's gpu_compatibility.cc)."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.errors import GraphkitError
from graphkit.export import litert_inspect
from graphkit.export.litert_inspect import (
    GpuDelegateVerdict,
    OpFact,
    TensorFact,
    check_op,
    gpu_delegate,
    parse_analyzer,
    read_ops,
)

TABLE = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")


def tflite(fn, shape=(1, 16), dtype="int32") -> bytes:
    """``fn`` over one input ``x`` converted with TFLiteConverter.from_concrete_functions."""
    from graphkit._tf import _stderr_fd_silenced, quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(shape, dtype, name="x")], autograph=False)
    def f(x):
        return {"y": fn(tf, x)}

    holder = tf.Module()
    holder.f = f
    with _stderr_fd_silenced():
        return tf.lite.TFLiteConverter.from_concrete_functions(
            [f.get_concrete_function()], holder
        ).convert()


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    return {
        # an Embedding's lookup on one sequence: 1-D int32 indices into a float table
        "gather": tflite(lambda tf, x: tf.gather(tf.constant(TABLE), tf.reshape(x, [16]))),
        "onehot_matmul": tflite(
            lambda tf, x: tf.matmul(tf.reshape(tf.one_hot(x, 50), [16, 50]), tf.constant(TABLE))
        ),
        "onehot": tflite(lambda tf, x: tf.one_hot(x, 50) * 2.0),
        "topk": tflite(lambda tf, x: tf.math.top_k(x, 3).values, dtype="float32"),
        "unique": tflite(
            lambda tf, x: tf.cast(tf.unique(tf.reshape(x, [-1])).idx, tf.float32), dtype="float32"
        ),
        "gather2d": tflite(lambda tf, x: tf.gather(tf.constant(TABLE), x)),
    }


def test_read_ops_lists_the_main_subgraph_in_order(models):
    assert read_ops(models["topk"]) == ["TOPK_V2"]
    assert read_ops(models["unique"]) == ["RESHAPE", "UNIQUE", "CAST"]
    assert read_ops(models["onehot"]) == ["ONE_HOT", "MUL"]
    assert read_ops(models["gather"])[-1] == "GATHER"


@pytest.mark.parametrize("name", ["gather", "onehot_matmul", "onehot"])
def test_lookup_and_onehot_models_pass(models, name):
    verdict = gpu_delegate(models[name])
    assert verdict.op_check_passes, verdict.format()
    assert verdict.analyzer == "compatible"
    assert verdict.compatible and verdict.agree
    assert "all" in verdict.format() and "disagree" not in verdict.format()


@pytest.mark.parametrize("name, op", [("topk", "TOPK_V2"), ("unique", "UNIQUE")])
def test_ops_gpu_compatibility_cc_refuses_are_named(models, name, op):
    verdict = gpu_delegate(models[name])
    assert [(i.op, i.reason, i.count) for i in verdict.issues] == [(op, "Not supported op", 1)]
    assert not verdict.compatible
    line = verdict.format()
    assert f"{op} (Not supported op)" in line and "\n" not in line
    # TF 2.21's Analyzer calls these compatible: the line must say the two disagree
    if verdict.analyzer == "compatible":
        assert not verdict.agree and "disagree" in line
    data = verdict.to_dict()
    assert data["op_check"]["incompatible_ops"][0]["op"] == op
    assert data["op_check"]["supported"] is False


def test_gather_with_2d_indices_is_refused_with_the_sources_reason(models):
    verdict = gpu_delegate(models["gather2d"])
    assert [(i.op, i.reason) for i in verdict.issues] == [("GATHER", "Only support 1D indices")]


def test_the_analyzer_text_never_reaches_the_terminal(models, capfd):
    """capfd sees both Python's sys.stdout and file descriptors 1 and 2."""
    verdict = gpu_delegate(models["topk"])
    assert verdict.analyzer != "unavailable", verdict.analyzer_note  # the Analyzer did run
    out, err = capfd.readouterr()
    assert out == ""
    assert "ModelAnalyzer" not in err and "Op#" not in err


@pytest.mark.parametrize(
    "data", [b"", b"not a model at all", b"\x00" * 64, b"1234TFL3" + b"\xff" * 8]
)
def test_bad_bytes_are_a_one_line_graphkit_error(data):
    with pytest.raises(GraphkitError) as info:
        read_ops(data)
    assert "\n" not in str(info.value) and "tflite" in str(info.value)
    with pytest.raises(GraphkitError):
        gpu_delegate(data)


def test_not_bytes_is_a_graphkit_error():
    with pytest.raises(GraphkitError, match="bytes"):
        read_ops("model.tflite")  # type: ignore[arg-type]


# --- the rules one by one, on hand-made operator facts ----------------------------------------


def t(type_: str, *dims: int, const: bool = False) -> TensorFact:
    return TensorFact(type_, dims, const)


def test_one_hot_rule_wants_int32_indices_and_singleton_leading_dims():
    on, off, depth = t("FLOAT32", const=True), t("FLOAT32", const=True), t("INT32", const=True)
    good = OpFact(0, "ONE_HOT", (t("INT32", 1, 16), depth, on, off), (t("FLOAT32", 1, 16, 50),))
    assert check_op(good) is None
    int64 = OpFact(0, "ONE_HOT", (t("INT64", 1, 16), depth, on, off), (t("FLOAT32", 1, 16, 50),))
    assert "int32" in check_op(int64)
    batch3 = OpFact(0, "ONE_HOT", (t("INT32", 3, 16), depth, on, off), (t("FLOAT32", 3, 16, 50),))
    assert "non-singleton dim at 0" in check_op(batch3)


def test_select_rule_wants_float_branches():
    cond = t("BOOL", 1, 16)
    floats = OpFact(
        0, "SELECT_V2", (cond, t("FLOAT32", 1, 16), t("FLOAT32", 1, 16)), (t("FLOAT32", 1, 16),)
    )
    ints = OpFact(
        0, "SELECT_V2", (cond, t("INT32", 1, 16), t("INT32", 1, 16)), (t("INT32", 1, 16),)
    )
    assert check_op(floats) is None
    assert "must be float" in check_op(ints)


def test_cast_rule_and_unknown_and_custom_ops():
    cast = OpFact(0, "CAST", (t("INT32", 4),), (t("INT64", 4),))
    assert "Not supported Cast case" in check_op(cast)
    assert check_op(OpFact(0, "CAST", (t("INT32", 4),), (t("FLOAT32", 4),))) is None
    assert check_op(OpFact(0, "SEGMENT_SUM", (), ())) == "Not supported op"
    assert check_op(OpFact(0, "FlexTopKV2", (), ())) == "Not supported custom op FlexTopKV2"


def test_every_rule_names_an_op_of_the_schema():
    names = litert_inspect._builtin_names()
    assert set(litert_inspect.GPU_DELEGATE_OPS) <= names
    assert litert_inspect.CHECKED_BY_NAME_ONLY <= set(litert_inspect.GPU_DELEGATE_OPS)


ANALYZER_REFUSES = """=== TFLite ModelAnalyzer ===

Subgraph#0 main(T#0) -> [T#2]
  Op#0 TOPK_V2(T#0, T#1[3]) -> [T#2, T#3]
GPU COMPATIBILITY WARNING: Not supported op TOPK_V2

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 0 with TFLite runtime version 2.21.0
"""


def test_parse_analyzer_reads_the_ops_it_names():
    verdict, issues, note = parse_analyzer(ANALYZER_REFUSES)
    assert verdict == "incompatible"
    assert [(i.op, i.reason, i.nodes) for i in issues] == [
        ("TOPK_V2", "Not supported op TOPK_V2", (0,))
    ]
    assert "nodes 0" in note
    assert parse_analyzer("nothing")[0] == "unavailable"
    line = GpuDelegateVerdict(verdict, issues, note, ("TOPK_V2",), (), ()).format()
    assert "Analyzer says incompatible: TOPK_V2 (Not supported op TOPK_V2)" in line
    assert "disagree" in line
