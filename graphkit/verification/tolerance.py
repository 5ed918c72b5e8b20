"""A tolerance the model earns: the float32 reference's own rounding error, measured in float64.

A fixed ONNX tolerance (``atol=1e-5``) hides a changed weight whose effect is 250 times what an
honest export's rounding gives. Instead, the reference runs once more as a float64 twin (same
architecture, weights cast to float64) on the first batch; per output, the float32 reference's
own error ``e_abs = max|ref32 - ref64|`` (and ``e_rel = e_abs / max|ref64|``) sets the tolerance:
``atol = max(K * e_abs, FLOOR_ATOL)``, ``rtol = max(K * e_rel, FLOOR_RTOL)``. An honest candidate
(another float32 computation of the same model) errs by about as much as the reference does;
a changed weight errs by far more. Where no float64 twin can be made (mixed precision, a layer
that casts to float32 itself, a custom layer that does not rebuild...), the functions return a
one-line reason and the caller keeps its fixed tolerances.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphkit.errors import one_line

# The candidate may err this many times the float32 reference's own error (measured on one
# batch; an honest ONNX export erred at most ~2x that on the examples, see the tests).
K = 16
# Floors near float32 epsilon (2**-23): outputs the reference computes exactly (a lookup)
# still admit a candidate's last-bit rounding.
FLOOR_ATOL = 2.0**-23
FLOOR_RTOL = 2.0**-23

# A float64 twin doubles the float weights in memory: above this it is not built.
MAX_TWIN_BYTES = 2**30

_HALF = ("float16", "bfloat16")


@dataclass(frozen=True)
class EarnedTolerance:
    """The tolerance of one output, earned from the reference's own float32 error.

    ``rtol``/``atol``: what the comparison uses (``|cand - ref| <= atol + rtol * |ref|``);
    ``e_abs``: ``max|ref32 - ref64|`` on the batch; ``e_rel``: ``e_abs / max|ref64|``;
    ``samples``: rows of the batch measured; ``source``: a phrase for the report.
    """

    rtol: float
    atol: float
    e_abs: float
    e_rel: float
    samples: int
    source: str


def float64_twin(model) -> Any:
    """A float64 copy of Keras ``model`` (same graph, weights cast), or a one-line reason.

    Rebuilt from the model's config with every float32 dtype policy (and float Input) made
    float64, under float64 Keras defaults (so that sublayers a custom layer creates itself
    are float64 too); where the whole config does not rebuild (a Lambda, refused by safe
    mode), layer by layer with ``clone_model`` (a Lambda keeps its Python function). Then
    weights are copied by order. Refused (a reason) for float16/bfloat16/mixed or quantized
    layers, weights whose float64 copy exceeds ``MAX_TWIN_BYTES``, models that do not rebuild, weights that do not line up, and twins in which some
    tensor is still float32 (a layer that casts to float32 itself).
    """
    from graphkit import _keras_api

    try:
        layers = list(_keras_api.flatten_layers(model, include_self=True))
    except Exception as exc:
        return f"its layers cannot be listed ({one_line(exc)})"
    for layer in layers:
        problem = _precision_problem(layer)
        if problem:
            return problem
    try:
        size = sum(8 * int(np.prod(w.shape)) for w in model.weights)
    except Exception as exc:
        return f"its weights cannot be listed ({one_line(exc)})"
    if size > MAX_TWIN_BYTES:
        return (
            f"its float64 copy would take {size / 2**30:.1f} GiB (limit {MAX_TWIN_BYTES / 2**30:g})"
        )
    problem = ""
    for build in (_from_edited_config, _cloned):
        with float64_defaults():
            twin, why = build(model)
        if twin is None:
            problem = why or problem  # the layer-by-layer route's reason names the layer
            continue
        why = _copy_weights(model, twin) or _float32_left(twin)
        if not why:
            return twin
        problem = why
    return problem


@contextmanager
def float64_defaults():
    """While active, Keras' global dtype policy and floatx are float64 (restored after)."""
    import keras

    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy("float64")
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def earn_tolerances(
    reference_backend, batch: dict[str, np.ndarray], reference_outputs: dict[str, np.ndarray]
) -> dict[str, EarnedTolerance] | str:
    """Per float output of ``reference_backend`` (a KerasBackend), the tolerance it earns on
    ``batch`` (the first batch, name -> array) given the float32 reference's outputs on it
    (name -> array); or a one-line reason why none is earned (then keep the fixed ones).

    Integer/bool outputs are left out of the dict (they compare exactly anyway). Never raises
    for an odd model: every failure becomes the reason.
    """
    try:
        return _earn(reference_backend, batch, reference_outputs)
    except Exception as exc:  # a hostile model must not stop verify: fall back, say why
        return f"the float64 run failed ({one_line(exc)})"


def _earn(reference_backend, batch, reference_outputs) -> dict[str, EarnedTolerance] | str:
    from graphkit.backends.keras_backend import eager_call

    names = list(reference_backend.output_names)
    floats = {}
    for name in names:
        if name not in reference_outputs:
            return f"no reference output {name!r} to measure"
        ref32 = np.asarray(reference_outputs[name])
        if str(ref32.dtype) in _HALF:
            return f"output {name!r} is {ref32.dtype} (a float16 model has no float64 twin)"
        if ref32.dtype.kind == "f":
            floats[name] = ref32
    if not floats:
        return "no float output (integer outputs compare exactly)"
    if any(getattr(x, "stateful", False) for x in _flat(reference_backend.model)):
        return "a stateful layer (a second run would advance its states)"
    twin = float64_twin(reference_backend.model)
    if isinstance(twin, str):
        return f"no float64 twin of the model: {twin}"
    args = []
    for spec in reference_backend.inputs:
        x = np.asarray(batch[spec.name])
        args.append(x.astype("float64") if x.dtype.kind == "f" else x)
    with float64_defaults():  # what a layer makes at call time (floatx constants) too
        outs = eager_call(twin, args)
    if len(outs) != len(names):
        return f"the float64 twin gives {len(outs)} outputs instead of {len(names)}"
    rows = len(args[0]) if args and np.ndim(args[0]) else 0
    earned: dict[str, EarnedTolerance] = {}
    for name, ref64 in zip(names, outs):
        if name not in floats:
            continue
        ref32 = floats[name]
        if ref64.dtype != np.float64:
            return f"output {name!r} of the float64 twin is {ref64.dtype}, not float64"
        if ref64.shape != ref32.shape:
            return f"output {name!r} of the float64 twin has shape {ref64.shape}, not {ref32.shape}"
        r32 = ref32.astype("float64")
        finite = np.isfinite(r32) & np.isfinite(ref64)
        if not np.array_equal(np.isfinite(r32), np.isfinite(ref64)):
            return f"output {name!r}: float32 and float64 runs disagree on NaN/inf"
        if not finite.any():
            e_abs, scale = 0.0, 0.0
        else:
            e_abs = float(np.max(np.abs(r32[finite] - ref64[finite])))
            scale = float(np.max(np.abs(ref64[finite])))
        e_rel = e_abs / scale if scale > 0 else 0.0
        earned[name] = tolerance_from(e_abs, e_rel, rows)
    return earned


def tolerance_from(e_abs: float, e_rel: float, samples: int) -> EarnedTolerance:
    """The tolerance that an error of ``e_abs`` (``e_rel``) measured on ``samples`` earns."""
    atol = max(K * e_abs, FLOOR_ATOL)
    rtol = max(K * e_rel, FLOOR_RTOL)
    on = f"on {samples} sample{'' if samples == 1 else 's'}"
    if K * e_abs < FLOOR_ATOL:
        why = f"floor {FLOOR_ATOL:.2g} (the float32 reference's own error {e_abs:.2g} is below it"
        source = f"earned: {why} {on}, float64 run)"
    else:
        source = f"earned: {K}x the float32 reference's own error {e_abs:.2g} {on} (float64 run)"
    return EarnedTolerance(rtol, atol, e_abs, e_rel, samples, source)


def _flat(model) -> list:
    from graphkit import _keras_api

    try:
        return list(_keras_api.flatten_layers(model))
    except Exception:
        return []


def _precision_problem(layer) -> str | None:
    """Why ``layer`` cannot be computed in float64 by a config edit, or None."""
    policy = getattr(layer, "dtype_policy", None)
    if policy is None:
        return None
    label = f"layer {layer.name!r} ({type(layer).__name__})"
    if getattr(policy, "quantization_mode", None):
        return f"{label} is quantized ({policy.name})"
    for attr in ("compute_dtype", "variable_dtype"):
        if str(getattr(policy, attr, "")) in _HALF:
            return f"{label} computes in {policy.name} (mixed or half precision)"
    return None


_ZEROS = {
    "module": "keras.initializers",
    "class_name": "Zeros",
    "config": {},
    "registered_name": None,
}


def _is_keras_initializer(value) -> bool:
    return (
        isinstance(value, dict)
        and value.get("module") == "keras.initializers"
        and isinstance(value.get("class_name"), str)
    )


def _edit_dtypes(obj):
    """A copy of a Keras config with float32 dtype policies and float32 dtypes made float64."""
    if isinstance(obj, dict):
        if str(obj.get("class_name", "")).endswith("DTypePolicy") and isinstance(
            obj.get("config"), dict
        ):
            if obj["config"].get("name") == "float32":
                return {**obj, "config": {**obj["config"], "name": "float64"}}
            return obj
        out = {}
        for key, value in obj.items():
            if key == "dtype" and value == "float32":
                out[key] = "float64"
            elif key == "compile_config":
                continue  # the twin is only called, never trained
            elif key.endswith("_initializer") and _is_keras_initializer(value):
                # every weight is copied over the twin's at once: drawing random values
                # for them first (a large table: a tenth of a second) is wasted
                out[key] = _ZEROS
            else:
                out[key] = _edit_dtypes(value)
        return out
    if isinstance(obj, list):
        return [_edit_dtypes(v) for v in obj]
    return obj


def _from_edited_config(model) -> tuple[Any, str]:
    """The twin rebuilt from ``model``'s edited config (safe mode), or (None, reason)."""
    import keras

    try:
        config = keras.saving.serialize_keras_object(model)
    except Exception as exc:
        return None, f"its config cannot be read ({one_line(exc)})"
    try:
        twin = keras.saving.deserialize_keras_object(_edit_dtypes(config))
    except Exception as exc:
        return None, f"it does not rebuild from its config in float64 ({one_line(exc)})"
    if not isinstance(twin, keras.Model) or not getattr(twin, "inputs", None):
        return None, f"its config rebuilds a {type(twin).__name__} without inputs"
    return twin, ""


def _cloned(model) -> tuple[Any, str]:
    """The twin rebuilt layer by layer (``clone_model``), or (None, reason)."""
    import keras

    from graphkit.engine import is_graph_model

    def clone_layer(layer):
        if is_graph_model(layer):
            inner, why = _cloned(layer)
            if inner is None:
                raise ValueError(why)
            return inner
        if type(layer) is keras.layers.Lambda:  # its function as is: nothing is unmarshalled
            return keras.layers.Lambda(
                layer.function,
                output_shape=layer._output_shape,
                mask=layer.mask,
                arguments=layer.arguments,
                name=layer.name,
                dtype="float64",
            )
        try:
            return layer.__class__.from_config(_edit_dtypes(layer.get_config()))
        except Exception as exc:  # name the layer: Keras' message often does not
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}): {one_line(exc)}"
            ) from exc

    if not is_graph_model(model):
        return None, ""  # a Functional subclass: only its own config can rebuild it

    def as_float64(t):
        dtype = "float64" if "float" in str(t.dtype) else t.dtype
        return keras.Input(batch_shape=tuple(t.shape), dtype=dtype, name=t.name)

    try:
        inputs = None
        if isinstance(model, keras.Sequential):
            if model.inputs:
                inputs = as_float64(model.inputs[0])
        else:
            inputs = keras.tree.map_structure(as_float64, model.input)
        twin = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
    except Exception as exc:
        return None, f"it does not rebuild in float64 ({one_line(exc, with_type=False)})"
    return twin, ""


def _copy_weights(model, twin) -> str | None:
    """Copy ``model``'s weights into ``twin`` by order, float ones cast to float64."""
    import keras

    try:
        source, target = list(model.weights), list(twin.weights)
    except Exception as exc:
        return f"its weights cannot be listed ({one_line(exc)})"
    if len(source) != len(target):
        return f"the rebuilt model has {len(target)} weights, the model {len(source)}"
    for a, b in zip(source, target):
        if tuple(a.shape) != tuple(b.shape):
            return (
                f"weight {getattr(a, 'path', a.name)!r} has shape {tuple(a.shape)} but the "
                f"rebuilt model's {getattr(b, 'path', b.name)!r} has {tuple(b.shape)}"
            )
        if "float" in str(a.dtype) and str(b.dtype) != "float64":
            return f"weight {getattr(b, 'path', b.name)!r} of the rebuilt model is {b.dtype}"
        try:  # cast by the backend: no host copies of a large table
            b.assign(keras.ops.cast(getattr(a, "value", a), str(b.dtype)))
        except Exception as exc:
            return f"weight {getattr(a, 'path', a.name)!r} cannot be copied ({one_line(exc)})"
    return None


def _float32_left(twin) -> str | None:
    """A layer of ``twin`` that still computes or outputs float32 (it casts itself), or None."""
    import keras

    from graphkit import _keras_api
    from graphkit.engine import is_graph_model

    for layer in _keras_api.flatten_layers(twin, include_self=True):
        if is_graph_model(layer) or isinstance(layer, keras.layers.InputLayer):
            continue  # computes nothing itself (inputs are checked below)
        if str(getattr(layer, "compute_dtype", "")) == "float32":
            return f"layer {layer.name!r} ({type(layer).__name__}) still computes in float32"
    for t in twin.inputs:
        if str(t.dtype) in ("float32", *_HALF):
            return f"input {t.name!r} of the float64 twin is {t.dtype}"

    def outputs_of(model, seen) -> str | None:
        if id(model) in seen:
            return None
        seen.add(id(model))
        try:
            graph = _keras_api.functional_graph(model)
            nodes = _keras_api.nodes_inputs_first(graph)
        except Exception:
            return None  # no graph to read: the output dtypes are checked after the run
        for node in nodes:
            op = node.operation
            if node.is_input or op is None:
                continue
            for t in node.outputs:
                if str(getattr(t, "dtype", "")) in ("float32", *_HALF):
                    return (
                        f"layer {op.name!r} ({type(op).__name__}) outputs {t.dtype} in the "
                        "float64 twin (it casts to float32 itself)"
                    )
            if is_graph_model(op):
                found = outputs_of(op, seen)
                if found:
                    return found
        return None

    return outputs_of(twin, set())
