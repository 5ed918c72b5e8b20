"""Every use of Keras' private API, in one place: a Keras upgrade touches this file only.

Keras 3 has no public way to read a Functional graph's nodes, a model's nested layers or
a tensor's producer; these are the attributes Keras 3.3 to 3.15 use for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def flatten_layers(layer, *, include_self: bool = False, recursive: bool = True) -> Iterator:
    """Every layer inside ``layer`` (nested models and sublayers of custom layers too)."""
    return layer._flatten_layers(include_self=include_self, recursive=recursive)


def nodes_by_depth(model) -> dict[int, list]:
    """A Functional model's own nodes by depth: 0 produces the outputs, inputs come last."""
    return model._nodes_by_depth


def nodes_inputs_first(model) -> list:
    """The model's own nodes, from the inputs towards the outputs."""
    depths = nodes_by_depth(model)
    return [node for depth in sorted(depths, reverse=True) for node in depths[depth]]


def producer(tensor) -> Any:
    """The operation (layer) whose call produced a symbolic KerasTensor."""
    return tensor._keras_history.operation


def inputs_struct(model) -> Any:
    """How a Functional model takes its inputs (a tensor, a list or a dict of them)."""
    return getattr(model, "_inputs_struct", None)


def outputs_struct(model) -> Any:
    return getattr(model, "_outputs_struct", None)


def functional_graph(model):
    """The Functional graph to read: a Sequential model's inner one, or the model itself."""
    import keras

    if isinstance(model, keras.Sequential):
        return model._functional
    return model


def functional_class() -> type:
    """Keras' Functional model class (plain ``keras.Model(inputs, outputs)`` builds one)."""
    from keras.src.models.functional import Functional

    return Functional


def operation_class(name: str) -> type | None:
    """Keras' own operation class called ``name`` (``NotEqual``, ``ExpandDims``...), if any."""
    try:
        from keras.src import ops
        from keras.src.ops.operation import Operation
    except ImportError:
        return None
    cls = getattr(ops, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, Operation) else None


def inbound_nodes(layer) -> list:
    """The nodes where ``layer`` was called (one per call site)."""
    return list(layer._inbound_nodes)


def input_layer_dtype(layer):
    """The dtype an InputLayer was declared with."""
    return layer._dtype


def sequential_layers_with_input(model) -> list:
    """A Sequential model's layer list, its InputLayer (if any) first."""
    return list(model._layers)
