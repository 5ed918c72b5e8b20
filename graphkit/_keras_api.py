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


def nodes_in(model, layer) -> list:
    """The nodes where the graph model ``model`` calls ``layer`` (not other models' calls);
    none where ``model`` has no graph (a subclassed model)."""
    return [
        node
        for nodes in getattr(model, "_nodes_by_depth", {}).values()
        for node in nodes
        if node.operation is layer
    ]


def input_layer_dtype(layer):
    """The dtype an InputLayer was declared with."""
    return layer._dtype


def sequential_layers_with_input(model) -> list:
    """A Sequential model's layer list, its InputLayer (if any) first."""
    return list(model._layers)


def lambda_globals(names: dict, originals=()):
    """While active, Lambda functions that Keras unmarshals (``--unsafe`` only) see ``names``
    as globals where their own globals lack them (Keras 3 gives them the globals of its
    ``python_utils`` module, where a Keras 2 Lambda's ``K`` does not exist). A function
    whose code is one of ``originals`` (functions) gets that function's globals instead:
    a copy of an in-memory model keeps what its Lambdas see."""
    import base64
    import binascii
    import contextlib
    import marshal

    from keras.src.utils import python_utils

    by_code = {}
    for fn in originals:
        with contextlib.suppress(Exception):
            by_code[marshal.dumps(fn.__code__)] = fn.__globals__

    @contextlib.contextmanager
    def patched():
        original = python_utils.func_load

        def func_load(code, defaults=None, closure=None, globs=None):
            raw = code[0] if isinstance(code, (tuple, list)) else code
            own = None
            with contextlib.suppress(binascii.Error, UnicodeEncodeError, AttributeError):
                own = by_code.get(base64.b64decode(raw.encode("ascii")))
            if own is not None:
                globs = own
            else:
                globs = dict(globs if globs is not None else vars(python_utils))
                for key, value in names.items():
                    globs.setdefault(key, value)
            if isinstance(defaults, list):  # Keras 2 files store them as a JSON list
                defaults = tuple(defaults)
            return original(code, defaults=defaults, closure=closure, globs=globs)

        python_utils.func_load = func_load
        try:
            yield
        finally:
            python_utils.func_load = original

    return patched()


def lambda_functions(model) -> list:
    """The Python functions of every Lambda layer in ``model`` (nested too)."""
    import keras

    return [
        layer.function
        for layer in flatten_layers(model, include_self=True)
        if isinstance(layer, keras.layers.Lambda) and callable(getattr(layer, "function", None))
    ]


def set_keras_mask(tensor, mask) -> None:
    """Attach a Keras mask to a tensor (what ReversibleEmbedding's lookup does)."""
    from keras.src.backend import set_keras_mask as _set

    _set(tensor, mask)


def sublayer_refs(root) -> list:
    """Every place a layer inside ``root`` (or ``root`` itself) holds a sublayer:
    ``(owner, attribute, key, layer)`` with ``key`` None for a plain attribute, an index for
    a list or tuple, a key for a dict. Keras' own bookkeeping (``_layers``...) is skipped."""
    import keras

    out = []
    for owner in flatten_layers(root, include_self=True):
        for name, value in list(vars(owner).items()):
            if name in (
                "_layers",
                "_tracker",
                "_inbound_nodes",
                "_outbound_nodes",
                "_operations",  # a Functional graph's own list: replace_in_graphs keeps it
                "_operations_by_depth",
            ) or (
                name.startswith("_self_")  # TensorFlow's own dependency tracking
                or (name.startswith("_") and name.endswith("_cache"))
            ):
                continue
            if isinstance(value, keras.layers.Layer):
                out.append((owner, name, None, value))
            elif isinstance(value, (list, tuple)):
                out += [
                    (owner, name, i, v)
                    for i, v in enumerate(value)
                    if isinstance(v, keras.layers.Layer)
                ]
            elif isinstance(value, dict):
                out += [
                    (owner, name, k, v)
                    for k, v in value.items()
                    if isinstance(v, keras.layers.Layer)
                ]
    return out


def replace_sublayer(owner, attribute: str, key, old, new) -> None:
    """Put ``new`` where ``owner`` holds ``old`` (attribute, list item or dict value), at
    ``old``'s place in Keras' layer list (weights are saved in that order)."""
    tracker = owner._tracker
    if tracker.is_in_store("layers", old):
        tracker.replace_tracked_value("layers", old, new)
    if key is None:
        setattr(owner, attribute, new)
        return
    holder = getattr(owner, attribute)
    if isinstance(holder, tuple):
        items = list(holder)
        items[key] = new
        rebuilt = type(holder)(*items) if hasattr(holder, "_fields") else type(holder)(items)
        setattr(owner, attribute, rebuilt)
    else:
        holder[key] = new


def set_registered_name(cls: type, name: str) -> None:
    """Make Keras serialize instances of ``cls`` under the registered name ``name``."""
    from keras.src.saving import object_registration

    object_registration.GLOBAL_CUSTOM_NAMES[cls] = name


def serialize_as(obj, cls: type) -> dict:
    """``obj`` serialized as Keras would serialize an instance of ``cls`` (its own class)."""
    from keras.src.saving import object_registration, serialization_lib

    config = {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "config": serialization_lib.serialize_dict(cls.get_config(obj)),
        "registered_name": object_registration.get_registered_name(cls),
    }
    build = cls.get_build_config(obj) if hasattr(cls, "get_build_config") else None
    if build is not None:
        config["build_config"] = serialization_lib.serialize_dict(build)
    return config


def build_input_shapes(model) -> dict:
    """The input shapes a layer or subclassed model was built or first called with, by the
    name of its call argument (``{"input_shape": (None, 2)}``); empty if never built."""
    return dict(getattr(model, "_build_shapes_dict", None) or {})


def consumers_of(layer) -> list:
    """The layers (operations) that take ``layer``'s output, from its outbound nodes."""
    out = []
    for node in getattr(layer, "_outbound_nodes", []):
        op = node.operation
        if op is not None and op not in out:
            out.append(op)
    return out


def keras_mask(tensor):
    """The Keras mask a (symbolic or eager) tensor carries, or None."""
    return getattr(tensor, "_keras_mask", None)


def shape_outputs(model, inputs: list, failed: list):
    """Run ``model``'s graph on KerasTensors through each operation's ``compute_output_spec``:
    Keras' shape rules only, nothing computed. ``inputs`` in ``model.inputs`` order; an
    operation that raises is appended to ``failed`` before the error propagates."""
    graph = functional_graph(model)

    def rules_of(op):
        spec = op.compute_output_spec

        def call(*args, **kwargs):
            try:
                return spec(*args, **kwargs)
            except Exception:
                failed.append(op)
                raise

        return call

    return graph._run_through_graph(inputs, operation_fn=rules_of)


def operation_names(model) -> set[str]:
    """Names of every operation in ``model``'s Functional graphs, nested ones included: layers
    and the operations Keras adds between them (mask ops such as ``NotEqual``, ``Cast``...),
    which ``flatten_layers`` does not list."""
    from keras.src.ops.function import Function

    names: set[str] = set()
    for layer in flatten_layers(model, include_self=True):
        inner = getattr(layer, "_functional", None)  # a Sequential's inner graph
        graph = layer if inner is None else inner
        if isinstance(graph, Function):
            names.update(op.name for op in graph.operations)
    return names


def reserve_auto_names(names) -> None:
    """Advance Keras' auto-naming counters (``keras.src.utils.naming.uniquify``) past ``names``,
    so that no operation or layer Keras names from now on (``not_equal_1`` for the second
    NotEqual of the session) takes one of them. Counters only ever grow, as Keras' own do."""
    import collections
    import re

    from keras.src.backend.common import global_state

    uids = global_state.get_global_attribute(
        "object_name_uids", default=collections.defaultdict(int), set_to_default=True
    )
    for name in names:
        # uniquify(base) gives ``base`` while the counter is 0, then ``base_<counter>``
        uids[name] = max(uids.get(name, 0), 1)
        found = re.fullmatch(r"(.+)_(\d+)", name)
        if found:
            base, number = found.group(1), int(found.group(2))
            uids[base] = max(uids.get(base, 0), number + 1)


def replace_in_graphs(root, old, new) -> int:
    """Make every Functional graph inside ``root`` (``root`` too) call ``new`` where it
    called ``old``: each node's operation and the graph's operation lists. A Functional
    subclass (KerasHub's Backbones and Tasks) runs its graph, not its attributes, so a swap
    that only replaced the attribute would change nothing. Returns the nodes changed."""
    functional = functional_class()
    changed = 0
    for model in flatten_layers(root, include_self=True):
        tracker = getattr(model, "_tracker", None)
        if model is not new and tracker is not None and tracker.is_in_store("layers", old):
            tracker.replace_tracked_value("layers", old, new)  # saved weights follow it
        if not isinstance(model, functional):
            continue
        for nodes in model._nodes_by_depth.values():
            for node in nodes:
                if node.operation is old:
                    node.operation = new
                    changed += 1
        model._operations = [new if op is old else op for op in model._operations]
        for depth, ops in model._operations_by_depth.items():
            model._operations_by_depth[depth] = [new if op is old else op for op in ops]
    if changed:
        new._inbound_nodes = list(old._inbound_nodes)
    return changed


def integer_inputs_as_given():
    """A context manager: while active, a Functional model takes integer tensors in the
    integer dtype they come in, where Keras casts each input to its Input's dtype
    (``Functional._convert_inputs_to_tensors``). An int64 index input traced from an int32
    signature then reaches its lookups as int32, with no int32 -> int64 -> int32 CAST pair
    (which LiteRT's GPU delegate refuses). Not thread-safe: for the length of one trace."""
    from contextlib import contextmanager

    @contextmanager
    def active():
        from keras import ops
        from keras.src.models.functional import Functional

        original = Functional._convert_inputs_to_tensors

        def convert(self, flat_inputs):
            converted = original(self, flat_inputs)
            return [
                x
                if x is not None
                and ops.is_tensor(x)
                and "int" in str(x.dtype)
                and "int" in str(getattr(t, "dtype", ""))
                else c
                for x, c, t in zip(flat_inputs, converted, self._inputs)
            ]

        Functional._convert_inputs_to_tensors = convert
        try:
            yield
        finally:
            Functional._convert_inputs_to_tensors = original

    return active()
