"""Where two models part: the first layer, in the reference's graph order, whose output differs.

Each side gives the intermediate tensors it can expose, under a layer name:

- Keras: every node output of the model's Functional graph (a Sequential's inner one), from
  one eager call of an intermediate model (the reference is the eager call). A nested
  Functional/Sequential model called once is descended into (``encoder/lstm``): its layers are
  recomputed from the values its call got, and kept only where that gives its output exactly.
- ONNX: tf2onnx names a node after the layers' name scopes (``encoder_1/enc_embedding_1/
  GatherV2``): a layer's output is the last tensor of its scope, of the Keras output's shape,
  that something outside the scope reads (or a graph output). Those tensors become extra
  outputs of an in-memory copy of the model, run in onnxruntime.
- ONNX <-> ONNX: the node outputs that both files name alike.

Names are matched as they are, then through graphkit's rewrites: Embedding ``e`` became
``e_onehot`` -> ``e_timedist`` / ``e_dense`` (``embedding_to_onehot``), and a Dense ``d`` after a
OneHot ``b_onehot`` became an Embedding ``b`` (``d`` was ``b_dense``/``b_timedist``) or
``d_embedding`` (``onehot_to_embedding``). A layer present on one side only is skipped.
Nothing here raises for an odd model: where no layer can be compared, the ``Divergence``
says why in ``note``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError, one_line
from graphkit.verification.stats import json_float


@dataclass
class LayerComparison:
    """One compared layer: the reference's layer, what it was matched with, how far apart."""

    layer: str  # reference layer (``name``, ``name[i]`` for its i-th output, ``name@k`` k-th call)
    candidate: str  # what it was matched with: the other Keras layer, or the ONNX tensor
    max_abs: float | None  # None when the shapes differ
    ok: bool  # |c - r| <= atol + rtol * |r| everywhere (and same shape, same NaNs)
    shape_mismatch: str | None = None
    onnx_tensor: str | None = None  # the ONNX tensor that stands for the layer (either side)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "candidate": self.candidate,
            "onnx_tensor": self.onnx_tensor,
            "max_abs": json_float(self.max_abs),
            "ok": self.ok,
            "shape_mismatch": self.shape_mismatch,
        }


@dataclass
class Divergence:
    """Where the candidate parts from the reference, on one batch.

    ``first`` is the first compared layer (reference graph order) that differs, or None: no
    compared layer differs, or nothing could be compared (``note`` says which).
    ``upstream_equal`` counts the compared layers before ``first`` (all equal, by definition).
    """

    first: str | None
    first_max_abs: float | None = None
    first_candidate: str | None = None
    upstream_equal: int = 0
    compared: list[LayerComparison] = field(default_factory=list)
    note: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """The one line a report prints."""
        if self.first is None:
            if self.compared:
                return f"no compared layer differs ({len(self.compared)} compared)" + (
                    f"; {self.note}" if self.note else ""
                )
            return f"first difference not located: {self.note or 'no layer could be compared'}"
        how = (
            f"max abs {self.first_max_abs:.3g}"
            if self.first_max_abs is not None
            else "shapes differ"
        )
        via = (
            f" (candidate {self.first_candidate!r})"
            if self.first_candidate and self.first_candidate != self.first
            else ""
        )
        n = self.upstream_equal
        up = f"{n} layer{'s' if n != 1 else ''} upstream {'are' if n != 1 else 'is'} equal"
        return f"first difference at layer {self.first!r}{via} ({how}); {up}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "first_candidate": self.first_candidate,
            "first_max_abs": json_float(self.first_max_abs),
            "upstream_equal": self.upstream_equal,
            "compared": [c.to_dict() for c in self.compared],
            "note": self.note,
            "line": self.line(),
        }


# ---------------------------------------------------------------------------- comparison


def compare(
    layer: str,
    candidate: str,
    ref: np.ndarray,
    cand: np.ndarray,
    rtol: float,
    atol: float,
    onnx: str | None = None,
) -> LayerComparison:
    """``stats.OutputStats``' rule: |c - r| <= atol + rtol * |r|; NaN only against NaN."""
    result = _compare(layer, candidate, ref, cand, rtol, atol)
    result.onnx_tensor = onnx
    return result


def _compare(layer, candidate, ref, cand, rtol, atol) -> LayerComparison:
    ref, cand = np.asarray(ref), np.asarray(cand)
    if ref.shape != cand.shape:
        return LayerComparison(
            layer, candidate, None, False, f"reference {ref.shape} vs candidate {cand.shape}"
        )
    if ref.dtype.kind not in "biufc" or cand.dtype.kind not in "biufc":
        same = bool(np.array_equal(ref, cand))
        return LayerComparison(layer, candidate, 0.0 if same else float("inf"), same)
    r, c = ref.astype("float64"), cand.astype("float64")
    rn, cn = np.isnan(r), np.isnan(c)
    both = rn & cn
    diff = np.abs(np.where(both, 0.0, r) - np.where(both, 0.0, c))
    diff = np.where(rn != cn, np.inf, diff)
    bad = diff > atol + rtol * np.abs(np.where(rn, 0.0, r))
    worst = float(diff.max()) if diff.size else 0.0
    return LayerComparison(layer, candidate, worst, not bool(bad.any()))


# ---------------------------------------------------------------------------- name matching

_SUFFIX = re.compile(r"^(.*)_\d+$")


def rewrite_names(name: str) -> list[str]:
    """Names a reference layer ``name`` may have in the candidate, best first (see module doc)."""
    out = [name]
    # embedding_to_onehot: the last layer of the replacement chain gives the Embedding's output
    out += [f"{name}_timedist", f"{name}_dense"]
    # onehot_to_embedding: the Dense after ``b_onehot`` became Embedding ``b`` or ``d_embedding``
    for tail in ("_dense", "_timedist"):
        if name.endswith(tail) and len(name) > len(tail):
            out.append(name[: -len(tail)])
    out.append(f"{name}_embedding")
    return out


def _match_name(name: str, available) -> str | None:
    """The candidate layer for reference layer ``name``: its own name or a rewrite's, also with
    the ``_<n>`` a unique-name suffix adds."""
    for want in rewrite_names(name):
        if want in available:
            return want
    for want in rewrite_names(name)[1:]:
        numbered = sorted(
            (a for a in available if _SUFFIX.match(a) and _SUFFIX.match(a).group(1) == want),
            key=len,
        )
        if numbered:
            return numbered[0]
    return None


# ---------------------------------------------------------------------------- Keras side

MAX_DEPTH = 4  # nested models deeper than this are compared as one layer


@dataclass
class _Entry:
    """One exposed Keras tensor: the layer path it is reported under, its key for matching."""

    path: tuple[str, ...]  # layer names from the top model down (``("encoder", "lstm")``)
    call: int  # which call of the layer within its graph (0 for most)
    index: int  # which output of that call
    value: np.ndarray | None = None

    @property
    def layer(self) -> str:
        return self.path[-1]

    @property
    def label(self) -> str:
        return (
            "/".join(self.path)
            + (f"[{self.index}]" if self.index else "")
            + (f"@{self.call}" if self.call else "")
        )


def _graph_nodes(graph) -> tuple[list, dict[int, list]]:
    """The graph's own layer nodes, inputs first, and each layer's calls in call order."""
    import keras

    from graphkit import _keras_api

    nodes = [
        node
        for node in _keras_api.nodes_inputs_first(graph)
        if not node.is_input
        and node.operation is not None
        and not isinstance(node.operation, keras.layers.InputLayer)
    ]
    # which call of a shared layer: its order among this graph's calls of it (the layer may
    # have been called elsewhere too, e.g. while a rewrite rebuilt the graph)
    calls: dict[int, list] = {}
    for node in nodes:
        calls.setdefault(id(node.operation), []).append(node)
    for group in calls.values():
        inbound = {id(n): i for i, n in enumerate(_keras_api.inbound_nodes(group[0].operation))}
        group.sort(key=lambda n: inbound.get(id(n), len(inbound)))
    return nodes, calls


def _run_graph(graph, args: list, prefix: tuple[str, ...], depth: int) -> tuple[list[_Entry], dict]:
    """Every layer output of ``graph`` on ``args`` (in ``graph.inputs`` order), graph order;
    a nested model's own layers come just before its output, where they can be recomputed.
    Also: id(symbolic tensor) -> value, for the graph's inputs and layer outputs."""
    import keras

    from graphkit.backends.keras_backend import eager_call
    from graphkit.engine import is_graph_model

    nodes, calls = _graph_nodes(graph)
    tensors, entries, nested = [], [], []
    for node in nodes:
        op = node.operation
        call = next(i for i, n in enumerate(calls[id(op)]) if n is node)
        if depth < MAX_DEPTH and len(calls[id(op)]) == 1 and is_graph_model(op):
            nested.append((len(entries), node))
        for i, t in enumerate(node.outputs):
            tensors.append(t)
            entries.append(_Entry(prefix + (op.name,), call, i))
    known = {id(t): v for t, v in zip(graph.inputs, args)}
    if not entries:
        return [], known
    values = eager_call(keras.Model(list(graph.inputs), tensors), args)
    for t, entry, value in zip(tensors, entries, values):
        entry.value = value
        known[id(t)] = value
    for at, node in reversed(nested):  # from the back: insertion keeps earlier positions
        entries[at:at] = _nested_entries(node, known, prefix, depth)
    return entries, known


def _nested_entries(node, known: dict, prefix: tuple[str, ...], depth: int) -> list[_Entry]:
    """The layers of a nested model called at ``node``, recomputed from the values its call
    got; kept only if the recomputation gives the nested model's output exactly (a mask
    passed in by the outer graph, for one, is not reproduced)."""
    from graphkit import _keras_api

    op = node.operation
    try:
        inner_graph = _keras_api.functional_graph(op)
        args = [known[id(t)] for t in node.input_tensors]
        if len(args) != len(inner_graph.inputs):
            return []
        inner, inner_known = _run_graph(inner_graph, args, prefix + (op.name,), depth + 1)
        outs = list(node.outputs)
        if len(outs) != len(inner_graph.outputs):
            return []
        for outer, t in zip(outs, inner_graph.outputs):
            mine, theirs = known.get(id(outer)), inner_known.get(id(t))
            if mine is None or theirs is None or not _same(mine, theirs):
                return []
    except Exception:
        return []
    return inner


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _keras_entries(backend, batch: dict[str, np.ndarray]) -> tuple[list[_Entry], str | None]:
    """Every layer output of a Keras backend's graph, in graph order, from eager calls."""
    from graphkit import _keras_api

    model = backend.model
    stateful = [
        layer.name
        for layer in _keras_api.flatten_layers(model)
        if getattr(layer, "stateful", False)
    ]
    if stateful:  # another call would advance their states
        return [], f"stateful layer {stateful[0]!r}: not run again"
    try:
        graph = _keras_api.functional_graph(model)
        inputs = list(graph.inputs)
    except Exception as exc:
        return [], f"cannot read the graph of {model.name!r} ({one_line(exc)})"
    names = [s.name for s in backend.inputs]
    if [t.name for t in inputs] == names or len(inputs) != len(names):
        args = [batch[t.name] for t in inputs]
    else:
        args = [batch[n] for n in names]  # graph.inputs are model.inputs, in that order
    try:
        entries, _ = _run_graph(graph, args, (), 0)
    except Exception as exc:
        return [], f"cannot run the layers of {model.name!r} one by one ({one_line(exc)})"
    if not entries:
        return [], f"{model.name!r} has no layers to compare"
    return entries, None


def _map_path(path: tuple[str, ...], available: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The candidate's path for a reference layer path: each level by name or a rewrite's."""
    out: tuple[str, ...] = ()
    for name in path:
        level = {p[len(out)] for p in available if len(p) > len(out) and p[: len(out)] == out}
        found = _match_name(name, level)
        if found is None:
            return None
        out += (found,)
    return out if out in available else None


def _pairs_keras_keras(ref: list[_Entry], cand: list[_Entry]) -> list[tuple[_Entry, _Entry]]:
    """Each reference output with the candidate's output of the matching layer. A layer called
    several times: the candidate's call of the same shape closest to it (a rewrite may change
    the order in which a shared layer's calls were made), else the call of the same rank."""
    groups: dict[tuple, list[_Entry]] = {}
    for e in cand:
        groups.setdefault((e.path, e.index), []).append(e)
    ref_calls: dict[tuple, int] = {}
    for e in ref:
        ref_calls[(e.path, e.index)] = ref_calls.get((e.path, e.index), 0) + 1
    paths = {e.path for e in cand}
    pairs = []
    for e in ref:
        path = _map_path(e.path, paths)
        group = groups.get((path, e.index), []) if path is not None else []
        if not group:
            continue
        if len(group) == 1 and ref_calls[(e.path, e.index)] == 1:
            pairs.append((e, group[0]))
            continue
        fits = [c for c in group if c.value is not None and c.value.shape == e.value.shape]
        if fits:
            fits.sort(key=lambda c: _compare(e.label, c.label, e.value, c.value, 0, 0).max_abs)
            pairs.append((e, fits[0]))
        else:
            pairs.append((e, next((c for c in group if c.call == e.call), group[0])))
    return pairs


# ---------------------------------------------------------------------------- ONNX side


def _onnx_proto(backend):
    """The backend's model, graph only (external data stays where it is)."""
    import onnx

    return onnx.load(str(backend.source), load_external_data=False)


def _onnx_scopes(proto, keras_names: set[str]) -> dict[tuple[str, ...], dict[str, list[str]]]:
    """Layer path -> {scope as named in the graph: the tensors leaving it, in node order}.

    tf2onnx names a node after the TensorFlow name scopes it was made in, which are the Keras
    layers' names with a ``_<n>`` numbering (``encoder_1/enc_embedding_1/GatherV2``). A tensor
    leaves a scope when a node outside that scope reads it, or it is a graph output.
    """

    def resolve(component: str) -> str:
        m = _SUFFIX.match(component)
        if m is None:
            return component
        if component in keras_names and m.group(1) not in keras_names:
            return component  # a layer whose own name ends in _<n>, unnumbered
        return m.group(1)

    def scopes(node) -> list[str]:
        return node.name.split("/")[:-1]  # the last part names the op

    producer: dict[str, list[str]] = {}
    for node in proto.graph.node:
        for out in node.output:
            producer[out] = scopes(node)
    shared: dict[str, int] = {}  # tensor -> scope depth it shares with its furthest reader
    for node in proto.graph.node:
        here = scopes(node)
        for name in node.input:
            if name in producer:
                there = producer[name]
                n = 0
                while n < min(len(here), len(there)) and here[n] == there[n]:
                    n += 1
                shared[name] = min(shared.get(name, n), n)
    for out in proto.graph.output:
        shared[out.name] = 0
    result: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for node in proto.graph.node:
        parts = scopes(node)
        for k in range(len(parts)):
            path = tuple(resolve(c) for c in parts[: k + 1])
            raw = "/".join(parts[: k + 1])
            for out in node.output:
                if out and out in shared and shared[out] <= k:
                    result.setdefault(path, {}).setdefault(raw, []).append(out)
    return result


def _run_with_outputs(backend, proto, names: list[str], batch) -> tuple[dict, str | None]:
    """Run a copy of ``proto`` whose outputs are ``names`` (typed by shape inference)."""
    import onnx
    import onnxruntime as ort

    from graphkit.backends.base import as_declared_dtype

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    types: dict[str, Any] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types[vi.name] = vi.type.tensor_type.elem_type
    except Exception:
        pass
    existing = {o.name for o in model.graph.output}
    wanted = [n for n in names if n in existing or n in types]
    if not wanted:
        return {}, "no intermediate tensor of the ONNX model has a known type"
    for n in wanted:
        if n not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n, types[n], None))
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    has_external = any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    if has_external:
        from pathlib import Path

        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path",
            str(Path(str(backend.source)).resolve().parent),
        )
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feed = {}
        for s in backend.inputs:
            x = batch[s.name]
            feed[s.name] = x if s.dtype == "string" else as_declared_dtype(x, s, "the ONNX model")
        values = session.run(wanted, feed)
    except Exception as exc:
        return {}, f"cannot run the ONNX model with its intermediate tensors ({one_line(exc)})"
    return dict(zip(wanted, values)), None


def _pairs_keras_onnx(entries: list[_Entry], onnx_backend, batch):
    """(keras entry, onnx tensor name, onnx value) for each Keras layer found in the ONNX graph."""
    proto = _onnx_proto(onnx_backend)
    names = {n for e in entries for n in e.path}
    names |= {r for n in list(names) for r in rewrite_names(n)}
    scopes = _onnx_scopes(proto, names)
    available = set(scopes)
    mapped = {e.label: _map_path(e.path, available) for e in entries}
    wanted = sorted(
        {t for path in mapped.values() if path for ts in scopes[path].values() for t in ts}
    )
    if not wanted:
        return [], "no ONNX node is named after a Keras layer (not a tf2onnx export?)"
    values, problem = _run_with_outputs(onnx_backend, proto, wanted, batch)
    if problem:
        return [], problem
    pairs = []
    for e in entries:
        path = mapped.get(e.label)
        if path is None or e.value is None:
            continue
        # per scope (one per call), the last tensor leaving it with the layer's shape is the
        # layer's output; a shared layer has several scopes: the closest stands for this call
        options: dict[str, np.ndarray] = {}
        for tensors in scopes[path].values():
            fit = [t for t in tensors if t in values and values[t].shape == e.value.shape]
            if fit:
                options[fit[-1]] = values[fit[-1]]
                continue
            # tf2onnx may leave leading axes merged (a MatMul on 2-D) for the next layer
            merged = [
                t
                for t in tensors
                if t in values and _merged_leading(values[t].shape, e.value.shape)
            ]
            if merged:
                options[merged[-1]] = values[merged[-1]].reshape(e.value.shape)
        if not options:
            continue
        best = min(options, key=lambda t: _compare(e.label, t, e.value, options[t], 0, 0).max_abs)
        pairs.append((e, best, options[best]))
    return pairs, None


def _merged_leading(shape: tuple, want: tuple) -> bool:
    """``shape`` is ``want`` with leading axes merged (a C-order reshape gives ``want``)."""
    return (
        len(shape) >= 1
        and len(want) > len(shape)
        and tuple(shape[1:]) == tuple(want[len(want) - len(shape) + 1 :])
        and int(np.prod(shape)) == int(np.prod(want))
    )


def _onnx_onnx(reference, candidate, batch, rtol, atol) -> Divergence:
    ref_proto, cand_proto = _onnx_proto(reference), _onnx_proto(candidate)
    cand_outputs = {o for n in cand_proto.graph.node for o in n.output if o}
    order = [o for n in ref_proto.graph.node for o in n.output if o and o in cand_outputs]
    if not order:
        return Divergence(None, note="the two ONNX models name no intermediate tensor alike")
    ref_vals, problem = _run_with_outputs(reference, ref_proto, order, batch)
    if problem:
        return Divergence(None, note=f"reference: {problem}")
    cand_vals, problem = _run_with_outputs(candidate, cand_proto, order, batch)
    if problem:
        return Divergence(None, note=f"candidate: {problem}")
    compared = [
        compare(n, n, ref_vals[n], cand_vals[n], rtol, atol)
        for n in order
        if n in ref_vals and n in cand_vals
    ]
    return _verdict(compared)


# ---------------------------------------------------------------------------- the walk


def _verdict(compared: list[LayerComparison], note: str | None = None) -> Divergence:
    if not compared:
        return Divergence(None, note=note or "no layer of the reference was found in the candidate")
    for i, c in enumerate(compared):
        if not c.ok:
            return Divergence(
                c.layer,
                first_max_abs=c.max_abs,
                first_candidate=c.candidate,
                upstream_equal=i,
                compared=compared,
                note=note,
            )
    return Divergence(None, compared=compared, note=note)


def locate(
    reference, candidate, batch: dict[str, np.ndarray], rtol: float, atol: float
) -> Divergence:
    """The first layer of ``reference`` (graph order) whose output differs in ``candidate``.

    ``reference``/``candidate``: ``KerasBackend`` or ``OnnxBackend``; ``batch``: input name ->
    array, a few rows (every row is run through both models once, eagerly for Keras).
    ``rtol``/``atol``: the same rule as the output comparison. Raises GraphkitError only for
    bad arguments; anything a model raises becomes ``Divergence.note``.
    """
    import time

    from graphkit.backends.base import Backend

    if not isinstance(reference, Backend) or not isinstance(candidate, Backend):
        raise GraphkitError("locate() takes two backends (graphkit.backends.open_backend)")
    if not isinstance(batch, dict):
        raise GraphkitError(
            f"locate(): batch must be a dict of input name -> array, got {type(batch).__name__}"
        )
    missing = sorted({s.name for b in (reference, candidate) for s in b.inputs} - set(batch))
    if missing:
        raise GraphkitError(
            f"locate(): the batch has no input {missing[0]!r} (it has: {', '.join(map(str, batch))})"
        )
    if not (rtol >= 0 and atol >= 0):
        raise GraphkitError(f"locate(): rtol and atol must be >= 0, got {rtol}, {atol}")
    start = time.perf_counter()
    try:
        result = _locate(reference, candidate, batch, float(rtol), float(atol))
    except GraphkitError as exc:  # a model the backends refuse to run: still a result
        result = Divergence(None, note=str(exc))
    except Exception as exc:  # an odd model: say so, never a traceback from here
        result = Divergence(None, note=f"locating failed ({one_line(exc)})")
    result.seconds = time.perf_counter() - start
    return result


def _locate(reference, candidate, batch, rtol, atol) -> Divergence:
    kinds = (reference.kind, candidate.kind)
    if kinds == ("onnx", "onnx"):
        return _onnx_onnx(reference, candidate, batch, rtol, atol)
    if kinds == ("keras", "keras"):
        ref, problem = _keras_entries(reference, batch)
        if problem:
            return Divergence(None, note=f"reference: {problem}")
        cand, problem = _keras_entries(candidate, batch)
        if problem:
            return Divergence(None, note=f"candidate: {problem}")
        pairs = _pairs_keras_keras(ref, cand)
        compared = [compare(r.label, c.label, r.value, c.value, rtol, atol) for r, c in pairs]
        return _verdict(compared)
    if kinds == ("keras", "onnx"):
        entries, problem = _keras_entries(reference, batch)
        if problem:
            return Divergence(None, note=f"reference: {problem}")
        pairs, problem = _pairs_keras_onnx(entries, candidate, batch)
        if problem:
            return Divergence(None, note=f"candidate: {problem}")
        compared = [compare(e.label, t, e.value, v, rtol, atol, onnx=t) for e, t, v in pairs]
        return _verdict(compared)
    if kinds == ("onnx", "keras"):
        entries, problem = _keras_entries(candidate, batch)
        if problem:
            return Divergence(None, note=f"candidate: {problem}")
        pairs, problem = _pairs_keras_onnx(entries, reference, batch)
        if problem:
            return Divergence(None, note=f"reference: {problem}")
        position = {}
        for i, node in enumerate(_onnx_proto(reference).graph.node):
            for out in node.output:
                position[out] = i
        pairs.sort(key=lambda p: position.get(p[1], len(position)))
        # the ONNX side is the reference (its values), reported under the Keras layer's name
        compared = [compare(e.label, e.label, v, e.value, rtol, atol, onnx=t) for e, t, v in pairs]
        return _verdict(compared)
    return Divergence(None, note=f"cannot compare layers of a {kinds[0]} and a {kinds[1]} model")
