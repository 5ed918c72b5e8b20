"""Subclassed models: a Functional view, so that verify, export and inspect see their inputs.

A ``keras.Model`` subclass has no ``inputs``: its ``call`` is Python. Once it has been built
or called, Keras knows the shape it was built with; graphkit wraps the model (the same
object, the same weights) in a Functional model on an ``Input`` of that shape. The dtype is
not recorded anywhere: indices (int32) when the model holds a layer that reads indices (an
Embedding...), floats otherwise.
"""

from __future__ import annotations

from graphkit import _keras_api
from graphkit.errors import GraphkitError


def needs_view(model) -> bool:
    import keras

    return isinstance(model, keras.Model) and not getattr(model, "inputs", None)


def functional_view(model, source: str | None = None):
    """``model`` itself if it has inputs, else a Functional model around it (raises if unbuilt)."""
    import keras

    if not needs_view(model):
        return model
    where = source or f"model {model.name!r}"
    shapes = _keras_api.build_input_shapes(model)
    if not shapes:
        raise GraphkitError(
            f"{where}: the subclassed model {type(model).__name__} was never built or called, so "
            "its inputs are unknown: call it once on a batch (model(x)) or model.build(shape) "
            "before saving it"
        )
    if len(shapes) != 1:
        raise GraphkitError(
            f"{where}: the subclassed model {type(model).__name__} takes several inputs "
            f"({', '.join(shapes)}); graphkit reads subclassed models with one input only"
        )
    ((arg, shape),) = shapes.items()
    if not isinstance(shape, (list, tuple)) or not all(
        d is None or isinstance(d, int) for d in shape
    ):
        raise GraphkitError(
            f"{where}: the subclassed model {type(model).__name__} takes a nested input "
            f"({arg}: {shape}); graphkit reads subclassed models with one tensor input only"
        )
    from graphkit.model_facts import smallest_vocab

    dtype = "int32" if smallest_vocab(model)[0] is not None else "float32"
    name = arg[: -len("_shape")] if arg.endswith("_shape") else arg
    # built by a first call, the shape holds that call's batch size: the batch axis is free
    batch_shape = (None, *tuple(shape)[1:]) if len(shape) else ()
    inputs = keras.Input(batch_shape=batch_shape, dtype=dtype, name=name)
    view = keras.Model(inputs, model(inputs), name=model.name)
    why = "it holds layers that read indices" if dtype == "int32" else "it reads no indices"
    object.__setattr__(
        view,
        "_graphkit_note",
        f"subclassed {type(model).__name__}: input {name!r} of shape {batch_shape} taken as "
        f"{dtype} ({why}; a subclassed model does not save its input dtype)",
    )
    return view


def view_note(model) -> str | None:
    """What ``functional_view`` assumed about a subclassed model's input, if it did."""
    return getattr(model, "_graphkit_note", None)
