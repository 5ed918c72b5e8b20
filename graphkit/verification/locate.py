"""Where two models part: the first layer, in the reference's graph order, whose output differs.

Each side gives the intermediate tensors it can expose, under a layer name:

- Keras: every node output of the model's Functional graph (a Sequential's inner one), from
  one eager call of an intermediate model (the reference is the eager call). A nested model is
  one layer (its output), not descended into.
- ONNX: tf2onnx names a node ``<layer>_<n>/<op>`` (``embedding_1/GatherV2``): a layer's output
  is the last tensor of its scope that something outside the scope reads (or a graph output),
  of the Keras output's shape. Those tensors become extra outputs of an in-memory copy.
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
            "max_abs": _json_float(self.max_abs),
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
            "first_max_abs": _json_float(self.first_max_abs),
            "upstream_equal": self.upstream_equal,
            "compared": [c.to_dict() for c in self.compared],
            "note": self.note,
            "line": self.line(),
            "seconds": round(self.seconds, 3),
        }


def _json_float(x):
    if x is None:
        return None
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf"
    return float(x)


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


@dataclass
class _Entry:
    """One exposed tensor: the layer name it is reported under, its key for matching."""

    label: str  # name, name[i], name@k
    layer: str  # the layer's own name
    call: int  # which call of the layer (0 for most)
    index: int  # which output of that call
    value: np.ndarray | None = None


def _keras_entries(backend, batch: dict[str, np.ndarray]) -> tuple[list[_Entry], str | None]:
    """Every layer output of a Keras backend's graph, in graph order, from one eager call."""
    import keras

    from graphkit import _keras_api
    from graphkit.backends.keras_backend import eager_call

    model = backend.model
    try:
        graph = _keras_api.functional_graph(model)
        inputs = list(graph.inputs)
        tensors, entries = [], []
        for node in _keras_api.nodes_inputs_first(graph):
            op = node.operation
            if node.is_input or op is None or isinstance(op, keras.layers.InputLayer):
                continue
            try:
                call = _keras_api.inbound_nodes(op).index(node)
            except ValueError:
                call = 0
            outs = list(node.outputs)
            for i, t in enumerate(outs):
                label = op.name + (f"[{i}]" if len(outs) > 1 else "") + (f"@{call}" if call else "")
                tensors.append(t)
                entries.append(_Entry(label, op.name, call, i))
    except Exception as exc:
        return [], f"cannot read the graph of {model.name!r} ({one_line(exc)})"
    if not entries:
        return [], f"{model.name!r} has no layers to compare"
    names = [s.name for s in backend.inputs]
    try:
        if [t.name for t in inputs] == names or len(inputs) != len(names):
            args = [batch[t.name] for t in inputs]
        else:
            args = [batch[n] for n in names]  # same order as model.inputs
    except KeyError as exc:
        return [], f"the batch has no input {exc.args[0]!r}"
    try:
        probe = keras.Model(inputs, tensors)
        values = eager_call(probe, args)
    except Exception as exc:
        return [], f"cannot run {model.name!r}'s intermediate layers ({one_line(exc)})"
    for entry, value in zip(entries, values):
        entry.value = value
    return entries, None


def _pairs_keras_keras(ref: list[_Entry], cand: list[_Entry]) -> list[tuple[_Entry, _Entry]]:
    by_key = {(e.layer, e.call, e.index): e for e in cand}
    layers = {e.layer for e in cand}
    pairs = []
    for e in ref:
        name = _match_name(e.layer, layers)
        if name is None:
            continue
        other = by_key.get((name, e.call, e.index))
        if other is not None:
            pairs.append((e, other))
    return pairs


# ---------------------------------------------------------------------------- ONNX side


def _onnx_proto(backend):
    """The backend's model, graph only (external data stays where it is)."""
    import onnx

    return onnx.load(str(backend.source), load_external_data=False)


def _scope_layers(proto, layer_names) -> dict[str, list[str]]:
    """Layer name -> the tensors tf2onnx made for its calls' outputs (candidates, in node order).

    A node ``scope/...`` belongs to the layer whose name is ``scope`` less a ``_<n>`` suffix
    (TensorFlow's name-scope numbering), else ``scope``. A scope's outputs are the tensors of
    its nodes read by a node of another scope, or graph outputs.
    """
    graph_outputs = {o.name for o in proto.graph.output}

    def layer_of(node_name: str) -> str | None:
        if "/" not in node_name:
            return None
        scope = node_name.split("/", 1)[0]
        m = _SUFFIX.match(scope)
        if m and m.group(1) in layer_names:
            return m.group(1)
        return scope if scope in layer_names else None

    def scope_of(node_name: str) -> str:
        return node_name.split("/", 1)[0] if "/" in node_name else ""

    producer_scope: dict[str, str] = {}
    for node in proto.graph.node:
        for out in node.output:
            producer_scope[out] = scope_of(node.name)
    external: set[str] = set()
    for node in proto.graph.node:
        here = scope_of(node.name)
        for name in node.input:
            if name in producer_scope and producer_scope[name] != here:
                external.add(name)
    result: dict[str, list[str]] = {}
    for node in proto.graph.node:
        layer = layer_of(node.name)
        if layer is None:
            continue
        for out in node.output:
            if out and (out in external or out in graph_outputs):
                result.setdefault(layer, []).append(out)
    return result


def _run_with_outputs(backend, proto, names: list[str], batch) -> tuple[dict, str | None]:
    """Run a copy of ``proto`` whose outputs are ``names`` (typed by shape inference)."""
    import onnx
    import onnxruntime as ort

    from graphkit.backends.onnx_backend import _as_dtype

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
            feed[s.name] = x if s.dtype == "string" else _as_dtype(x, s)
        values = session.run(wanted, feed)
    except Exception as exc:
        return {}, f"cannot run the ONNX model with its intermediate tensors ({one_line(exc)})"
    return dict(zip(wanted, values)), None


def _pairs_keras_onnx(entries: list[_Entry], onnx_backend, batch):
    """(keras entry, onnx tensor name, onnx value) for each Keras layer found in the ONNX graph."""
    proto = _onnx_proto(onnx_backend)
    # ONNX layer names, as a rewrite's name map sees them: every scope that names a layer
    scopes = set()
    for node in proto.graph.node:
        if "/" in node.name:
            scope = node.name.split("/", 1)[0]
            scopes.add(scope)
            m = _SUFFIX.match(scope)
            if m:
                scopes.add(m.group(1))
    wanted_layers = {}
    for e in entries:
        name = _match_name(e.layer, scopes)
        if name is not None:
            wanted_layers[e.label] = name
    by_layer = _scope_layers(proto, set(wanted_layers.values()))
    names = sorted({t for ts in by_layer.values() for t in ts})
    if not names:
        return [], "no ONNX node is named after a Keras layer (not a tf2onnx export?)"
    values, problem = _run_with_outputs(onnx_backend, proto, names, batch)
    if problem:
        return [], problem
    pairs = []
    for e in entries:
        layer = wanted_layers.get(e.label)
        if layer is None or e.value is None:
            continue
        fits = [
            t for t in by_layer.get(layer, []) if t in values and values[t].shape == e.value.shape
        ]
        if not fits:
            continue
        # one scope per call: the last fitting tensor of a scope is its output; a shared layer
        # has several scopes, so the closest of the last ones stands for this call
        last_per_scope: dict[str, str] = {}
        for t in fits:
            last_per_scope[t.split("/", 1)[0] if "/" in t else t] = t
        options = list(last_per_scope.values())
        if len(options) > 1:
            options.sort(key=lambda t: compare(e.label, t, e.value, values[t], 0, 0).max_abs)
        pairs.append((e, options[0], values[options[0]]))
    return pairs, None


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
