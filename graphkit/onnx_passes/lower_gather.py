"""ONNX pass: ``Gather(constant table, indices)`` becomes ``OneHot -> MatMul(table)``.

For targets that lack Gather, or quantize MatMul better. Exact for valid indices,
and for ``-vocab <= i < 0`` (both wrap). Where Gather would fail (``i >= vocab`` or
``i < -vocab``), the lowered graph gives an all-zero row instead: that is the one
behaviour change, and the pass says so.
"""

from __future__ import annotations

from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, attribute

NAME = "lower_gather"
SUMMARY = "Gather on a constant 2-D table becomes OneHot -> MatMul (zero rows where Gather raised)"
CONFLICTS = {"fuse_onehot": "they undo each other"}
OUT_OF_RANGE_NOTE = "indices outside [-vocab, vocab) now give a zero row where Gather raised"


def apply(model) -> PassResult:
    """Lower every Gather on a constant floating-point table of ``model`` in place.

    The old Gathers are detached, not removed: ``run_passes`` drops them in its cleanup.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    result = PassResult(NAME)
    graph = model.graph
    for gather in [n for n in graph.node if n.op_type == "Gather"]:
        index = GraphIndex(graph)
        name = gather.name or gather.output[0]
        table = index.constant(gather.input[0])
        if table is None:
            continue  # a shape or index computation, not a table lookup
        if table.ndim != 2 or attribute(gather, "axis", 0) != 0:
            result.skipped.append(f"{name}: not a row lookup in a 2-D table")
            continue
        if table.dtype.kind != "f":
            result.skipped.append(f"{name}: table dtype {table.dtype} is not floating point")
            continue
        if not np.all(np.isfinite(table)):
            result.skipped.append(
                f"{name}: the table holds inf or NaN (0 * inf is NaN in a MatMul)"
            )
            continue
        vocab = table.shape[0]
        base = (gather.name or "gather").replace("/", "_")
        n = index.unique
        idx, onehot, depth, values = (
            n(f"{base}_idx64"),
            n(f"{base}_onehot"),
            n(f"{base}_depth"),
            n(f"{base}_values"),
        )
        graph.initializer.append(numpy_helper.from_array(np.array([vocab], np.int64), depth))
        graph.initializer.append(numpy_helper.from_array(np.array([0, 1], np.float32), values))
        nodes = [
            helper.make_node(
                "Cast", [gather.input[1]], [idx], to=TensorProto.INT64, name=n(f"{base}_cast")
            ),
            helper.make_node(
                "OneHot", [idx, depth, values], [onehot], axis=-1, name=n(f"{base}_onehot")
            ),
        ]
        left = onehot
        if table.dtype != np.float32:
            left = n(f"{base}_onehot_cast")
            nodes.append(
                helper.make_node(
                    "Cast",
                    [onehot],
                    [left],
                    to=helper.np_dtype_to_tensor_dtype(table.dtype),
                    name=n(f"{base}_cast2"),
                )
            )
        nodes.append(
            helper.make_node(
                "MatMul", [left, gather.input[0]], [gather.output[0]], name=n(f"{base}_matmul")
            )
        )
        gather.output[0] = n(f"{base}_unused")
        graph.node.extend(nodes)
        result.applied.append(
            f"{name}: Gather on a {vocab}x{table.shape[1]} table lowered to OneHot -> MatMul"
        )
    if result.applied:
        result.notes.append(OUT_OF_RANGE_NOTE)
    return result
