"""Running Keras models: the eager call is the reference; a traced function only where it agrees."""

from __future__ import annotations

import numpy as np

from graphkit import _keras_api
from graphkit.backends.base import Backend, InputSpec
from graphkit.errors import GraphkitError, one_line

# smallest_vocab: re-exported for graphkit.backends (its public name there)
from graphkit.model_facts import output_names, smallest_vocab  # noqa: F401


def _np_dtype(dtype) -> str:
    import keras

    return keras.backend.standardize_dtype(dtype)


def _index_consumers(model) -> dict[int, tuple[int, bool]]:
    """For each model input (by position): (vocab, mask_zero) of the layer reading it as indices.

    Which layers read indices, and their range, comes from the rule registry
    (``graphkit.rules.index_range``): a new rule's anchor is found here without a change.
    """
    import keras

    from graphkit.engine import is_graph_model
    from graphkit.rules import index_range

    result: dict[int, tuple[int, bool]] = {}

    def note(pos, found):
        vocab, mask = found
        if pos in result:
            old_vocab, old_mask = result[pos]
            vocab, mask = min(vocab, old_vocab), mask or old_mask
        result[pos] = (vocab, mask)

    def visit(m, positions: dict[int, int]):
        """positions: id(input tensor of m) -> position among the top model's inputs."""
        if isinstance(m, keras.Sequential):
            layers = m.layers
            if layers and m.inputs and id(m.inputs[0]) in positions:
                first = layers[0]
                found = index_range(first)
                if found is not None:
                    note(positions[id(m.inputs[0])], found)
                elif is_graph_model(first):
                    visit(first, {id(first.inputs[0]): positions[id(m.inputs[0])]})
            return
        for nodes in _keras_api.nodes_by_depth(m).values():
            for node in nodes:
                op = node.operation
                if op is None or node.is_input:
                    continue
                tensors = list(node.input_tensors)
                if not tensors or id(tensors[0]) not in positions:
                    continue
                pos = positions[id(tensors[0])]
                found = index_range(op)
                if found is not None:
                    note(pos, found)
                elif is_graph_model(op) and op.inputs:
                    inner = {}
                    for j, t in enumerate(tensors):
                        if j < len(op.inputs) and id(t) in positions:
                            inner[id(op.inputs[j])] = positions[id(t)]
                    visit(op, inner)

    if getattr(model, "inputs", None):
        try:
            visit(model, {id(t): i for i, t in enumerate(model.inputs)})
        except Exception:
            pass  # best effort: unknown structures fall back to the model-wide vocabulary
    return result


def model_feed(model, args: list):
    """Arrange per-input values (in ``model.inputs`` order) the way the model is called."""
    struct = _keras_api.inputs_struct(model)
    if isinstance(struct, dict):
        return {t.name: a for t, a in zip(model.inputs, args)}
    if isinstance(struct, (list, tuple)) or len(args) != 1:
        return list(args)
    return args[0]


def serving_function(model):
    """A ``tf.function`` over ``model`` with an input signature from ``model.inputs``.

    Returns ``(function, specs)``; the function takes one tensor per input, in order, and
    returns a list of outputs. Used to run Keras models and to export them with tf2onnx.
    """
    import keras
    import tensorflow as tf

    if not getattr(model, "inputs", None):
        raise GraphkitError(
            f"model {model.name!r} has no defined inputs; build it on an Input first"
        )
    specs = [tf.TensorSpec(tuple(t.shape), t.dtype, name=t.name) for t in model.inputs]
    flatten = keras.tree.flatten  # orders dict outputs by key, as ``model.outputs`` does

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        out = model(model_feed(model, list(args)), training=False)
        return list(flatten(out))

    return serve, specs


def stateless_serving_function(model):
    """Like ``serving_function``, but the model's variables are inputs of the function too
    (``model.stateless_call``), after the model's own inputs: tracing it puts no weight in
    the graph. Returns ``(function, specs, variables)``, variables in the specs' order."""
    import keras
    import tensorflow as tf

    if not getattr(model, "inputs", None):
        raise GraphkitError(
            f"model {model.name!r} has no defined inputs; build it on an Input first"
        )
    specs = [tf.TensorSpec(tuple(t.shape), t.dtype, name=t.name) for t in model.inputs]
    trainable, frozen = list(model.trainable_variables), list(model.non_trainable_variables)
    variables = trainable + frozen
    taken = {s.name for s in specs}
    names = []
    for i in range(len(variables)):
        name, k = f"graphkit_weight_{i}", 0
        while name in taken:
            k += 1
            name = f"graphkit_weight_{i}_{k}"
        taken.add(name)
        names.append(name)
    var_specs = [tf.TensorSpec(tuple(v.shape), v.dtype, name=n) for v, n in zip(variables, names)]
    flatten = keras.tree.flatten
    n_in, n_tr = len(specs), len(trainable)

    @tf.function(input_signature=specs + var_specs, autograph=False)
    def serve(*args):
        xs, tv, ntv = args[:n_in], args[n_in : n_in + n_tr], args[n_in + n_tr :]
        out, _ = model.stateless_call(
            list(tv), list(ntv), model_feed(model, list(xs)), training=False
        )
        return list(flatten(out))

    return serve, specs + var_specs, variables


# The traced function must agree with the eager call to within this on the probe batch.
TRACE_TOLERANCE = (1e-5, 1e-6)  # (rtol, atol)
TRACE_TOLERANCE_HALF = (1e-3, 1e-3)
PROBE_ROWS = 8  # rows of the first batch the check runs both ways (adjusted off the lengths)


def eager_call(model, args: list) -> list[np.ndarray]:
    """The reference: the model's eager call ``model(x)``, outputs in ``model.outputs`` order."""
    import keras

    out = model(model_feed(model, list(args)), training=False)
    return [np.asarray(o) for o in keras.tree.flatten(out)]


def probe_batch(args: list[np.ndarray], specs: list[InputSpec]) -> list[np.ndarray]:
    """``args`` with a batch size that differs from every variable-axis length.

    A batch as long as its sequences hides bugs that confuse the two axes (Keras 3.15's
    TimeDistributed maps over the batch instead of time when traced): the trace is checked
    on such a batch. Rows are repeated or dropped; nothing else changes.
    """
    if any(spec.shape and spec.shape[0] is not None for spec in specs):
        return list(args)  # a fixed batch size: nothing to vary
    # A few rows are enough to check what the trace computes, and keep the eager call cheap.
    n = min(len(args[0]), PROBE_ROWS)
    lengths = {
        a.shape[k]
        for spec, a in zip(specs, args)
        for k, d in enumerate(spec.shape)
        if k > 0 and d is None and k < a.ndim
    }
    size = n
    while size in lengths:
        size += 1
    rows = np.arange(size) % n
    return [a[rows] for a in args]


def _disagreement(reference: list[np.ndarray], traced: list[np.ndarray], tol) -> str | None:
    """Why ``traced`` does not match ``reference`` (shapes, then values), or None."""
    if len(reference) != len(traced):
        return f"{len(traced)} outputs instead of {len(reference)}"
    rtol, atol = tol
    for i, (r, t) in enumerate(zip(reference, traced)):
        if r.shape != t.shape:
            return f"output {i} has shape {t.shape} instead of {r.shape}"
        if r.dtype != t.dtype:
            return f"output {i} has dtype {t.dtype} instead of {r.dtype}"
        if r.dtype.kind in "fc":
            if not np.allclose(t, r, rtol=rtol, atol=atol, equal_nan=True):
                if not np.array_equal(np.isnan(r), np.isnan(t)):
                    return f"output {i} has NaN where the other has a number"
                worst = float(np.nanmax(np.abs(t.astype("float64") - r.astype("float64"))))
                return f"output {i} differs by up to {worst:.3g}"
        elif not np.array_equal(r, t):
            return f"output {i} differs"
    return None


def locate_divergence(model, args: list[np.ndarray], tol) -> str | None:
    """The first layer (in graph order) whose traced output differs from its eager output.

    Traces models made of the first k intermediate tensors of ``model``'s graph and bisects
    on k. Returns ``"'name' (Class)"``, or None where the model's graph cannot be read.
    """
    import keras
    import tensorflow as tf

    try:
        graph = _keras_api.functional_graph(model)
        tensors, owners = [], []
        for node in _keras_api.nodes_inputs_first(graph):
            op = node.operation
            if node.is_input or op is None or isinstance(op, keras.layers.InputLayer):
                continue
            for t in node.outputs:
                tensors.append(t)
                owners.append(op)
        inputs = list(graph.inputs)
    except Exception:
        return None
    if not tensors:
        return None
    specs = [tf.TensorSpec(tuple(t.shape), t.dtype) for t in inputs]

    def differs(k: int) -> bool:
        probe = keras.Model(inputs, tensors[:k])
        fn = tf.function(
            lambda *a: keras.tree.flatten(probe(list(a), training=False)),
            input_signature=specs,
            autograph=False,
        )
        try:
            want = eager_call(probe, args)
            got = [np.asarray(o) for o in fn(*args)]
        except Exception:
            return True
        return _disagreement(want, got, tol) is not None

    try:
        lo, hi = 1, len(tensors)
        if not differs(hi) or differs(1):  # none, or even the first layer: nothing to name
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if differs(mid):
                hi = mid
            else:
                lo = mid + 1
    except Exception:
        return None
    op = owners[lo - 1]
    return f"{op.name!r} ({type(op).__name__})"


class KerasBackend(Backend):
    """Runs a Keras model so that it computes what its eager call ``model(x)`` computes.

    A traced ``tf.function`` is ~20x faster than the eager call, but Keras layers can be
    wrong when traced (Keras 3.15's TimeDistributed with an unknown time axis). So the first
    batch is run both ways, on a probe batch whose size differs from every variable length
    (shapes and values compared); the trace is used only if it agrees, otherwise the model
    runs eagerly and ``notes`` says why, naming the first layer that disagrees.
    """

    kind = "keras"

    def __init__(self, model, source: str | None = None):
        import keras

        from graphkit.subclassed import functional_view

        if isinstance(model, keras.Model):
            model = functional_view(model, source)  # a subclassed model: its built shape
        if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
            raise GraphkitError(
                f"{source or 'model'}: the model has no defined inputs (build it first)"
            )
        self.model = model
        self.source = source or f"<keras model {model.name!r}>"
        from graphkit.backends.dataflow import input_specs, trace_dataflow

        self._fn = None
        self.dataflow = trace_dataflow(model, self._callable())
        fallback = _index_consumers(model) if self.dataflow.error is not None else {}
        self.inputs = input_specs(model, self.dataflow, fallback)
        self.output_names = output_names(model)
        self.half_precision = any(
            str(getattr(layer, "compute_dtype", "")) in ("float16", "bfloat16")
            for layer in _keras_api.flatten_layers(model, include_self=True)
        )
        self.mode: str | None = None  # "traced" or "eager", chosen on the first batch
        self.notes: list[str] = []
        from graphkit.subclassed import view_note

        if view_note(model):
            self.notes.append(view_note(model))

    def _callable(self):
        if self._fn is None:
            self._fn, _ = serving_function(self.model)
        return self._fn

    def traced(self, args: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._callable()(*args)]

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = [batch[s.name] for s in self.inputs]
        if self.mode is None:
            self.choose_mode(args)
        if self.mode == "eager":
            return eager_call(self.model, args)
        return self.traced(args)

    def shape_problem(self, shapes: dict[str, tuple]) -> str | None:
        """Keras' shape rules (each layer's ``compute_output_spec``) on inputs of ``shapes``:
        a valid convolution or pooling longer than its input says "Computed output size
        would be zero or negative"; the layer is named."""
        import keras

        args = [keras.KerasTensor(shapes[s.name], dtype=s.dtype) for s in self.inputs]
        failed: list = []
        try:
            outputs = _keras_api.shape_outputs(self.model, args, failed)
        except Exception as exc:
            at = f"layer {failed[-1].name!r} ({type(failed[-1]).__name__}): " if failed else ""
            return f"{at}{one_line(exc, with_type=False)}"
        for name, out in zip(self.output_names, keras.tree.flatten(outputs)):
            if 0 in tuple(getattr(out, "shape", ())):
                return f"output {name!r} would be empty (shape {tuple(out.shape)})"
        return None

    def trial(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The eager call on ``batch`` (the reference); a model with stateful layers is not
        run (that would advance its states): an empty list."""
        if any(getattr(x, "stateful", False) for x in _keras_api.flatten_layers(self.model)):
            return []
        return eager_call(self.model, [batch[s.name] for s in self.inputs])

    def choose_mode(self, args: list[np.ndarray]) -> str:
        """Check the traced function against the eager call on a probe of ``args``."""
        stateful = [
            layer.name
            for layer in _keras_api.flatten_layers(self.model)
            if getattr(layer, "stateful", False)
        ]
        if stateful:  # checking would advance their states twice
            self.mode = "eager"
            self.notes.append(
                f"{self.source}: stateful layer {stateful[0]!r}: ran the model eagerly, "
                "without checking its traced function (that would advance the states)"
            )
            return self.mode
        probe = probe_batch(args, self.inputs)
        reference = eager_call(self.model, probe)  # a failure here is the model's own
        tol = TRACE_TOLERANCE_HALF if self.half_precision else TRACE_TOLERANCE
        try:
            problem = _disagreement(reference, self.traced(probe), tol)
        except Exception as exc:
            problem = f"it fails ({one_line(exc)})"
        if problem is None:
            self.mode = "traced"
            return self.mode
        self.mode = "eager"
        where = locate_divergence(self.model, probe, tol)
        at = f" at layer {where}" if where else ""
        shapes = ["x".join(str(d) for d in np.shape(x)) for x in probe]
        shape = (
            f"a {shapes[0]} batch"
            if len(set(shapes)) == 1
            else "a batch of "
            + ", ".join(f"{spec.name} {s}" for spec, s in zip(self.inputs, shapes))
        )
        self.notes.append(
            f"{self.source}: Keras' traced function disagrees with the eager call{at} "
            f"({problem}, on {shape}); ran it eagerly (slower)"
        )
        return self.mode
