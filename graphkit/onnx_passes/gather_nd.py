"""ONNX pass: a table lookup ``Gather(table, i)`` becomes ``GatherND(table, Unsqueeze(i, -1))``.

For providers whose op list has GatherND but no Gather: onnxruntime's mobile usability checker
for CoreML MLProgram (its bundled list takes GatherND with ``batch_dims`` 0, and no Gather).
``Gather(t, i)`` on axis 0 and ``GatherND(t, i[..., None])`` read the same rows, so the output
is the Gather's bit for bit; a lookup stays a lookup (it reads ``dim`` numbers per index, no
multiply-add), where one-hot x table (``onehot_arithmetic`` with ``tables=True``) costs
``vocab x dim`` multiply-adds and a ``vocab``-wide one-hot per index.

ONNX's GatherND takes int64 indices only: an index of another type is cast to int64 first
(exact for every int32 index). Negative indices wrap in both ops; an index outside
``[-vocab, vocab)`` makes both raise in onnxruntime. A Gather on a constant index (shape
arithmetic) or on a computed table is left alone; so is one on another axis.
"""

from __future__ import annotations

from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, attribute

NAME = "gather_nd"
SUMMARY = "Gather on a constant table (axis 0) becomes GatherND(table, Unsqueeze(i, -1)), exactly"
# lower_gather (a rewrite pass, so it runs first) leaves no Gather: a one-hot asked for stays
CONFLICTS: dict[str, str] = {}
PHASE = "deploy"  # after int32_indices (it sees Gathers) and drop_index_guards
MIN_OPSET = 11  # GatherND
_INT64 = 7  # TensorProto.INT64 (onnx is imported only when the pass runs)


def _label(node) -> str:
    return node.name or node.output[0]


def _opset(model) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _index_types(model) -> dict[str, int]:
    """Element type of every tensor onnx's shape inference can type (empty where it fails)."""
    import onnx

    try:
        g = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # an untyped graph: every index then gets its Cast
        return {}
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def apply(model) -> PassResult:
    """Rewrite every Gather on a constant table (axis 0) of ``model`` in place.

    The old Gathers are detached, not removed: ``run_passes``' cleanup drops them.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    result = PassResult(NAME)
    g = model.graph
    gathers = []
    index = GraphIndex(g)
    for node in g.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        dims = index.constant_shape(node.input[0])
        if dims is None or index.constant_shape(node.input[1]) is not None:
            continue  # a computed table, or shape arithmetic on a constant index: not a lookup
        axis = attribute(node, "axis", 0)
        if len(dims) == 0 or axis not in (0, -len(dims)):
            result.skipped.append(f"{_label(node)}: axis {axis} is not a row lookup")
            continue
        gathers.append((node, dims))
    if not gathers:
        return result
    opset = _opset(model)
    if opset is not None and opset < MIN_OPSET:
        for node, _ in gathers:
            result.skipped.append(f"{_label(node)}: opset {opset} has no GatherND (11 and up)")
        return result
    types = _index_types(model)
    for node, dims in gathers:
        index = GraphIndex(g)
        label = _label(node)
        base = label.replace("/", "_")
        n = index.unique
        indices, nodes = node.input[1], []
        if types.get(indices) != _INT64:
            wide = n(f"{base}_idx64")
            nodes.append(
                helper.make_node(
                    "Cast", [indices], [wide], to=TensorProto.INT64, name=n(f"{base}_cast")
                )
            )
            indices = wide
        column = n(f"{base}_column")
        if opset is not None and opset < 13:  # Unsqueeze's axes is an attribute there
            nodes.append(
                helper.make_node(
                    "Unsqueeze", [indices], [column], axes=[-1], name=n(f"{base}_unsqueeze")
                )
            )
        else:
            axes = n(f"{base}_last_axis")
            g.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), axes))
            nodes.append(
                helper.make_node(
                    "Unsqueeze", [indices, axes], [column], name=n(f"{base}_unsqueeze")
                )
            )
        # batch_dims (0, the default) exists from opset 12: written where it can be, for the
        # checker's "batch_dims must be 0"
        attrs = {} if opset is not None and opset < 12 else {"batch_dims": 0}
        nodes.append(
            helper.make_node(
                "GatherND",
                [node.input[0], column],
                [node.output[0]],
                name=node.name or n(f"{base}_gather_nd"),  # the lookup keeps its name
                **attrs,
            )
        )
        node.output[0] = n(f"{base}_unused")
        if node.name:
            node.name = n(f"{base}_replaced")
        g.node.extend(nodes)
        shape = "x".join(str(d) for d in dims)
        result.applied.append(f"{label}: Gather on a {shape} table -> GatherND (0 multiply-adds)")
    return result
