"""ONNX pass: fixed input shapes (``--fixed-shape tokens=2x160``), and every shape static.

NPU compilers and mobile execution providers need bounded, static shapes and no Shape
arithmetic at run time. The named inputs get the given dimensions (onnxruntime's own
``make_input_shape_fixed``, which also replaces their symbolic dimension everywhere it
appears), then the arithmetic on shapes (``Shape -> Gather -> Concat -> Reshape`` and
the like) is folded into constants, round after round of onnx shape inference, until
nothing more folds. Only values computed from shapes, and integer arithmetic on small
constants, are folded (evaluated by onnx's reference runtime): the weights and what is
computed from them stay as they are. A Loop state that keeps its shape across steps is
declared static (onnx's inference never assumes so). Whatever still has a dynamic
dimension after that (a Loop's stacked outputs, an input left unfixed) is reported by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from graphkit.errors import GraphkitError
from graphkit.onnx_passes.base import PassResult
from graphkit.onnx_passes.graph import GraphIndex, node_reads, subgraphs

NAME = "fix_shapes"
SUMMARY = "fixes the named inputs' shapes, folds shape arithmetic: no dynamic dimension left"
CONFLICTS: dict[str, str] = {}
PHASE = "deploy"
PARAMS = {"shapes": "input name -> its dimensions, e.g. {'tokens': (2, 160)}"}
FOLD_LIMIT = 1 << 16  # elements: a shape computation's result is small; larger ones stay
SMALL = 1 << 10  # constants of at most this many elements are data for shapes, not weights
MAX_ROUNDS = 32
_NEVER_FOLD = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}
_NEVER_FOLD |= {"Multinomial", "Bernoulli"}
_FORMAT = "expected NAME=DIMS, DIMS like 2x160 (positive integers joined by x)"

Shapes = Mapping[str, "Sequence[int] | str | int"]


MAX_ELEMENTS = 1 << 24  # values in one fixed input: the check synthesizes batches of it


def parse_fixed_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``"tokens=2x160"`` -> ``("tokens", (2, 160))``; GraphkitError saying what is wrong."""
    name, sep, dims = str(text).rpartition("=")
    if not sep or not name.strip():
        raise GraphkitError(f"--fixed-shape {text!r}: {_FORMAT}")
    return name.strip(), _dims(dims, f"--fixed-shape {text!r}")


def parse_fixed_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Every ``--fixed-shape NAME=DIMS`` of the command line (cheap: before TensorFlow)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, dims = parse_fixed_shape(item)
        if name in shapes:
            raise GraphkitError(f"--fixed-shape: input {name!r} is given twice")
        shapes[name] = dims
    return normalise_shapes(shapes)


def _dims(value, label: str) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = value.strip().lower().split("x")
        if not value.strip() or not all(p.strip().isdigit() for p in parts):
            raise GraphkitError(f"{label}: {_FORMAT}")
        dims = tuple(int(p) for p in parts)
    elif isinstance(value, int) and not isinstance(value, bool):
        dims = (value,)
    else:
        try:
            dims = tuple(value)
        except TypeError:
            raise GraphkitError(f"{label}: {_FORMAT}, got {value!r}") from None
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise GraphkitError(f"{label}: {_FORMAT}, got {value!r}")
    bad = [d for d in dims if d < 1]
    if bad:
        raise GraphkitError(f"{label}: every dimension must be at least 1, got {bad[0]}")
    if any(d >= 2**31 for d in dims):
        raise GraphkitError(f"{label}: a dimension must be below 2**31, got {max(dims)}")
    if math.prod(dims) > MAX_ELEMENTS:
        raise GraphkitError(
            f"{label}: {math.prod(dims):,} values per input is more than graphkit checks "
            f"({MAX_ELEMENTS:,}); no model input is that large"
        )
    return dims


def normalise_shapes(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    """``{name: (2, 160) or "2x160"}`` -> ``{name: (2, 160)}``, checked; inputs share a batch axis."""
    if not isinstance(shapes, Mapping):
        raise GraphkitError(f"fixed shapes: expected {{input name: dims}}, got {shapes!r}")
    out = {str(name): _dims(dims, f"--fixed-shape {name}") for name, dims in shapes.items()}
    batches = {name: dims[0] for name, dims in out.items()}
    if len(set(batches.values())) > 1:
        listed = ", ".join(f"{name} has {b}" for name, b in batches.items())
        raise GraphkitError(
            f"--fixed-shape: the inputs share the batch axis (the first), but {listed}"
        )
    return out


def check_params(shapes: Shapes | None = None) -> None:
    if not shapes:
        raise GraphkitError(
            "the ONNX pass fix_shapes needs the shapes to fix: --fixed-shape NAME=DIMS "
            "(in Python, fixed_shapes={name: dims})"
        )
    normalise_shapes(shapes)


def _fmt(dims: Sequence[int | None]) -> str:
    """Like a Keras shape: ``(None, 16)``, ``(2,)``."""
    return str(tuple(dims))


def check_against(declared: Mapping[str, Sequence[int | None]], shapes: Shapes) -> None:
    """The fixed shapes fit the model's inputs (``declared``: name -> dims, None where dynamic):
    known names, the same rank, the same size where an axis is already fixed."""
    for name, dims in normalise_shapes(shapes).items():
        given = "x".join(map(str, dims))
        if name not in declared:
            raise GraphkitError(
                f"--fixed-shape {name}={given}: the model has no input {name!r} "
                f"(its inputs: {', '.join(declared) or 'none'})"
            )
        have = tuple(declared[name])
        if len(have) != len(dims):
            raise GraphkitError(
                f"--fixed-shape {name}={given}: input {name!r} has rank {len(have)} "
                f"(shape {_fmt(have)}), not {len(dims)}"
            )
        for axis, (h, d) in enumerate(zip(have, dims)):
            if h is not None and h != d:
                raise GraphkitError(
                    f"--fixed-shape {name}={given}: input {name!r} has shape {_fmt(have)}: "
                    f"axis {axis} is {h}, not {d}"
                )


def _declared(value_info) -> tuple[int | None, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def _static(value_info) -> tuple[int, ...] | None:
    """The dims of a tensor whose every dimension is known, else None."""
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = t.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def _inferred(model):
    import onnx

    return onnx.shape_inference.infer_shapes(model)


def _shape_value(node, dims: tuple[int, ...]):
    import numpy as np

    from graphkit.onnx_passes.graph import attribute

    if node.op_type == "Size":
        return np.array(int(np.prod(dims, dtype=np.int64)), np.int64)
    rank = len(dims)
    start, end = attribute(node, "start", 0), attribute(node, "end", rank)
    start, end = (s + rank if s < 0 else s for s in (start, end))
    start, end = (min(max(s, 0), rank) for s in (start, end))
    return np.array(dims[start:end], np.int64)


def _size(index: GraphIndex, name: str) -> int:
    import numpy as np

    dims = index.constant_shape(name)
    if dims is None:  # not a constant, or a Constant node with a value_int(s)/float(s)
        value = index.constant(name)
        return SMALL + 1 if value is None else int(np.asarray(value).size)
    return int(np.prod(dims, dtype=np.int64))


def _fix_loop_state(graph, inferred, static) -> int:
    """A Loop's state that starts static and that its body gives back with the same shape
    keeps that shape: declared so for the body's input and for the Loop's output (onnx's
    inference takes neither from the other, since a state may change shape in general)."""
    from onnx import helper

    found = {n.name or n.output[0]: n for n in inferred.node if n.op_type == "Loop"}
    declared = {v.name for v in graph.value_info}
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.value_info}
    changed = 0
    for node in graph.node:
        twin = found.get(node.name or node.output[0])
        if node.op_type != "Loop" or twin is None:
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        done = next(a.g for a in twin.attribute if a.name == "body")
        outs = {o.name: _static(o) for o in done.output}
        for k, initial in enumerate(node.input[2:]):
            state, back = body.input[2 + k], done.output[1 + k]
            dims = static.get(initial)
            if dims is None or outs.get(back.name) != dims:
                continue
            if _static(state) is None:
                state.type.tensor_type.shape.Clear()
                for d in dims:
                    state.type.tensor_type.shape.dim.add().dim_value = d
                changed += 1
            final = node.output[k] if k < len(node.output) else ""
            if final and final not in declared and types.get(final):
                graph.value_info.append(helper.make_tensor_value_info(final, types[final], dims))
                declared.add(final)
                changed += 1
    return changed


def _fold(model) -> int:
    """Replace nodes computing values from static shapes by constants; returns how many."""
    import numpy as np
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    derived: dict = {}  # tensors this pass made constant: only what they feed is folded
    folded = 0
    for _ in range(MAX_ROUNDS):
        inferred = _inferred(model).graph
        static = {}
        for v in (*inferred.input, *inferred.value_info, *inferred.output):
            dims = _static(v)
            if dims is not None:
                static[v.name] = dims
        static.update((t.name, tuple(t.dims)) for t in g.initializer)
        loops = _fix_loop_state(g, inferred, static)
        index = GraphIndex(g)
        nodes, gone = list(g.node), set()
        for position, node in enumerate(nodes):
            if node.domain not in ("", "ai.onnx") or node.op_type in _NEVER_FOLD:
                continue
            if list(subgraphs(node)) or any(o in index.graph_outputs for o in node.output):
                continue
            if node.op_type in ("Shape", "Size"):
                dims = static.get(node.input[0])
                if dims is None:
                    continue
                values = [_shape_value(node, dims)]
            else:
                names = [x for x in node.input if x]
                if not names:
                    continue
                feeds = {}
                for x in names:
                    if x in derived:
                        feeds[x] = derived[x]
                    elif _size(index, x) <= SMALL:
                        value = index.constant(x)  # a small constant: shape data, not a weight
                        if value is None:
                            break
                        feeds[x] = value
                    else:
                        break
                if len(feeds) != len(set(names)):
                    continue
                try:
                    values = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
                except Exception:
                    continue  # an op the reference cannot run: left to the runtime
                values = [np.asarray(v) for v in values]
                if any(v.size > FOLD_LIMIT for v in values):
                    continue
                if not any(x in derived for x in names) and any(
                    v.dtype.kind == "f" for v in values
                ):
                    continue  # arithmetic on float constants stays the runtime's (its rounding)
            for name, value in zip(node.output, values):
                if name:
                    value = np.asarray(value)
                    g.initializer.append(numpy_helper.from_array(value, name))
                    derived[name] = value
            gone.add(position)
        if not gone and not loops:
            break
        del g.node[:]
        g.node.extend(node for i, node in enumerate(nodes) if i not in gone)
        folded += len(gone)
    return folded


def _live_outputs(graph) -> set[str]:
    """Names made by the nodes that the graph's outputs need (the runner drops the others)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    live, needed, seen = set(), [o.name for o in graph.output], set()
    while needed:
        name = needed.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        live.update(o for o in node.output if o)
        needed.extend(node_reads(node))
    return live


def dynamic_tensors(model) -> list[str]:
    """Tensors with a dimension onnx shape inference leaves unknown (or no shape at all):
    the inputs, every output of a live node, and the tensors inside Loop/If bodies."""
    inferred = _inferred(model).graph
    live = _live_outputs(model.graph)
    found = []

    def walk(graph, where: str, top: bool) -> None:
        infos = {v.name: v for v in (*graph.input, *graph.value_info, *graph.output)}
        for v in graph.input:
            if v.type.HasField("tensor_type") and _static(v) is None:
                found.append(f"{where}{v.name}")
        for node in graph.node:
            if top and not any(o in live for o in node.output):
                continue
            for out in node.output:
                v = infos.get(out)
                if out and (v is None or (v.type.HasField("tensor_type") and _static(v) is None)):
                    found.append(f"{where}{out}")
            for sub in subgraphs(node):
                walk(sub, f"{where}{node.op_type} {node.name or node.output[0]!r} body: ", False)

    walk(inferred, "", True)
    return found


def apply(model, shapes: Shapes | None = None) -> PassResult:
    """Fix the input shapes of ``model`` (an ``onnx.ModelProto``) and fold shape arithmetic.

    GraphkitError for an input the model lacks, another rank, or an axis already fixed to
    another size. Folded nodes are removed; what they no longer need is left to the runner.
    """
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    check_params(shapes)
    shapes = normalise_shapes(shapes)
    result = PassResult(NAME)
    g = model.graph
    declared = {vi.name: _declared(vi) for vi in GraphIndex(g).graph_inputs}
    check_against(declared, shapes)
    for name, dims in shapes.items():
        make_input_shape_fixed(g, name, list(dims))
        if tuple(declared[name]) != dims:
            result.applied.append(f"input {name}: {_fmt(declared[name])} -> {_fmt(dims)}")
    folded = _fold(model)
    if folded:
        result.applied.append(f"{folded} node(s) computing shapes folded into constants")
    inferred = {o.name: o for o in _inferred(model).graph.output}
    for out in g.output:  # the outputs' declared shapes, static where inference found them so
        new = inferred.get(out.name)
        if new is not None and _static(new) is not None and _static(out) is None:
            out.type.tensor_type.shape.CopyFrom(new.type.tensor_type.shape)
    left = dynamic_tensors(model)
    if left:
        shown = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
        result.notes.append(
            f"{len(left)} tensor(s) keep a dynamic dimension after onnx shape inference: {shown}"
        )
        if any(n.op_type in ("Loop", "Scan") for n in g.node):
            result.notes.append(
                "a Loop output that stacks one value per step (a recurrent layer's sequence) "
                "has the step count as its length, which onnx shape inference leaves unknown"
            )
        unfixed = [n for n, d in declared.items() if n not in shapes and None in d]
        if unfixed:
            result.notes.append(f"input(s) not fixed: {', '.join(unfixed)} (--fixed-shape)")
    elif result.applied:
        result.applied.append("no dynamic dimension left (onnx shape inference)")
    return result
