"""GraphIndex, and the index-range walk that the ONNX backend builds on it (_onnx_index_info)."""

from __future__ import annotations

import numpy as np
import onnx.parser
from onnx import TensorProto

from graphkit.backends import TableRead
from graphkit.backends.onnx_backend import _onnx_index_info
from graphkit.onnx_passes import run_passes
from graphkit.onnx_passes.graph import GraphIndex, outer_reads
from tests.onnx_passes.helpers import HEADER, parse


def _external_table(name: str, rows: int, cols: int):
    """A table whose data lives in a file that does not exist: reading it would fail."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[rows, cols])
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "missing.bin"), ("offset", "0"), ("length", "8")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def test_constants_from_initializers_and_every_constant_node_form():
    model = parse(
        """
        g (float[2] x) => (float[2] y)
        <float[2] w = {1, 2}>
        {
            a = Constant <value = int64[2] {3, 4}> ()
            b = Constant <value_ints = [5, 6]> ()
            c = Constant <value_float = 0.5> ()
            s = Shape(x)
            y = Mul(x, w)
        }
        """
    )
    index = GraphIndex(model.graph)
    assert index.constant("w").tolist() == [1, 2]
    assert index.constant("a").tolist() == [3, 4] and index.constant("a").dtype == np.int64
    assert index.constant("b").tolist() == [5, 6] and index.constant("b").dtype == np.int64
    assert index.constant("c") == np.float32(0.5)
    assert index.constant("s") is None and index.constant("x") is None
    assert index.constant_shape("w") == (2,) and index.constant_shape("a") == (2,)
    assert index.unique("y") == "y_1" and index.unique("y") == "y_2" and index.unique("z") == "z"


def test_a_subgraph_read_makes_its_node_a_consumer():
    model = parse(
        """
        g (float[N] x) => (float[N] y)
        <int64 trip = {2}, bool cond = {1}>
        {
            t = Neg(x)
            y = Loop(trip, cond, x) <body = step (int64 i, bool c, float[N] acc)
                                            => (bool c_out, float[N] acc_out) {
                c_out = Identity(c)
                local = Abs(acc)
                acc_out = Add(local, t)
            }>
        }
        """
    )
    index = GraphIndex(model.graph)
    loop = model.graph.node[1]
    assert index.consumers["t"] == [loop] and index.only_consumer("t") is loop
    assert outer_reads(loop.attribute[0].g) == {"t"}  # local names and inputs do not count


def _ranges(model) -> dict:
    """Input -> (vocabulary, masked) as ``_onnx_index_info`` reads them (tables left out)."""
    return {name: info[:2] for name, info in _onnx_index_info(model).items()}


def test_constant_shape_never_reads_external_data():
    model = onnx.parser.parse_model(
        HEADER + "g (int64[N] idx) => (float[N, 4] y) { y = Gather(T, idx) }"
    )
    model.graph.initializer.append(_external_table("T", 1000, 4))
    index = GraphIndex(model.graph)
    assert index.constant("T") is None  # external, and no export holds its array: not read
    assert index.constant_shape("T") == (1000, 4)
    assert _ranges(model) == {"idx": (1000, False)}
    assert _onnx_index_info(model)["idx"][2] == (TableRead("T", 1000),)  # the table it reads


# --- _onnx_index_info ----------------------------------------------------------------------


def test_vocab_through_casts_and_keras_index_wrapping_with_a_mask():
    """Keras' Embedding: Cast, then i < 0 ? i + vocab : i, then Gather; mask_zero compares with 0."""
    model = parse(
        """
        g (int32[N, L] tokens) => (float[N, L, 2] y, bool[N, L] mask)
        <int64 zero = {0}, int64 vocab = {7}, int32 zero32 = {0}>
        {
            i = Cast <to = 7> (tokens)
            neg = Less(i, zero)
            wrapped = Add(i, vocab)
            row = Where(neg, wrapped, i)
            y = Gather <axis = 0> (T, row)
            is_pad = Equal(tokens, zero32)
            mask = Not(is_pad)
        }
        """,
        T=np.zeros((7, 2), np.float32),
    )
    assert _ranges(model) == {"tokens": (7, True)}


def test_onehot_depth_from_a_constant_node_and_the_smallest_of_two_lookups():
    model = parse(
        """
        g (int64[N] a, int64[N] b, float[N] x) => (float[N, 5] y, float[N, 3] z, float[N] w)
        <float[2] values = {0, 1}>
        {
            depth = Constant <value_int = 5> ()
            y = OneHot <axis = -1> (a, depth, values)
            z = Gather <axis = 0> (T, a)
            b2 = Unsqueeze(b, axes)
            b3 = Squeeze(b2, axes)
            oh = OneHot <axis = -1> (b3, depth, values)
            w = Identity(x)
        }
        """,
        T=np.zeros((3, 3), np.float32),
        axes=np.array([1], np.int64),
    )
    # b reaches its OneHot through shape changes; x reaches no lookup: no entry
    assert _ranges(model) == {"a": (3, False), "b": (5, False)}


def test_a_fused_table_counts_its_real_vocabulary_not_the_out_of_range_row():
    model = parse(
        """
        g (int64[N, L] idx) => (float[N, L, 2] y)
        <int64 depth = {9}, float[2] values = {0, 1}>
        {
            oh = OneHot <axis = -1> (idx, depth, values)
            y = MatMul(oh, W)
        }
        """,
        W=np.ones((9, 2), np.float32),
    )
    assert _ranges(model) == {"idx": (9, False)}
    run_passes(model, ["fuse_onehot"])
    [table] = [t for t in model.graph.initializer if t.name.endswith("fused_table")]
    assert list(table.dims) == [10, 2]  # the extra row
    assert _ranges(model) == {"idx": (9, False)}
