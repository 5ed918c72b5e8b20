"""Rule: ``TimeDistributed(Embedding)`` -> the Embedding on the whole tensor, same table.

An Embedding looks every index up on its own, so applying it to each time slice and
stacking the slices is the Embedding applied to the whole tensor: ``TimeDistributed(
Embedding)`` on (batch, words, chars) is ``Embedding`` on (batch, words, chars), a Gather
of the same rows either way (bit for bit). After this normalisation ``embedding_to_onehot``
converts the Embedding like any other (OneHot + Dense on the last axis), and
``onehot_to_embedding`` brings back a plain Embedding with the same table.

The mask is the one difference, and it is kept as it was: Keras' TimeDistributed (and
graphkit's, which subclasses it) passes on the mask of its *input* and drops the mask the
inner Embedding computes, so ``mask_zero=True`` inside a TimeDistributed masks nothing
downstream (a following ``TimeDistributed(LSTM)`` sees no mask). The unwrapped Embedding
therefore gets ``mask_zero=False``; a TimeDistributed whose input carries a mask (which it
would pass on, and an Embedding would not) is kept.

Keras' TimeDistributed and graphkit's are unwrapped (the repair rule runs first and turns
the former into the latter), nested ones too; the inner layer must be exactly
``keras.layers.Embedding``. Other wrappers holding an Embedding (a TimeDistributed around an
Embedding subclass or a model, a custom Wrapper) are kept with the reason; converting to
``onehot-dense`` then refuses the Embedding inside as wrapped.
"""

from __future__ import annotations

from graphkit import _keras_api
from graphkit.rules.base import Chain, Match, Refusal

NAME = "unwrap_time_distributed_embedding"


def _is_time_distributed(layer) -> bool:
    import keras

    from graphkit.layers import TimeDistributed

    return type(layer) in (keras.layers.TimeDistributed, TimeDistributed)


def _chain(layer) -> tuple[list, object]:
    """The TimeDistributed wrappers from ``layer`` inwards, and the layer they wrap."""
    wrappers = []
    while _is_time_distributed(layer):
        wrappers.append(layer)
        layer = layer.layer
    return wrappers, layer


def _keras_mask(tensor):
    from graphkit import _keras_api

    return _keras_api.keras_mask(tensor)


class UnwrapTimeDistributedEmbedding:
    name = NAME
    summary = (
        "TimeDistributed(Embedding) -> the Embedding on the whole tensor, table bit for bit "
        "(mask_zero off: TimeDistributed drops the Embedding's mask)"
    )
    targets = ("*",)
    phase = "normalise"
    source = None
    anchor_label = "wrapped Embedding"
    # A refusal keeps the wrapper; converting to onehot-dense then refuses the Embedding in it.
    optional = True
    exact = True
    inspect = {
        "label": "wrapped Embedding",
        "role": "wrapped-embedding",
        "yes": "normalised",
        "becomes": "-> Embedding",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        import keras

        return isinstance(layer, keras.layers.Wrapper) and any(
            isinstance(inner, keras.layers.Embedding) for inner in _keras_api.flatten_layers(layer)
        )

    def index_range(self, layer) -> tuple[int, bool] | None:
        import keras

        wrappers, inner = _chain(layer)
        if wrappers and isinstance(inner, keras.layers.Embedding):
            return (int(inner.input_dim), bool(inner.mask_zero))
        return None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        import keras

        from graphkit.engine import is_graph_model

        wrappers, inner = _chain(layer)
        if not wrappers:
            return Refusal(
                f"{type(layer).__name__} is not a TimeDistributed: graphkit unwraps "
                "TimeDistributed(Embedding) only",
                severity="kept",
            )
        if type(inner) is not keras.layers.Embedding:
            if is_graph_model(inner):
                why = (
                    f"a model ({inner.name!r}); graphkit does not rewrite inside it, "
                    "only a TimeDistributed around an Embedding alone"
                )
            elif isinstance(inner, keras.layers.Embedding):
                why = (
                    f"{type(inner).__name__} {inner.name!r}, which subclasses Embedding: "
                    "its call may differ, so it is not unwrapped"
                )
            else:
                why = (
                    f"{type(inner).__name__} {inner.name!r}, which holds the Embedding: "
                    "only a TimeDistributed around an Embedding alone is unwrapped"
                )
            return Refusal(f"the TimeDistributed wraps {why}", severity="kept")
        if not inner.built:
            return Refusal("the Embedding is not built (it holds no table yet)", severity="kept")
        if any(w.activity_regularizer is not None for w in wrappers):
            return Refusal(
                "the TimeDistributed has an activity regularizer of its own", severity="kept"
            )
        for other in graph.layers:
            if other is not layer and (
                other is inner or any(x is inner for x in _keras_api.flatten_layers(other))
            ):
                return Refusal(
                    f"its Embedding {inner.name!r} is also used by {other.name!r}: an unwrapped "
                    "copy would untie them",
                    severity="kept",
                )
        for node in _keras_api.inbound_nodes(layer):
            tensors = list(node.input_tensors)
            if tensors and _keras_mask(tensors[0]) is not None:
                return Refusal(
                    "its input carries a mask, which the TimeDistributed passes on and an "
                    "Embedding would drop",
                    severity="kept",
                )
        return None

    def rewrite(self, layer, graph, ctx) -> Match:
        import keras

        wrappers, inner = _chain(layer)
        # A model output keeps its name (outputs are matched by name); otherwise the
        # Embedding's own name, which says more than the wrapper's.
        wanted = layer.name if graph.is_output(layer) else inner.name
        for old in [*wrappers, inner]:
            ctx.release(old.name)
        config = inner.get_config()
        config.update(name=ctx.unique_name(wanted), mask_zero=False)
        embedding = keras.layers.Embedding.from_config(config)
        embedding.build()
        embedding.embeddings.assign(inner.embeddings)  # variable to variable: bit for bit
        embedding.trainable = inner.trainable and all(w.trainable for w in wrappers)
        notes = [
            f"{inner.name!r} was applied to every time slice; an Embedding treats each index "
            "on its own, so it is applied to the whole tensor"
        ]
        if inner.mask_zero:
            notes.append(
                f"mask_zero=True of {inner.name!r} masked nothing (TimeDistributed drops the "
                "Embedding's mask): the unwrapped Embedding has mask_zero=False, so the layers "
                "after it still see no mask"
            )
        return Match(
            replacements={id(layer): Chain([embedding])},
            new_layer_names=[embedding.name],
            notes=notes,
            replaced_names=[layer.name],
            status="normalised",
        )
