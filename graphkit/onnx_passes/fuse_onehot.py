"""ONNX pass: ``OneHot -> [Cast] -> [Reshape] -> MatMul(W) [-> Add(b)]`` becomes one ``Gather``.

A one-hot row times ``W`` picks a row of ``W`` exactly, so a Gather on the folded
table ``W + b`` computes the same numbers at O(1) per token instead of O(vocab).
Index semantics are kept exactly: ONNX OneHot wraps ``-depth <= i < 0`` like Gather
does, and gives an all-zero row for anything else; the fused table has one extra row
(``b``, or zeros) and such indices are redirected to it, where a bare Gather would fail.
"""

from __future__ import annotations

from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, attribute, metadata_ints, onehot_depth

NAME = "fuse_onehot"
SUMMARY = "OneHot -> [Cast] -> [Reshape] -> MatMul(W) [-> Add(b)] becomes one Gather, exactly"
CONFLICTS = {"lower_gather": "they undo each other"}
VALID_ROWS_KEY = "graphkit.valid_rows."


def set_valid_rows(model, table: str, rows: int) -> None:
    """Record in the model's metadata that only the first ``rows`` rows of ``table`` are indices."""
    entry = model.metadata_props.add()
    entry.key, entry.value = VALID_ROWS_KEY + table, str(int(rows))


def valid_rows(model) -> dict[str, int]:
    """Table name -> number of rows that valid indices address (see ``set_valid_rows``)."""
    return metadata_ints(model, VALID_ROWS_KEY)


def _match(index: GraphIndex, onehot):
    """Return (cast, reshape, matmul, add, table, bias, shape readers) or a reason string."""
    import numpy as np

    depth = onehot_depth(index, onehot)
    values = index.constant(onehot.input[2]) if len(onehot.input) > 2 else None
    if depth is None or values is None:
        return "depth is not a positive integer constant, or values is not a constant"
    if not np.array_equal(np.asarray(values).reshape(-1), [0, 1]):
        return f"values are {np.asarray(values).reshape(-1).tolist()}, not [0, 1]"
    axis = attribute(onehot, "axis", -1)
    if axis != -1:
        return f"axis={axis}: only the last axis is fused"
    cur = onehot.output[0]
    cast = reshape = None
    shapes: list = []

    def next_node(name):
        """The one non-Shape consumer of ``name``; Shape readers are collected (the shape is known)."""
        users = index.consumers.get(name, [])
        readers = [u for u in users if u.op_type == "Shape"]
        if any(
            attribute(u, "start") is not None or attribute(u, "end") is not None for u in readers
        ):
            return "a Shape node with start/end reads the one-hot"
        main = [u for u in users if u.op_type != "Shape"]
        if len(main) != 1 or name in index.graph_outputs:
            return "its output does not feed one chain to a MatMul"
        shapes.extend(readers)
        return main[0]

    node = next_node(cur)
    if isinstance(node, str):
        return node
    if node.op_type == "Cast":
        cast, cur = node, node.output[0]
        node = next_node(cur)
        if isinstance(node, str):
            return node
    if node.op_type == "Reshape":
        target = index.constant(node.input[1])
        if target is not None and (len(target) == 0 or int(target[-1]) not in (depth, -1)):
            return "the Reshape changes the one-hot axis"
        reshape, cur = node, node.output[0]
        node = index.only_consumer(cur)
    if node is None or node.op_type != "MatMul" or node.input[0] != cur:
        return "its output does not feed one MatMul as the left operand"
    matmul = node
    weight = index.constant(matmul.input[1])
    if weight is None:
        wnode = index.producer.get(matmul.input[1])
        if wnode is not None and wnode.op_type == "Cast":
            src = index.constant(wnode.input[0])
            if src is not None:
                from onnx import helper

                weight = src.astype(helper.tensor_dtype_to_np_dtype(attribute(wnode, "to")))
    if weight is None or weight.ndim != 2 or weight.shape[0] != depth:
        return "the MatMul weight is not a constant (depth x units) matrix"
    if not np.all(np.isfinite(weight)):
        return "the weight holds inf or NaN (0 * inf is NaN in the MatMul)"
    add, bias = None, None
    node = index.only_consumer(matmul.output[0])
    if node is not None and node.op_type == "Add":
        other = node.input[1] if node.input[0] == matmul.output[0] else node.input[0]
        b = index.constant(other)
        if (
            b is not None
            and b.shape in ((weight.shape[1],), (1, weight.shape[1]))
            and b.dtype == weight.dtype
        ):
            add, bias = node, b.reshape(-1)
    return cast, reshape, matmul, add, weight, bias, shapes


def _unshare(graph) -> int:
    """Give every MatMul fed (through Cast/Reshape) by a one-hot that other nodes read too
    its own copy of that chain. Equal one-hots (two tables looked up with the same indices)
    are merged by tf2onnx; fusing needs one chain per MatMul. The copies are appended: the
    runner's cleanup sorts the graph."""
    import copy

    index = GraphIndex(graph)
    count = 0
    for matmul in [n for n in graph.node if n.op_type == "MatMul"]:
        chain, node = [], index.producer.get(matmul.input[0])
        while node is not None and node.op_type in ("Cast", "Reshape"):
            chain.append(node)
            node = index.producer.get(node.input[0])
        if node is None or node.op_type != "OneHot":
            continue
        chain.append(node)
        readers = [
            [u for u in index.consumers.get(c.output[0], []) if u.op_type != "Shape"] for c in chain
        ]
        if all(len(r) <= 1 for r in readers):
            continue
        # only where every reader is another such chain: else the one-hot stays anyway
        if any(u.op_type not in ("Cast", "Reshape", "MatMul") for r in readers for u in r) or any(
            c.output[0] in index.graph_outputs for c in chain
        ):
            continue
        previous = None
        for original in reversed(chain):  # from the OneHot down to the MatMul's operand
            twin = copy.deepcopy(original)
            twin.name = index.unique(f"{original.name or original.op_type}_copy")
            twin.output[0] = index.unique(f"{original.output[0]}_copy")
            if previous is not None:
                twin.input[0] = previous.output[0]
            graph.node.append(twin)
            previous = twin
        matmul.input[0] = previous.output[0]
        count += 1
        index = GraphIndex(graph)
    return count


def _bias_name(add, matmul) -> str:
    return add.input[1] if add.input[0] == matmul.output[0] else add.input[0]


def apply(model) -> PassResult:
    """Fuse every matching chain of ``model`` (an ``onnx.ModelProto``) in place.

    The old chains are detached, not removed: ``run_passes`` drops them in its cleanup.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    result = PassResult(NAME)
    graph = model.graph
    unshared = _unshare(graph)
    if unshared:
        result.applied.append(
            f"{unshared} MatMul(s) shared a one-hot with others (tf2onnx merges equal ones): "
            "each now reads its own copy, so each fuses into its own Gather"
        )
    fused_tables: dict[tuple, tuple[str, tuple]] = {}
    for onehot in [n for n in graph.node if n.op_type == "OneHot"]:
        index = GraphIndex(graph)
        found = _match(index, onehot)
        if isinstance(found, str):
            result.skipped.append(f"{onehot.name or onehot.output[0]}: {found}")
            continue
        _cast, reshape, matmul, add, weight, bias, shape_readers = found
        depth = weight.shape[0]
        base = (onehot.name or "onehot").replace("/", "_")
        n = index.unique
        # A table read by several one-hots (a shared Embedding, a tied one) is fused once.
        key = (matmul.input[1], _bias_name(add, matmul) if bias is not None else None)
        if key in fused_tables:
            table_name, table_shape = fused_tables[key]
        else:
            extra = bias if bias is not None else np.zeros(weight.shape[1], weight.dtype)
            # one copy of the weight, however large: rows 0..depth-1 (+ bias), then the extra row
            table = np.empty((depth + 1, weight.shape[1]), weight.dtype)
            table[:depth] = weight
            if bias is not None:
                table[:depth] += bias
            table[depth] = extra
            table_name = n(f"{base}_fused_table")
            from graphkit.onnx_weights import initializer

            graph.initializer.append(initializer(table, table_name))  # external if the model's are
            # The last row only serves out-of-range indices: record the real vocabulary.
            set_valid_rows(model, table_name, depth)
            table_shape = table.shape
            fused_tables[key] = (table_name, table_shape)
            del table
        new = []
        idx = n(f"{base}_idx64")
        new.append(
            helper.make_node(
                "Cast", [onehot.input[0]], [idx], to=TensorProto.INT64, name=n(f"{base}_cast")
            )
        )
        consts = {
            "zero": np.array(0, np.int64),
            "depth": np.array(depth, np.int64),
            "neg": np.array(-depth, np.int64),
        }
        cname = {}
        for key, value in consts.items():
            cname[key] = n(f"{base}_{key}")
            graph.initializer.append(numpy_helper.from_array(value, cname[key]))
        # wrapped = i < 0 ? i + depth : i ; valid = -depth <= i < depth ; row = valid ? wrapped : depth
        is_neg, plus, wrapped = n(f"{base}_isneg"), n(f"{base}_plus"), n(f"{base}_wrapped")
        lo, hi, valid, row = n(f"{base}_lo"), n(f"{base}_hi"), n(f"{base}_valid"), n(f"{base}_row")
        new += [
            helper.make_node("Less", [idx, cname["zero"]], [is_neg], name=n(f"{base}_less0")),
            helper.make_node("Add", [idx, cname["depth"]], [plus], name=n(f"{base}_addd")),
            helper.make_node("Where", [is_neg, plus, idx], [wrapped], name=n(f"{base}_wrap")),
            helper.make_node("GreaterOrEqual", [idx, cname["neg"]], [lo], name=n(f"{base}_ge")),
            helper.make_node("Less", [idx, cname["depth"]], [hi], name=n(f"{base}_lt")),
            helper.make_node("And", [lo, hi], [valid], name=n(f"{base}_and")),
            helper.make_node(
                "Where", [valid, wrapped, cname["depth"]], [row], name=n(f"{base}_row")
            ),
        ]
        gather_in = row
        if reshape is not None:
            # Reshape the indices like the one-hot was reshaped, minus its last axis.
            shape_wo_last = n(f"{base}_shape_wo_last")
            starts, ends = n(f"{base}_s0"), n(f"{base}_s1")
            graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), starts))
            graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), ends))
            new.append(
                helper.make_node(
                    "Slice",
                    [reshape.input[1], starts, ends],
                    [shape_wo_last],
                    name=n(f"{base}_slice"),
                )
            )
            reshaped = n(f"{base}_row_reshaped")
            new.append(
                helper.make_node(
                    "Reshape", [row, shape_wo_last], [reshaped], name=n(f"{base}_reshape")
                )
            )
            gather_in = reshaped
        if shape_readers:
            # Shape(one_hot) == Concat(Shape(indices), [depth]): no need to keep the one-hot.
            idx_shape, depth_1d, oh_shape = (
                n(f"{base}_idx_shape"),
                n(f"{base}_depth1d"),
                n(f"{base}_oh_shape"),
            )
            graph.initializer.append(numpy_helper.from_array(np.array([depth], np.int64), depth_1d))
            new.append(
                helper.make_node("Shape", [onehot.input[0]], [idx_shape], name=n(f"{base}_shape"))
            )
            new.append(
                helper.make_node(
                    "Concat", [idx_shape, depth_1d], [oh_shape], axis=0, name=n(f"{base}_concat")
                )
            )
            for reader in shape_readers:
                new.append(
                    helper.make_node(
                        "Identity", [oh_shape], [reader.output[0]], name=n(f"{base}_shape_id")
                    )
                )
                reader.output[0] = n(f"{base}_unused_shape")
        final = add if add is not None else matmul
        new.append(
            helper.make_node(
                "Gather",
                [table_name, gather_in],
                [final.output[0]],
                axis=0,
                name=n(f"{base}_gather"),
            )
        )
        # Detach the old chain's final output; the runner's dead-code removal drops the rest.
        final.output[0] = n(f"{base}_unused")
        graph.node.extend(new)
        result.applied.append(
            f"{onehot.name or onehot.output[0]}: OneHot({depth}) -> MatMul{' -> Add' if add is not None else ''}"
            f" fused into Gather on a {table_shape[0]}x{table_shape[1]} table"
        )
    return result
