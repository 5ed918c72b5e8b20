"""Which inputs' values reach which tables: read from one traced call of the model.

An input's valid range is the range of the tables that read its values, and only those.
Guessing it from the model's layers (the smallest table anywhere) takes a position table
read through ``ops.arange`` or a 2-row segment table for the token vocabulary. So the
model is traced once (``tf.function``, the same trace verify runs later) with every
index-reading layer's ``call`` wrapped to record the tensor it receives; each recorded
tensor is then followed back through the TensorFlow graph to the model inputs it is
derived from:

* through casts, reshapes, slices, concatenations and the like only (``_TRANSPARENT``):
  the input's values *are* the layer's indices: the input takes that table's range;
* through arithmetic or other ops: the input reaches the table, but not as its indices
  (``x + 1``, a lookup's output): no range can be read from that table;
* never from an input (``ops.arange``, anything read through ``Shape``): the table sets
  no input's range.

Which layers read indices, and which read raw values (lookups), comes from the rule
registry (``graphkit.rules.index_range`` / ``lookup_values``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from graphkit import _keras_api

# Ops whose output values are some of their input values, unchanged (as numbers).
_TRANSPARENT = frozenset(
    {
        "Identity",
        "IdentityN",
        "Cast",
        "Reshape",
        "ExpandDims",
        "Squeeze",
        "Transpose",
        "StridedSlice",
        "Slice",
        "ConcatV2",
        "Pack",
        "Unpack",
        "Split",
        "SplitV",
        "Tile",
        "BroadcastTo",
        "GatherV2",
        "GatherNd",
        "Round",
        "Floor",
        "StopGradient",
        "EnsureShape",
        "PlaceholderWithDefault",
    }
)
# Ops whose output depends on the shape of their input only, not on its values.
_SHAPE_ONLY = frozenset({"Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike"})
# Operand positions of transparent ops that are indices or sizes, not values passed on.
_NOT_VALUES = {
    "Reshape": (1,),
    "ExpandDims": (1,),
    "Transpose": (1,),
    "StridedSlice": (1, 2, 3),
    "Slice": (1, 2),
    "Tile": (1,),
    "BroadcastTo": (1,),
    "GatherV2": (1, 2),
    "GatherNd": (1,),
    "Split": (0,),
    "SplitV": (1, 2),
}


@dataclass
class Read:
    """One layer that reads an input's values."""

    layer: str  # its path (``tok_pos/token_emb``)
    kind: str  # "index" (selects table rows) or "lookup" (raw values mapped to indices)
    rows: int = 0  # index: the table's rows
    mask_zero: bool = False
    values: tuple = ()  # lookup: the layer's vocabulary
    oov: bool = True  # lookup: values outside the vocabulary are valid (an OOV index)
    direct: bool = True  # the input's values reach the layer unchanged


@dataclass
class DataFlow:
    """What the probe saw: per model input (by position) the layers reading its values, and
    the index-reading layers that no input's values reach (positions, constants)."""

    reads: dict[int, list[Read]] = field(default_factory=dict)
    unreached: list[str] = field(default_factory=list)
    # inputs that no known layer reads but whose values index a Gather: input -> the rows
    # of the variable it reads (a table read directly), or None (positions along an axis)
    gathered: dict[int, int | None] = field(default_factory=dict)
    gathered_by: dict[int, str] = field(default_factory=dict)  # input -> the Gather's scope
    error: str | None = None  # why the probe could not run (then nothing above is known)


def layer_path(layer) -> str:
    """A layer's path in its model (``outer/inner/emb``), from its first variable's path."""
    for v in getattr(layer, "weights", ()):
        path = str(getattr(v, "path", "") or "")
        if "/" in path:
            return path.rsplit("/", 1)[0]
    return layer.name


def _readers(model) -> list:
    """(layer, Read template) for every layer of ``model`` that reads indices or values,
    named by its path as ``graphkit inspect`` prints it."""
    from graphkit.model_facts import layer_paths
    from graphkit.rules import index_range, lookup_values

    try:
        paths = layer_paths(model)
    except Exception:  # a model whose sublayers cannot be walked: the variables' paths
        paths = {}
    found = []
    for layer in _keras_api.flatten_layers(model):
        path = paths.get(id(layer)) or layer_path(layer)
        values = lookup_values(layer)
        if values is not None:
            oov = int(getattr(layer, "num_oov_indices", 1) or 0) > 0
            found.append((layer, Read(path, "lookup", values=tuple(values), oov=oov)))
            continue
        rng = index_range(layer)
        if rng is not None:
            found.append((layer, Read(path, "index", int(rng[0]), bool(rng[1]))))
    return found


def _origins(tensor, placeholders: dict) -> dict[int, bool]:
    """Input position -> whether some path from that input to ``tensor`` is transparent."""
    out: dict[int, bool] = {}
    seen: set = set()
    stack = [(tensor, True)]
    while stack:
        t, clean = stack.pop()
        key = (id(t), clean)
        if key in seen:
            continue
        seen.add(key)
        op = t.op
        if op.type in _SHAPE_ONLY:
            continue
        pos = placeholders.get(id(t))
        if pos is not None:
            out[pos] = out.get(pos, False) or clean
            continue
        transparent = op.type in _TRANSPARENT
        skip = _NOT_VALUES.get(op.type, ())
        for k, src in enumerate(op.inputs):
            if src.dtype.name == "resource":
                continue
            if transparent and k in skip:
                stack.append((src, False))
            else:
                stack.append((src, clean and transparent))
    return out


def trace_dataflow(model, function) -> DataFlow:
    """Trace ``function`` (the model's serving ``tf.function``, see ``serving_function``)
    with every reader's ``call`` recording its input; follow each back to the inputs.

    Tracing here is the trace the backend runs later (``tf.function`` keeps it), so this
    costs no second trace. Never raises: a model that cannot be traced gives ``error``.
    """
    readers = _readers(model)
    flow = DataFlow()
    integers = [t for t in getattr(model, "inputs", None) or [] if "int" in str(t.dtype)]
    if not readers and not integers:
        return flow  # nothing to learn: no table, and no integer input a Gather could read
    records: list = []
    patched = []
    try:
        for layer, read in readers:
            original = layer.call

            def recording(*args, _original=original, _read=read, **kwargs):
                x = args[0] if args else kwargs.get("inputs")
                if not kwargs.get("reverse", False):  # ReversibleEmbedding's logits: floats
                    records.append((_read, x))
                return _original(*args, **kwargs)

            patched.append((layer, layer.__dict__.get("call")))
            object.__setattr__(layer, "call", recording)
        concrete = function.get_concrete_function()
    except Exception as exc:
        from graphkit.errors import one_line

        flow.error = one_line(exc)
        return flow
    finally:
        for layer, own in patched:  # the class's call again (or the instance's own)
            if own is not None:
                object.__setattr__(layer, "call", own)
            else:
                object.__delattr__(layer, "call")
    graph_inputs = list(concrete.graph.inputs)
    n = len(getattr(model, "inputs", []) or [])
    placeholders = {id(t): i for i, t in enumerate(graph_inputs[:n])}
    reached: set[str] = set()
    for read, x in records:
        for tensor in _flat_tensors(x):
            origins = _origins(tensor, placeholders)
            for pos, clean in origins.items():
                entry = dataclasses.replace(read, direct=clean)
                if entry not in flow.reads.setdefault(pos, []):
                    flow.reads[pos].append(entry)
            if origins:
                reached.add(read.layer)
    flow.unreached = sorted({r.layer for r, _ in records} - reached)
    _gathers(concrete.graph, placeholders, flow)
    return flow


def _gathers(graph, placeholders: dict, flow: DataFlow) -> None:
    """Inputs no known layer reads whose values are the indices of a Gather: a table read
    directly (``ops.take(self.table, x)``: the variable's rows) or positions along an axis
    of an activation (KerasHub's ``mask_positions``: the sequence length)."""
    for op in graph.get_operations():
        if op.type not in ("GatherV2", "ResourceGather", "GatherNd") or len(op.inputs) < 2:
            continue
        origins = [p for p in _origins(op.inputs[1], placeholders) if p not in flow.reads]
        if not origins:
            continue
        rows = _variable_rows(op) if op.type != "GatherNd" else None
        for pos in origins:
            if rows is not None:
                old = flow.gathered.get(pos)
                flow.gathered[pos] = rows if old is None else min(old, rows)
                flow.gathered_by.setdefault(pos, op.name.rsplit("/", 1)[0])
            else:
                flow.gathered.setdefault(pos, None)


def _variable_rows(op) -> int | None:
    """Rows of the variable a Gather on axis 0 reads (through transparent ops), or None."""
    if op.type == "GatherV2":
        import tensorflow as tf

        axis = tf.get_static_value(op.inputs[2])
        if axis is None or int(axis) != 0 or op.get_attr("batch_dims") != 0:
            return None
    params = op.inputs[0]
    seen = 0
    while params.op.type in ("Identity", "Cast") and seen < 16:
        params, seen = params.op.inputs[0], seen + 1
    if params.op.type not in ("ReadVariableOp", "VarHandleOp") and params.dtype.name != "resource":
        return None
    dim = params.shape[0] if params.shape.rank else None
    return int(dim) if dim is not None else None


def _flat_tensors(x) -> list:
    import tensorflow as tf

    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _flat_tensors(item)]
    if isinstance(x, dict):
        return [t for item in x.values() for t in _flat_tensors(item)]
    return [x] if isinstance(x, tf.Tensor) and hasattr(x, "op") else []


MASK_WORDS = ("mask",)


def input_specs(model, flow: DataFlow, fallback: dict[int, tuple[int, bool]]) -> list:
    """The model's InputSpecs from what the probe saw (``fallback``: position -> (vocab,
    mask_zero) read from the graph's structure, used only where the probe could not run)."""
    import keras

    from graphkit.backends.base import InputSpec, TableRead

    specs = []
    for i, t in enumerate(model.inputs):
        dtype = keras.backend.standardize_dtype(t.dtype)
        spec = InputSpec(t.name, tuple(t.shape), dtype)
        reads = flow.reads.get(i, [])
        index = [r for r in reads if r.kind == "index" and r.direct]
        lookups = [r for r in reads if r.kind == "lookup" and r.direct]
        integral = "int" in dtype or dtype == "bool"
        if index:
            spec.vocab = min(r.rows for r in index)
            spec.mask_zero = any(r.mask_zero for r in index)
            spec.tables = tuple(
                dict.fromkeys(TableRead(r.layer, r.rows, r.mask_zero) for r in index)
            )
            spec.role = "index"
        elif lookups:
            spec.role = "lookup"
            spec.values = lookups[0].values
            if not all(r.oov for r in lookups):
                spec.note = f"lookup {lookups[0].layer!r} has no out-of-vocabulary index"
        elif flow.error is not None and i in fallback:
            spec.vocab, spec.mask_zero = fallback[i]
            spec.role = "index"
        elif "int" in dtype and i in flow.gathered:
            rows = flow.gathered[i]
            if rows is not None:  # a variable read as a table by the model's own code
                spec.vocab, spec.role = rows, "index"
                where = flow.gathered_by.get(i, "a Gather")
                spec.tables = (TableRead(f"{where} (a variable it gathers from)", rows),)
            else:
                spec.role = "positions"
        elif integral and any(w in t.name.lower() for w in MASK_WORDS):
            spec.role = "mask"
        elif integral:
            if flow.error is not None:
                spec.note = (
                    f"graphkit could not trace the model to see what reads it ({flow.error})"
                )
            elif reads:
                spec.note = (
                    f"its values reach {reads[0].layer!r} only through other operations, "
                    "not as indices"
                )
            else:
                spec.note = "no table or lookup reads its values"
        specs.append(spec)
    return specs
