"""ONNX pass: ``OneHot`` becomes arithmetic that mobile providers have: ``Relu(1 - d*d)``.

NNAPI and CoreML have no OneHot, and CoreML's MLProgram has no Gather either. With
``d = float(i) - arange(V)`` (the index against every row number), ``Relu(1 - d*d)`` is
exactly 1 where ``d = 0`` and exactly 0 for any other integer ``d`` (``d*d >= 1``): a one-hot
row, from Cast, Unsqueeze, Sub, Mul, Sub and Relu, which NNAPI and CoreML MLProgram both run.
It is computed in float32, exact for indices below 2**24 (larger depths are left alone).
An index outside ``[0, V)`` gives a zero row, where ONNX's OneHot wraps ``-V..-1``.

With ``tables=True``, a Gather on a constant float table becomes the same arithmetic one-hot
times the table (a MatMul): the fallback for a provider whose list has neither Gather nor
GatherND (``gather_nd`` runs first for CoreML MLProgram and leaves it nothing; the
``vocab x dim`` multiply-adds per index are why it is the last choice). A one-hot row
times the table is the table's row exactly (every other term is an exact zero), so the
output is the Gather's bit for bit for every index in range.
"""

from __future__ import annotations

from graphkit.errors import GraphkitError
from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, attribute

NAME = "onehot_arithmetic"
SUMMARY = (
    "OneHot (tables=True: Gather on a table too) becomes Relu(1 - (i - arange(V))^2) [-> MatMul]"
)
CONFLICTS: dict[str, str] = {}
PHASE = "deploy"
PARAMS = {"tables": "also Gathers on a constant float table -> arithmetic one-hot -> MatMul"}
EXACT_BELOW = 1 << 24  # float32 holds every integer up to here


def check_params(tables: bool = False) -> None:
    if not isinstance(tables, bool):
        raise GraphkitError(f"the ONNX pass {NAME}: tables must be True or False, got {tables!r}")


def _label(node) -> str:
    return node.name or node.output[0]


def _onehot(graph, index: GraphIndex, indices: str, depth: int, base: str) -> tuple[list, str]:
    """Nodes computing the float32 one-hot of ``indices`` (depth ``depth``, new last axis)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from graphkit.onnx_weights import initializer

    n = index.unique
    rows, axes, one = n(f"{base}_rows"), n(f"{base}_last_axis"), n(f"{base}_one")
    graph.initializer.append(initializer(np.arange(depth, dtype=np.float32), rows))
    graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), axes))
    graph.initializer.append(numpy_helper.from_array(np.array(1, np.float32), one))
    f, u, d, sq, r, out = (
        n(f"{base}_float"),
        n(f"{base}_column"),
        n(f"{base}_distance"),
        n(f"{base}_squared"),
        n(f"{base}_one_minus"),
        n(f"{base}_onehot"),
    )
    nodes = [
        helper.make_node("Cast", [indices], [f], to=TensorProto.FLOAT, name=n(f"{base}_cast")),
        helper.make_node("Unsqueeze", [f, axes], [u], name=n(f"{base}_unsqueeze")),
        helper.make_node("Sub", [u, rows], [d], name=n(f"{base}_sub")),
        helper.make_node("Mul", [d, d], [sq], name=n(f"{base}_mul")),
        helper.make_node("Sub", [one, sq], [r], name=n(f"{base}_sub1")),
        helper.make_node("Relu", [r], [out], name=n(f"{base}_relu")),
    ]
    return nodes, out


def _cast_to(index: GraphIndex, src: str, dst: str, dtype, base: str):
    from onnx import helper

    return helper.make_node(
        "Cast",
        [src],
        [dst],
        to=helper.np_dtype_to_tensor_dtype(dtype),
        name=index.unique(f"{base}_cast_out"),
    )


def apply(model, tables: bool = False) -> PassResult:
    """Rewrite every OneHot of ``model`` (and, with ``tables``, every Gather on a constant float
    table) in place. The old nodes are detached: ``run_passes``' cleanup drops them."""
    import numpy as np

    result = PassResult(NAME)
    g = model.graph
    for onehot in [n for n in g.node if n.op_type == "OneHot"]:
        index = GraphIndex(g)
        label = _label(onehot)
        depth, values = index.constant(onehot.input[1]), index.constant(onehot.input[2])
        if depth is None or values is None:
            result.skipped.append(f"{label}: depth or values is not a constant")
            continue
        depth = int(np.asarray(depth).reshape(-1)[0])
        if not np.array_equal(np.asarray(values).reshape(-1), [0, 1]):
            result.skipped.append(
                f"{label}: values are {np.asarray(values).reshape(-1).tolist()}, not [0, 1]"
            )
            continue
        if attribute(onehot, "axis", -1) != -1:
            result.skipped.append(f"{label}: axis is not the last")
            continue
        if depth > EXACT_BELOW:
            result.skipped.append(
                f"{label}: depth {depth} is past 2**24, where float32 no longer tells indices apart"
            )
            continue
        base = label.replace("/", "_")
        nodes, out = _onehot(g, index, onehot.input[0], depth, base)
        dtype = np.asarray(values).dtype
        if dtype != np.float32:
            nodes.append(_cast_to(index, out, onehot.output[0], dtype, base))
        else:
            nodes[-1].output[0] = onehot.output[0]
        onehot.output[0] = index.unique(f"{base}_unused")
        g.node.extend(nodes)
        result.applied.append(
            f"{label}: OneHot({depth}) -> Relu(1 - (i - arange({depth}))^2) "
            "(Cast, Unsqueeze, Sub, Mul, Sub, Relu)"
        )
    if not tables:
        return result
    for gather in [n for n in g.node if n.op_type == "Gather"]:
        index = GraphIndex(g)
        dims = index.constant_shape(gather.input[0])
        if dims is None or index.constant_shape(gather.input[1]) is not None:
            continue  # a shape or index computation, not a lookup
        label = _label(gather)
        if len(dims) != 2 or attribute(gather, "axis", 0) != 0:
            result.skipped.append(f"{label}: not a row lookup in a 2-D table")
            continue
        table = index.constant(gather.input[0])
        if table.dtype.kind != "f":
            result.skipped.append(f"{label}: table dtype {table.dtype} is not floating point")
            continue
        if not np.all(np.isfinite(table)):
            result.skipped.append(f"{label}: the table holds inf or NaN (0 * inf is NaN)")
            continue
        rows = dims[0]
        if rows > EXACT_BELOW:
            result.skipped.append(f"{label}: {rows} rows is past 2**24 (float32 indices)")
            continue
        base = label.replace("/", "_")
        nodes, out = _onehot(g, index, gather.input[1], rows, base)
        if table.dtype != np.float32:
            cast = index.unique(f"{base}_onehot_typed")
            nodes.append(_cast_to(index, out, cast, table.dtype, base))
            out = cast
        from onnx import helper

        nodes.append(
            helper.make_node(
                "MatMul",
                [out, gather.input[0]],
                [gather.output[0]],
                name=index.unique(f"{base}_matmul"),
            )
        )
        gather.output[0] = index.unique(f"{base}_unused")
        g.node.extend(nodes)
        result.applied.append(
            f"{label}: Gather on a {rows}x{dims[1]} table -> arithmetic one-hot ({rows}) -> MatMul"
        )
    return result
