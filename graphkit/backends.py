"""Backends that run a model batch by batch: Keras (.keras/.h5/in-memory) and ONNX (onnxruntime).

``verify``, ``export`` and ``bench`` only talk to this interface: a backend has a
signature (named inputs with shape and dtype, and what index range each integer
input takes), output names, and ``run(batch) -> list of arrays``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass
class InputSpec:
    """One model input. ``vocab``/``mask_zero`` are set where an Embedding or OneHot reads it."""

    name: str
    shape: tuple  # with None for dynamic axes; the first axis is the batch
    dtype: str  # numpy dtype name
    vocab: int | None = None
    mask_zero: bool = False

    @property
    def is_index(self) -> bool:
        return self.vocab is not None

    def describe(self) -> str:
        shape = "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(self.shape)) + ")"
        extra = f", indices in [0, {self.vocab})" if self.vocab else ""
        return f"{self.name} {shape} {self.dtype}{extra}"


class Backend:
    kind: str = "?"
    source: str = "?"
    half_precision: bool = (
        False  # computes in float16/bfloat16 somewhere (looser default tolerance)
    )
    inputs: list[InputSpec]
    output_names: list[str]

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


# ---------------------------------------------------------------- Keras


def _np_dtype(dtype) -> str:
    import keras

    return keras.backend.standardize_dtype(dtype)


def _index_consumers(model) -> dict[int, tuple[int, bool]]:
    """For each model input (by position): (vocab, mask_zero) of the Embedding/OneHot reading it."""
    import keras

    from graphkit.engine import is_graph_model
    from graphkit.layers import OneHot

    result: dict[int, tuple[int, bool]] = {}

    def note(pos, layer):
        vocab, mask = layer.input_dim, bool(layer.mask_zero)
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
                if isinstance(first, (keras.layers.Embedding, OneHot)):
                    note(positions[id(m.inputs[0])], first)
                elif is_graph_model(first):
                    visit(first, {id(first.inputs[0]): positions[id(m.inputs[0])]})
            return
        for nodes in m._nodes_by_depth.values():
            for node in nodes:
                op = node.operation
                if op is None or node.is_input:
                    continue
                tensors = list(node.input_tensors)
                if not tensors or id(tensors[0]) not in positions:
                    continue
                pos = positions[id(tensors[0])]
                if isinstance(op, (keras.layers.Embedding, OneHot)):
                    note(pos, op)
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


def smallest_vocab(model) -> tuple[int | None, bool]:
    """Smallest input_dim of the model's Embedding/OneHot layers, and whether any masks zeros."""
    import keras

    from graphkit.layers import OneHot

    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (keras.layers.Embedding, OneHot))
    ]
    if not layers:
        return None, False
    return min(layer.input_dim for layer in layers), any(layer.mask_zero for layer in layers)


def model_feed(model, args: list):
    """Arrange per-input values (in ``model.inputs`` order) the way the model is called."""
    if len(args) == 1:
        return args[0]
    if isinstance(getattr(model, "_inputs_struct", None), dict):
        return {t.name: a for t, a in zip(model.inputs, args)}
    return list(args)


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


class KerasBackend(Backend):
    kind = "keras"

    def __init__(self, model, source: str | None = None):
        import keras

        if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
            raise GraphkitError(
                f"{source or 'model'}: the model has no defined inputs (build it first)"
            )
        self.model = model
        self.source = source or f"<keras model {model.name!r}>"
        consumers = _index_consumers(model)
        fallback_vocab, fallback_mask = smallest_vocab(model)
        self.inputs = []
        for i, t in enumerate(model.inputs):
            dtype = _np_dtype(t.dtype)
            vocab, mask = consumers.get(i, (None, False))
            if vocab is None and ("int" in dtype) and fallback_vocab is not None:
                vocab, mask = fallback_vocab, fallback_mask  # e.g. read inside a custom layer
            self.inputs.append(InputSpec(t.name, tuple(t.shape), dtype, vocab, mask))
        from graphkit.inspect import output_names

        self.output_names = output_names(model)
        self.half_precision = any(
            str(getattr(layer, "compute_dtype", "")) in ("float16", "bfloat16")
            for layer in model._flatten_layers(include_self=True, recursive=True)
        )
        self._fn = None

    def _callable(self):
        if self._fn is None:
            self._fn, _ = serving_function(self.model)
        return self._fn

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self._callable()(*[batch[s.name] for s in self.inputs])
        return [np.asarray(o) for o in outs]


# ---------------------------------------------------------------- ONNX


def check_file_exists(path: str | os.PathLike, what: str) -> Path:
    """A readable, non-empty regular file, or one GraphkitError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise GraphkitError(f"{path}: no such file")
    if path.is_dir():
        raise GraphkitError(f"{path}: is a directory, not {what}")
    if path.stat().st_size == 0:
        raise GraphkitError(f"{path}: empty file, not {what}")
    return path


def check_onnx_file(path: str | os.PathLike):
    """Load and fully check an ONNX file; one clear GraphkitError for anything wrong."""
    path = check_file_exists(path, "an ONNX model")
    import onnx

    try:
        # Checks external-data locations too: refuses paths outside the model's folder.
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "external" in text.lower() or "data file" in text.lower() or "location" in text.lower():
            raise GraphkitError(f"{path}: refused external data: {text[:300]}") from exc
        raise GraphkitError(f"{path}: not a valid ONNX model ({text[:300]})") from exc
    if not model.graph.node and not model.graph.output:
        raise GraphkitError(f"{path}: not a valid ONNX model (empty graph)")
    return model


def _onnx_index_info(model) -> dict[str, tuple[int, bool]]:
    """Vocabulary of each graph input from the Gather/OneHot that reads it (through Cast & co)."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    producers_of = {}
    for node in graph.node:
        for inp in node.input:
            producers_of.setdefault(inp, []).append(node)

    def const_array(name):
        t = inits.get(name) or consts.get(name)
        return None if t is None else numpy_helper.to_array(t)

    # Shape changes, casts, and the index arithmetic Keras adds (negative-index wrapping).
    passthrough = {
        "Cast",
        "Identity",
        "Unsqueeze",
        "Squeeze",
        "Reshape",
        "Flatten",
        "Transpose",
        "Less",
        "Not",
        "Where",
        "Add",
        "Mul",
        "Sub",
        "Max",
        "Min",
        "Clip",
    }
    info: dict[str, tuple[int, bool]] = {}
    for gi in graph.input:
        if gi.name in inits:
            continue
        vocab, mask = None, False
        frontier, seen = [gi.name], set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            for node in producers_of.get(name, []):
                if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name:
                    table = inits.get(node.input[0])
                    if table is not None and table.dims:
                        vocab = min(vocab or table.dims[0], table.dims[0])
                elif node.op_type == "OneHot" and node.input[0] == name:
                    depth = const_array(node.input[1])
                    if depth is not None:
                        d = int(np.asarray(depth).reshape(-1)[0])
                        vocab = min(vocab or d, d)
                elif node.op_type in ("Equal", "NotEqual", "Greater"):
                    other = [i for i in node.input if i != name]
                    val = const_array(other[0]) if other else None
                    if val is not None and np.all(np.asarray(val) == 0):
                        mask = True
                elif node.op_type in passthrough:
                    frontier.extend(node.output)
        if vocab is not None:
            info[gi.name] = (vocab, mask)
    return info


class OnnxBackend(Backend):
    kind = "onnx"

    def __init__(self, path: str | os.PathLike, provider: str = "cpu", model=None):
        if provider not in PROVIDERS:
            raise GraphkitError(f"--provider {provider!r}: expected one of: {', '.join(PROVIDERS)}")
        self.source = str(path)
        proto = model if model is not None else check_onnx_file(path)
        import onnxruntime as ort

        wanted = PROVIDERS[provider]
        available = ort.get_available_providers()
        if wanted not in available:
            raise GraphkitError(
                f"{wanted} is not available in this onnxruntime ({', '.join(available)}); "
                "install the gpu extra: pip uninstall onnxruntime && pip install 'graphkit[gpu]'"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=[wanted])
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GraphkitError(f"{path}: onnxruntime cannot load it ({text[:300]})") from exc
        if provider == "cuda" and wanted not in self.session.get_providers():
            raise GraphkitError(f"{path}: onnxruntime did not enable {wanted} for this session")
        self.provider = provider
        index = _onnx_index_info(proto)
        all_vocab = [v for v, _ in index.values()]
        self.inputs = []
        for i in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            dtype = _ort_dtype(i.type)
            vocab, mask = index.get(i.name, (None, False))
            if vocab is None and "int" in dtype and all_vocab:
                vocab, mask = min(all_vocab), any(m for _, m in index.values())
            self.inputs.append(InputSpec(i.name, shape, dtype, vocab, mask))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.half_precision = _onnx_uses_half(proto)

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {
            s.name: batch[s.name]
            if s.dtype == "string"
            else np.ascontiguousarray(batch[s.name], dtype=s.dtype)
            for s in self.inputs
        }
        return list(self.session.run(None, feed))


def _onnx_uses_half(proto) -> bool:
    from onnx import TensorProto

    half = {TensorProto.FLOAT16, TensorProto.BFLOAT16}
    if any(t.data_type in half for t in proto.graph.initializer):
        return True
    for node in proto.graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i in half:
                    return True
    return False


def _ort_dtype(type_str: str) -> str:
    mapping = {
        "tensor(float)": "float32",
        "tensor(double)": "float64",
        "tensor(float16)": "float16",
        "tensor(int32)": "int32",
        "tensor(int64)": "int64",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(bool)": "bool",
        "tensor(string)": "string",
    }
    return mapping.get(type_str, type_str)


# ---------------------------------------------------------------- opening


def open_backend(
    source: Any, *, provider: str = "cpu", unsafe: bool = False, imports=()
) -> Backend:
    """A backend for a path (.keras, .h5, .onnx) or an in-memory Keras model."""
    if isinstance(source, Backend):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() == ".onnx":
            return OnnxBackend(path, provider=provider)
        from graphkit.io import load_model

        return KerasBackend(
            load_model(path, unsafe=unsafe, imports=imports, compile=False), str(path)
        )
    return KerasBackend(source)
