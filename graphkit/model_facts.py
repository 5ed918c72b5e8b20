"""Facts read off a built Keras model that several readers need: the unique output names
(inspect, the Keras backend, export), the smallest vocabulary of its index-reading layers
(the Keras backend, subclassed views, examples), and the layers' paths as graphkit prints
them (inspect, convert, verify's coverage).

Its own module, below ``graphkit.inspect``, ``graphkit.subclassed`` and
``graphkit.backends.keras_backend``, so that none of them imports another for these.
"""

from __future__ import annotations

from graphkit import _keras_api


def output_names(model) -> list[str]:
    """Unique names of a model's outputs, in ``model.outputs`` order.

    The keys for a model that returns a flat dict (what callers index by); otherwise the
    producing layers' names, as Keras reports them. A layer that gives two outputs (a shared
    layer, ``Model(x, [d, d])``) names them ``d`` and ``d_1``: verify pairs outputs by these
    names and export gives them to the ONNX outputs, so they must be unique.
    """
    names = _raw_output_names(model)
    unique: list[str] = []
    for name in names:
        new, k = name, 1
        while new in unique or (new != name and new in names):
            new, k = f"{name}_{k}", k + 1
        unique.append(new)
    return unique


def _raw_output_names(model) -> list[str]:
    outputs = getattr(model, "outputs", None) or []
    struct = _keras_api.outputs_struct(model)
    if isinstance(struct, dict) and len(struct) == len(outputs):
        if all(
            isinstance(k, str) and not isinstance(v, (dict, list, tuple)) for k, v in struct.items()
        ):
            return sorted(struct)  # keras.tree.flatten's order
    try:
        names = list(model.output_names)
        if len(names) == len(outputs):
            return names
    except Exception:
        pass
    try:
        if len(outputs) == 1 and model.layers:  # Sequential: the last layer names the output
            return [model.layers[-1].name]
    except Exception:
        pass
    return [f"output_{i}" for i in range(len(outputs))]


def smallest_vocab(model) -> tuple[int | None, bool]:
    """Smallest vocabulary of the model's index-reading layers, and whether any masks zeros."""
    from graphkit.rules import index_range

    ranges = [r for r in map(index_range, _keras_api.flatten_layers(model)) if r is not None]
    if not ranges:
        return None, False
    return min(v for v, _ in ranges), any(m for _, m in ranges)


def named_children(model) -> list[tuple[str, object]]:
    """(name, layer) of ``model``'s direct sublayers: by layer name in a graph model, by
    attribute path (``token_emb``, ``fields[0]``) in a custom layer or subclassed model,
    as conversion reports them."""
    import keras

    from graphkit.engine import is_graph_model
    from graphkit.swaps import attribute_path

    if is_graph_model(model):
        return [(layer.name, layer) for layer in model.layers]
    if isinstance(model, keras.layers.Wrapper):  # named as the engine names them
        return [(layer.name, layer) for layer in _keras_api.flatten_layers(model, recursive=False)]
    named, seen = [], set()
    for owner, attribute, key, layer in _keras_api.sublayer_refs(model):
        if owner is model and id(layer) not in seen:
            seen.add(id(layer))
            named.append((attribute_path(attribute, key), layer))
    for layer in _keras_api.flatten_layers(model, recursive=False):  # held some other way
        if id(layer) not in seen:
            seen.add(id(layer))
            named.append((layer.name, layer))
    return named


def layer_paths(model, *, by_name: bool = False) -> dict[int, str]:
    """``id(layer)`` -> the layer's path as ``graphkit inspect`` and ``convert`` print it
    (``token_and_position/token_emb``, not the auto-named ``.../embedding``), for every
    layer inside ``model``; a layer met twice keeps its first path. ``by_name``: the same
    walk with each layer's own name in place of attribute paths."""
    paths: dict[int, str] = {}

    def walk(layer, prefix: str) -> None:
        for name, child in named_children(layer):
            if id(child) in paths:
                continue
            name = getattr(child, "name", name) if by_name else name
            paths[id(child)] = f"{prefix}/{name}" if prefix else name
            walk(child, paths[id(child)])

    walk(model, "")
    return paths
