"""ONNX pass: every Gather/OneHot index in int32, and the int64 model inputs that only feed indices.

NNAPI, QNN, WebNN and TensorRT handle int64 indices badly or not at all. What changes:

- the index operand of every Gather and OneHot (and OneHot's depth: onnxruntime has no
  int32-index OneHot with an int64 depth) becomes int32, and so does the index arithmetic
  that computes it, walking back from the Gather/OneHot: Keras' negative-index wrap,
  fuse_onehot's out-of-range redirect, reshapes. A ``Cast`` to int64 there casts to int32
  instead, an int64 constant gets an int32 copy, and a value made by any other op (``Shape``,
  ``ArgMax``...) is cast to int32 where it enters;
- an int64 (or uint32/uint64) model input becomes int32, but only when every use of it is an
  index (see ``non_index_use``); otherwise the pass refuses, saying which node uses it as data;
- a retyped tensor that a node also reads as int64 data is cast back there (exact: its values
  are int32 values).

The input contract, and why it is safe: the int32 model reads every index its tables can hold
exactly as before (tables and depths have fewer than 2**31 rows). What it cannot be fed is a
value past the int32 range; for the model such a value was an out-of-range index (Gather
raised, OneHot gave a zero row), a value it compared with a constant (masks, the wrap), or
one it cast to 32 bits or fewer itself. ``graphkit verify``/``run`` refuse such values.
"""

from __future__ import annotations

from graphkit.errors import GraphkitError
from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, attribute, subgraphs

NAME = "int32_indices"
SUMMARY = "Gather/OneHot indices, and int64 inputs read only as indices, become int32"
CONFLICTS: dict[str, str] = {}
PHASE = "deploy"
DTYPES = ("int32",)  # what --index-dtype accepts; without it, the model's own types stay

# TensorProto element types (onnx is imported only when the pass runs)
_INT32, _INT64, _UINT32, _UINT64 = 6, 7, 12, 13
_WIDE = {_INT64: "int64", _UINT32: "uint32", _UINT64: "uint64"}  # can hold values past int32
_NARROWING_CASTS = {6, 5, 3, 2, 4, 9}  # int32, int16, int8, uint8, uint16, bool
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# op -> the input positions whose type is the output's (None: all): an int32 output needs
# int32 there, and an index flows through them unchanged.
_SAME_TYPE: dict[str, tuple[int, ...] | None] = {
    "Identity": (0,),
    "Reshape": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Flatten": (0,),
    "Transpose": (0,),
    "Expand": (0,),
    "Slice": (0,),
    "Tile": (0,),
    "Concat": None,
    "Where": (1, 2),
    "Add": None,
    "Sub": None,
    "Mul": None,
    "Max": None,
    "Min": None,
    "Clip": None,
    "Neg": (0,),
    "Abs": (0,),
}
_SATURATING = {"Clip", "Max", "Min"}  # an int64 bound past int32 is the int32 bound for them
_COMPARE = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}
_ANY_TYPE = {"Shape", "Size", "Cast"}  # read any element type: an int32 input changes nothing


def check_index_dtype(value: str | None) -> None:
    """``--index-dtype``: int32, or None for the model's own types. Cheap (before TensorFlow)."""
    if value is not None and value not in DTYPES:
        raise GraphkitError(
            f"--index-dtype {value}: expected {' or '.join(DTYPES)} "
            "(without the option, the model keeps its own index types)"
        )


def _positions(node) -> list[int]:
    same = _SAME_TYPE[node.op_type]
    return [p for p in (range(len(node.input)) if same is None else same) if p < len(node.input)]


def _label(node) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


def _int32_constant(value) -> bool:
    import numpy as np

    value = np.asarray(value)
    if value.dtype.kind not in "iufb":
        return False
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        return False
    return bool(value.size == 0 or (value.min() >= _INT32_MIN and value.max() <= _INT32_MAX))


def non_index_use(index: GraphIndex, name: str) -> str | None:
    """Why the values of tensor ``name`` may matter past int32, or None when every use is an index.

    Uses that are fine: the index of a Gather or OneHot; a Shape or Size; a comparison with a
    constant within int32 (masks, the negative-index wrap); a Cast to 32 bits or fewer (the
    model drops the high bits itself); and, followed further, what passes an index on
    unchanged or with index arithmetic (reshapes, Cast to a wider type, Where, Add, Mul...).
    """
    frontier, seen = [name], set()
    while frontier:
        t = frontier.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in index.graph_outputs:
            return f"is returned as the model output {t!r}"
        for node in index.consumers.get(t, []):
            where = [p for p, x in enumerate(node.input) if x == t]
            op = node.op_type
            if not where:
                return f"is read inside the body of {_label(node)}"
            if (op == "Gather" and where == [1]) or (op == "OneHot" and where == [0]):
                continue
            if op in ("Shape", "Size"):
                continue
            if op in _COMPARE:
                others = [x for p, x in enumerate(node.input) if p not in where]
                values = [index.constant(x) for x in others]
                if all(v is not None and _int32_constant(v) for v in values):
                    continue
                return f"is compared by {_label(node)} with {others[0]!r}, not an int32 constant"
            if op == "Cast":
                if attribute(node, "to") not in _NARROWING_CASTS:
                    frontier.extend(node.output)
                continue
            if op in _SAME_TYPE and set(where) <= set(_positions(node)):
                frontier.extend(node.output)
                continue
            return f"feeds {_label(node)}, which reads its values as data, not as an index"
    return None


def _elem_types(graph, inferred, outer: dict[str, int] | None = None) -> dict[str, int]:
    """Element type of every tensor of ``graph`` that onnx's shape inference could type
    (``inferred``: the same graph, inferred), names of enclosing graphs included."""
    types = dict(outer or {})
    for v in (*inferred.input, *inferred.value_info, *inferred.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    for t in graph.initializer:
        types[t.name] = t.data_type
    return types


def _all_names(graph, names: set[str]) -> set[str]:
    names |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        names |= set(node.input) | set(node.output) | {node.name}
        for sub in subgraphs(node):
            _all_names(sub, names)
    return names


def _cast_body_indices(graph, inferred, types: dict[str, int], taken: set[str]) -> int:
    """Inside Loop/If/Scan bodies, an int64 Gather/OneHot index (a loop counter, mostly: ONNX
    makes those int64) is cast to int32 where it is read. Returns how many."""
    from onnx import TensorProto, helper

    count = 0
    for node, twin in zip(graph.node, inferred.node):
        for body, body_twin in zip(subgraphs(node), subgraphs(twin)):
            inner = _elem_types(body, body_twin, types)
            casts = []
            for reader in body.node:
                if reader.op_type == "Gather":
                    positions = [1]
                elif reader.op_type == "OneHot":
                    positions = [0, 1]
                else:
                    continue
                for p in positions:
                    if p < len(reader.input) and inner.get(reader.input[p]) == _INT64:
                        name, k = f"{reader.input[p]}_int32", 0
                        while name in taken:
                            k += 1
                            name = f"{reader.input[p]}_int32_{k}"
                        taken.add(name)
                        casts.append(
                            helper.make_node(
                                "Cast", [reader.input[p]], [name], to=TensorProto.INT32
                            )
                        )
                        reader.input[p] = name
                        count += reader.op_type == "Gather" or p == 0
            body.node.extend(casts)  # the runner's cleanup sorts them into place
            count += _cast_body_indices(body, body_twin, inner, taken)
    return count


def _rename_outer_reads(graph, old: str, new: str) -> None:
    """In a subgraph, read ``new`` where it read the outer name ``old`` (unless it defines it)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {o for n in graph.node for o in n.output}
    if old in defined:
        return
    for node in graph.node:
        for i, x in enumerate(node.input):
            if x == old:
                node.input[i] = new
        for sub in subgraphs(node):
            _rename_outer_reads(sub, old, new)
    for out in graph.output:
        if out.name == old:
            out.name = new


def _bodies(result: PassResult, graph, inferred, types) -> None:
    count = _cast_body_indices(graph, inferred, types, _all_names(graph, set()))
    if count:
        result.applied.append(
            f"{count} Gather/OneHot index operand(s) inside Loop/If bodies cast to int32 "
            "where read (loop counters: ONNX makes those int64)"
        )


def apply(model) -> PassResult:
    """Make every Gather/OneHot index of ``model`` (an ``onnx.ModelProto``) int32, in place.

    GraphkitError when an int64 input is used as data (the reason names the node).
    Old nodes left unread are removed by ``run_passes``' cleanup.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    result = PassResult(NAME)
    g = model.graph
    index = GraphIndex(g)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = _elem_types(g, inferred)

    # 1. Model inputs that can hold values past int32: narrowed where every use is an index.
    narrowed = []
    for vi in index.graph_inputs:
        wide = _WIDE.get(vi.type.tensor_type.elem_type)
        if wide is None:
            continue
        why = non_index_use(index, vi.name)
        if why is not None:
            raise GraphkitError(
                f"--index-dtype int32 (which --target implies): input {vi.name!r} is {wide} "
                f"and {why}, so values past the int32 range may matter to the model: it stays "
                f"{wide}. Export without --index-dtype int32 and --target, or declare that "
                "Keras Input int32"
            )
        narrowed.append((vi, wide))
    in_place = {vi.name for vi, _ in narrowed}  # tensors whose own type becomes int32

    # 2. From every index operand back through the index arithmetic: what must become int32.
    work = []
    for node in g.node:
        if node.op_type == "Gather" and len(node.input) > 1:
            work.append((node, 1))
        elif node.op_type == "OneHot":
            work.append((node, 0))
            if types.get(node.input[0]) in (_INT32, _INT64) or node.input[0] in in_place:
                work.append((node, 1))  # onnxruntime: int32 indices need an int32 depth
    edges: dict[tuple[int, int], object] = {}  # (id(node), position) -> node: reads int32
    casts, constants, entries, popped = [], {}, {}, set()
    index_operands = 0
    while work:
        node, pos = work.pop()
        if (id(node), pos) in popped:
            continue
        popped.add((id(node), pos))
        t = node.input[pos]
        seed = node.op_type in ("Gather", "OneHot") and pos == (node.op_type == "Gather")
        # The source of a retargeted Cast: followed where it can become int32 in place;
        # it needs no int32 copy (a Cast reads any type).
        via_cast = node.op_type == "Cast"
        if not t or (t not in in_place and types.get(t) == _INT32):
            continue
        if t not in in_place and types.get(t) != _INT64:
            if seed:
                kind = helper.tensor_dtype_to_np_dtype(types[t]) if t in types else "unknown"
                result.skipped.append(f"{_label(node)}: its index is {kind}, left as it is")
            continue
        if not via_cast:
            edges[(id(node), pos)] = node
            index_operands += seed
        if t in in_place:
            continue
        producer = index.producer.get(t)
        if index.constant_shape(t) is not None or (
            producer is not None and producer.op_type == "Constant"
        ):
            if not via_cast:
                constants.setdefault(t, set()).add(node.op_type)
        elif producer is None or t in index.graph_outputs or list(subgraphs(producer)):
            if not via_cast:
                entries[t] = producer
        elif producer.op_type == "Cast" and attribute(producer, "to") == _INT64:
            in_place.add(t)
            casts.append(producer)
            work.append((producer, 0))
        elif producer.op_type in _SAME_TYPE:
            in_place.add(t)
            work.extend((producer, p) for p in _positions(producer))
        elif not via_cast:
            entries[t] = producer
    if not (narrowed or edges or in_place):
        _bodies(result, g, inferred, types)
        return result

    # 3. Rewrite: inputs, casts, int32 copies of constants, casts where values enter.
    values, saturated = {}, []
    for t, readers in constants.items():  # checked before anything changes
        value = np.asarray(index.constant(t))
        if not _int32_constant(value):
            if not readers <= _SATURATING:
                raise GraphkitError(
                    f"--index-dtype int32: the constant {t!r} on the way to an index holds values "
                    "past the int32 range"
                )
            saturated.append(t)
            value = np.clip(value, _INT32_MIN, _INT32_MAX)
        values[t] = value.astype(np.int32)

    def new_name(base: str) -> str:
        return index.unique(base)

    for vi, _ in narrowed:
        vi.type.tensor_type.elem_type = TensorProto.INT32
    for cast in casts:
        for attr in cast.attribute:
            if attr.name == "to":
                attr.i = TensorProto.INT32
    replaced: dict[str, str] = {}
    for t, value in values.items():
        replaced[t] = new_name(f"{t}_int32")
        g.initializer.append(numpy_helper.from_array(value, replaced[t]))
    for t, producer in entries.items():
        replaced[t] = new_name(f"{t}_int32")
        g.node.append(
            helper.make_node(
                "Cast", [t], [replaced[t]], to=TensorProto.INT32, name=new_name(f"{t}_to_int32")
            )
        )
        if producer is not None:
            result.notes.append(
                f"{t!r} (made by {_label(producer)}) is cast to int32 on its way to an index: "
                "it must stay below 2**31 (a table row or a shape always does)"
            )
    for node in edges.values():
        for pos, x in enumerate(node.input):
            if (id(node), pos) in edges and x in replaced:
                node.input[pos] = replaced[x]

    # 4. Readers that still expect int64 get it back, cast from the int32 values (exact).
    back: dict[str, str] = {}
    compared = 0

    def int64_of(t: str) -> str:
        if t not in back:
            back[t] = new_name(f"{t}_int64")
            g.node.append(
                helper.make_node(
                    "Cast", [t], [back[t]], to=TensorProto.INT64, name=new_name(f"{t}_to_int64")
                )
            )
        return back[t]

    for t in sorted(in_place):
        for node in list(index.consumers.get(t, [])):
            positions = [p for p, x in enumerate(node.input) if x == t]
            if not positions:  # read inside a Loop/If body: the body reads the int64 copy
                for sub in subgraphs(node):
                    _rename_outer_reads(sub, t, int64_of(t))
                continue
            positions = [p for p in positions if (id(node), p) not in edges]
            if not positions or node.op_type in _ANY_TYPE:
                continue
            if node.op_type in _COMPARE:
                others = [p for p in range(len(node.input)) if p not in positions]
                if all(node.input[p] in in_place for p in others):
                    continue
                values = [index.constant(node.input[p]) for p in others]
                if all(
                    v is not None and v.dtype == np.int64 and _int32_constant(v) for v in values
                ):
                    for p, v in zip(others, values):
                        copy = new_name(f"{node.input[p]}_int32")
                        g.initializer.append(numpy_helper.from_array(v.astype(np.int32), copy))
                        node.input[p] = copy
                    compared += 1
                    continue
            for p in positions:
                node.input[p] = int64_of(t)

    # 5. Casts that now cast int32 to int32 are bypassed.
    index = GraphIndex(g)
    int32_now = set(in_place) | {v for v in replaced.values()}
    int32_now |= {n for n, k in types.items() if k == _INT32}
    alias: dict[str, str] = {}

    def resolved(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    # the retargeted casts, and the model's own casts to int32 of what is int32 now
    own = [n for n in g.node if n.op_type == "Cast" and attribute(n, "to") == _INT32]
    for cast in {id(c): c for c in [*casts, *own]}.values():
        src, out = cast.input[0], cast.output[0]
        if src not in int32_now or out in index.graph_outputs:
            continue
        if any(out not in r.input for r in index.consumers.get(out, [])):
            continue  # read inside a body: keep it simple, keep the cast
        alias[out] = src
        cast.output[0] = new_name(f"{out}_unused")
    for node in g.node:
        for i, x in enumerate(node.input):
            if x in alias:
                node.input[i] = resolved(x)
    bypassed = len(alias)

    for v in g.value_info:
        if v.name in in_place and v.type.HasField("tensor_type"):
            v.type.tensor_type.elem_type = TensorProto.INT32

    _bodies(result, g, inferred, types)
    for vi, wide in narrowed:
        result.applied.append(f"input {vi.name}: {wide} -> int32 (read only as indices)")
    if index_operands or in_place:
        parts = [f"{len(casts)} Cast(s) to int64 now to int32"]
        if bypassed:
            parts.append(f"{bypassed} no-op Cast(s) removed")
        if constants or compared:
            parts.append(f"{len(constants) + compared} constant(s) copied as int32")
        if entries:
            parts.append(f"{len(entries)} value(s) cast to int32 where they enter")
        if back:
            parts.append(f"{len(back)} cast back to int64 for readers that need it")
        result.applied.append(
            f"{index_operands} Gather/OneHot index operand(s) int64 -> int32 ({'; '.join(parts)})"
        )
    if saturated:
        result.notes.append(
            f"bound(s) {', '.join(map(repr, saturated))} past int32 clamped to int32's range"
        )
    if narrowed:
        result.notes.append(
            "int32 inputs: every index below the vocabulary reads as before; values past "
            "int32 (out-of-range indices for the model) can no longer be fed"
        )
    return result
