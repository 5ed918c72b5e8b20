"""ONNX pass: index arithmetic that gives every valid index back is dropped before Gather/OneHot.

Keras' Embedding wraps negative indices (``i < 0 ? i + vocab : i``, which tf2onnx writes as
Cast/Less/Not/Mul/Add), graphkit's OneHot sends them out of range, and fuse_onehot sends
out-of-range indices to an extra row (Less/GreaterOrEqual/And/Where). Mobile execution
providers lack those comparisons (NNAPI has no Less, Not, And or Where), so they split the
model into several partitions. For an index in ``[0, vocab)`` each of these computations
gives the index back. The pass finds the element-wise arithmetic between a tensor and a
Gather/OneHot index (through reshapes), proves it is the identity by running it on every
index of ``[0, vocab)`` (onnx's reference runtime), and lets the Gather/OneHot read the
tensor itself. Arithmetic that changes a valid index (a ``Mod`` below the vocabulary, say)
is kept, with the index it changes.

The input contract after it: indices in ``[0, vocab)``. Outside that range the model does
what a bare Gather (onnxruntime raises) or OneHot does, or what later passes make of them
(``onehot_arithmetic`` gives zero rows): undefined, for a user. The vocabulary of each input
is recorded in the model's metadata (``index_ranges``), and ``graphkit verify`` and
``graphkit run`` refuse inputs outside it.
"""

from __future__ import annotations

from collections import Counter

from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import (
    GraphIndex,
    attribute,
    metadata_int,
    metadata_ints,
    onehot_depth,
    subgraphs,
)

NAME = "drop_index_guards"
SUMMARY = "index arithmetic that gives every index in [0, vocab) back (the guards) is dropped"
CONFLICTS: dict[str, str] = {}
PHASE = "deploy"
INDEX_RANGE_KEY = "graphkit.index_range."
MAX_ROUNDS = 8  # a guard uncovered behind another is dropped in the next round

# Ops that compute each output element from the same element of their inputs (scalars broadcast).
ELEMENTWISE = frozenset(
    {
        "Cast",
        "Identity",
        "Less",
        "LessOrEqual",
        "Greater",
        "GreaterOrEqual",
        "Equal",
        "Not",
        "And",
        "Or",
        "Xor",
        "Where",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Mod",
        "Neg",
        "Abs",
        "Max",
        "Min",
        "Clip",
        "Sign",
        "Floor",
        "Ceil",
        "Round",
    }
)
# Ops that move index values without changing them: a guard behind them is dropped too.
MOVES_VALUES = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity"})


def set_index_range(model, name: str, vocab: int) -> None:
    """Record that model input ``name`` takes indices in ``[0, vocab)`` (the tightest wins)."""
    key = INDEX_RANGE_KEY + name
    for entry in model.metadata_props:
        if entry.key == key:
            recorded = metadata_int(entry.value)
            if recorded is not None and recorded <= vocab:
                return
            entry.value = str(int(vocab))
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, str(int(vocab))


def index_ranges(model) -> dict[str, int]:
    """Model input -> the vocabulary its indices must stay below (see ``set_index_range``)."""
    return metadata_ints(model, INDEX_RANGE_KEY)


def _label(node) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


def _lookups(index: GraphIndex, rows_in_use: dict[str, int]):
    """``(node, index position, vocabulary)`` of every Gather on a constant table, every OneHot."""
    for node in index.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and attribute(node, "axis", 0) == 0:
            dims = index.constant_shape(node.input[0])
            if dims and index.constant_shape(node.input[1]) is None:
                rows = rows_in_use.get(node.input[0], dims[0])
                yield node, 1, rows if 0 <= rows <= dims[0] else dims[0]
        elif node.op_type == "OneHot":
            depth = onehot_depth(index, node)
            if depth is not None and index.constant_shape(node.input[0]) is None:
                yield node, 0, depth


def _scalar_constant(index: GraphIndex, name: str) -> bool | None:
    """True for a constant of at most one element, False for a bigger one, None if not constant."""
    dims = index.constant_shape(name)
    if dims is None:
        value = index.constant(name)
        if value is None:
            return None
        return value.size <= 1
    size = 1
    for d in dims:
        size *= d
    return size <= 1


def _region(index: GraphIndex, tensor: str):
    """The element-wise nodes that compute ``tensor`` from one other tensor.

    Returns ``(nodes, source)``, ``None`` when no element-wise node but casts makes
    ``tensor``, or a reason string.
    """
    nodes: dict[int, object] = {}
    sources: set[str] = set()
    stack = [tensor]
    seen = set()
    while stack:
        t = stack.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        scalar = _scalar_constant(index, t)
        if scalar is not None:
            if not scalar:
                return f"the arithmetic before its index reads the constant {t!r}, not a scalar"
            continue
        producer = index.producer.get(t)
        if producer is None or producer.op_type not in ELEMENTWISE or list(subgraphs(producer)):
            sources.add(t)
            continue
        nodes[id(producer)] = producer
        stack.extend(producer.input)
    if all(n.op_type in ("Cast", "Identity") for n in nodes.values()):
        return None  # a conversion, not a guard (and what this pass adds for another type)
    if len(sources) != 1:
        return (
            "the arithmetic before its index reads several tensors "
            f"({', '.join(sorted(map(repr, sources)))})"
        )
    return list(nodes.values()), sources.pop()


def _evaluate(index: GraphIndex, nodes, source: str, tensor: str, source_dtype, vocab: int):
    """``tensor`` computed by ``nodes`` from ``source = arange(vocab)`` (onnx's reference runtime)."""
    import numpy as np
    from onnx.reference import ReferenceEvaluator

    values = {source: np.arange(vocab).astype(source_dtype)}
    pending = list(nodes)
    while pending:
        ready = [
            n for n in pending if all(not x or x in values or _const(index, x) for x in n.input)
        ]
        if not ready:
            raise ValueError("the arithmetic has a cycle")
        for node in ready:
            feeds = {}
            for x in node.input:
                if x:
                    feeds[x] = values[x] if x in values else index.constant(x)
            outs = ReferenceEvaluator(node).run(None, feeds)
            values.update(zip(node.output, (np.asarray(o) for o in outs)))
            pending.remove(node)
    return values[tensor]


def _const(index: GraphIndex, name: str) -> bool:
    return _scalar_constant(index, name) is not None


def _input_of(index: GraphIndex, name: str) -> str | None:
    """The model input ``name`` carries, through casts and reshapes; None if computed."""
    inputs = {i.name for i in index.graph_inputs}
    while name not in inputs:
        producer = index.producer.get(name)
        if producer is None or producer.op_type not in MOVES_VALUES | {"Cast"}:
            return None
        name = producer.input[0]
    return name


def apply(model) -> PassResult:
    """Drop every guard of ``model`` (an ``onnx.ModelProto``) that is the identity on valid
    indices, in place; record each index input's range in the metadata."""
    import numpy as np
    import onnx
    from onnx import helper

    from graphkit.onnx_passes.fuse_onehot import valid_rows

    result = PassResult(NAME)
    g = model.graph
    rows_in_use = valid_rows(model)
    skipped: dict[str, str] = {}
    ranges: dict[str, int] = {}
    computed: dict[str, int] = {}
    for _ in range(MAX_ROUNDS):
        changed = False
        index = GraphIndex(g)
        inferred = onnx.shape_inference.infer_shapes(model).graph
        types = {
            v.name: v.type.tensor_type.elem_type
            for v in (*inferred.input, *inferred.value_info, *inferred.output)
            if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
        }
        for node, pos, vocab in list(_lookups(index, rows_in_use)):
            label = _label(node)
            # back through the reshapes, to the nearest element-wise arithmetic
            chain, t = [], node.input[pos]
            found = _region(index, t)
            while found is None:
                producer = index.producer.get(t)
                if producer is None or producer.op_type not in MOVES_VALUES:
                    break
                chain.append(producer)
                t = producer.input[0]
                found = _region(index, t)
            source = node.input[pos] if found is None else None
            if isinstance(found, str):
                skipped[label] = found
                source = None
            elif found is not None:
                nodes, src = found
                if src not in types or t not in types:
                    skipped[label] = f"onnx cannot tell the type of {src!r}: kept"
                    continue
                dtype = helper.tensor_dtype_to_np_dtype(types[src])
                try:
                    out = _evaluate(index, nodes, src, t, dtype, vocab)
                except Exception as exc:  # an op the reference runtime cannot run: kept
                    skipped[label] = f"the arithmetic before its index cannot be evaluated ({exc})"
                    continue
                flat = out.reshape(-1)
                expected = np.arange(vocab)
                if flat.size != vocab or not np.array_equal(flat, expected):
                    bad = int(np.argmax(flat != expected)) if flat.size == vocab else None
                    what = (
                        f"index {bad} gives {flat[bad]}" if bad is not None else "its shape changes"
                    )
                    skipped[label] = (
                        f"the arithmetic before its index is not the identity on [0, {vocab}) "
                        f"({what}): kept"
                    )
                    continue
                skipped.pop(label, None)
                # the chain of reshapes, copied so that it reads the source (others keep theirs)
                cur = src
                if types[src] != types[t]:
                    cast = index.unique(f"{src}_as_index")
                    g.node.append(
                        helper.make_node(
                            "Cast", [src], [cast], to=types[t], name=index.unique(f"{cast}_cast")
                        )
                    )
                    cur = cast
                for mover in reversed(chain):
                    twin = helper.make_node(
                        mover.op_type,
                        [cur, *mover.input[1:]],
                        [index.unique(f"{mover.output[0]}_unguarded")],
                        name=index.unique(f"{mover.name or mover.op_type}_unguarded"),
                    )
                    twin.attribute.extend(mover.attribute)
                    g.node.append(twin)
                    cur = twin.output[0]
                node.input[pos] = cur
                ops = Counter(n.op_type for n in nodes)
                listed = ", ".join(f"{op} x{k}" if k > 1 else op for op, k in sorted(ops.items()))
                result.applied.append(
                    f"{label}: {listed} before its index dropped (the identity on [0, {vocab}))"
                )
                changed = True
                source = src
                if _input_of(index, src) is None:
                    computed[src] = min(computed.get(src, vocab), vocab)
            if source is not None:
                name = _input_of(index, source)
                if name is not None:
                    ranges[name] = min(ranges.get(name, vocab), vocab)
        if not changed:
            break
        from graphkit.onnx_passes.graph import cleanup

        cleanup(g)  # the next round reads shape inference: nodes in order, old guards gone
    result.skipped.extend(f"{label}: {why}" for label, why in skipped.items())
    # The contract holds for every index input, guarded or not: recorded for verify and run.
    for name, vocab in sorted(ranges.items()):
        set_index_range(model, name, vocab)
    if ranges:
        contract = ", ".join(f"{name} in [0, {v})" for name, v in sorted(ranges.items()))
        result.notes.append(
            f"input contract: {contract}; the guards for other values are gone, so what the "
            "model gives for them is undefined. graphkit verify and run refuse such inputs"
        )
    if result.applied:
        for name, vocab in sorted(computed.items()):
            result.notes.append(
                f"the index {name!r} is computed in the model: it must stay in [0, {vocab})"
            )
    return result
