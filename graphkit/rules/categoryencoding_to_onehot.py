"""Rule: Keras' ``CategoryEncoding(output_mode="one_hot")`` -> graphkit's ``OneHot``.

A normalising rule: it runs before the target's rules, so the ``OneHot`` it leaves folds
with a following Dense into an Embedding (``--to embedding``) or stays as graphkit's
serializable one-hot (``--to onehot-dense``). Both layers give a one-hot row for
``0 <= i < num_tokens`` and a zero row for anything else, so the rewrite is exact. Keras
drops a last axis of size 1 before encoding ((batch, 1) -> (batch, num_tokens)): a
``Reshape`` does the same first. ``multi_hot`` and ``count`` sum several rows: they are
kept, with the reason (``count_to_embedding`` folds ``count`` + Dense with ``--to embedding``).
"""

from __future__ import annotations

from graphkit.rules.base import Chain, Match, Refusal

NAME = "categoryencoding_to_onehot"
# Why the other output modes stay (shared with lookup_to_onehot, which keeps them too).
NOT_ONEHOT = {
    "multi_hot": " and marks a repeated index once, which no sum of Embedding rows reproduces",
    "count": " (with --to embedding, count_to_embedding folds it with its Dense)",
    "tf_idf": " weighed by IDF",
}


def not_onehot(mode: str) -> Refusal:
    """Why an encoding in another output mode than one_hot is kept."""
    return Refusal(
        f"output_mode={mode!r} sums several rows" + NOT_ONEHOT.get(mode, "") + "; only 'one_hot' "
        "is rewritten",
        severity="kept",
    )


class CategoryEncodingToOneHot:
    name = NAME
    summary = "CategoryEncoding(output_mode='one_hot') -> graphkit's OneHot (then folds like it)"
    targets = ("*",)
    phase = "normalise"
    source = None
    anchor_label = "CategoryEncoding"
    optional = True
    exact = True
    inspect = {
        "label": "CategoryEncoding",
        "role": "categoryencoding",
        "yes": "normalised",
        "becomes": "-> OneHot",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        import keras

        return isinstance(layer, keras.layers.CategoryEncoding)

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.num_tokens), False) if self.anchors(layer) else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        import keras

        if type(layer) is not keras.layers.CategoryEncoding:
            return Refusal(f"{type(layer).__name__} subclasses CategoryEncoding", severity="kept")
        if layer.output_mode != "one_hot":
            return not_onehot(layer.output_mode)
        if layer.sparse:
            return Refusal("it gives a sparse tensor", severity="kept")
        shapes = {s.input_shape for s in graph.call_sites(layer)}
        if len(shapes) != 1 or None in shapes:
            return Refusal("its input shape is unknown or differs between calls", severity="kept")
        (shape,) = shapes
        if len(shape) > 1 and shape[-1] is None:
            return Refusal(
                "its last input axis is variable: Keras drops it when a batch has length 1 "
                "(eagerly; traced calls fail), which no fixed rewrite reproduces",
                severity="kept",
            )
        if len(shape) > 1 and shape[-1] == 1 and any(d is None for d in shape[1:-1]):
            return Refusal(
                "a (..., 1) input with a variable axis: the squeeze needs static axes",
                severity="kept",
            )
        return None

    def rewrite(self, layer, graph, ctx) -> Match:
        import keras

        from graphkit.layers import OneHot

        (shape,) = {s.input_shape for s in graph.call_sites(layer)}
        keep_name = graph.is_output(layer)  # outputs are matched by name
        # Keras encodes in the layer's variable dtype (float32 under mixed precision).
        onehot = OneHot(
            layer.num_tokens,
            name=layer.name if keep_name else ctx.unique_name(f"{layer.name}_onehot"),
            dtype=layer.dtype,
        )
        layers = [onehot]
        if len(shape) > 1 and shape[-1] == 1:  # Keras drops a last axis of size 1 first
            squeeze = keras.layers.Reshape(
                tuple(shape[1:-1]), name=ctx.unique_name(f"{layer.name}_squeeze")
            )
            layers.insert(0, squeeze)
        return Match(
            replacements={id(layer): Chain(layers)},
            new_layer_names=[x.name for x in layers],
            replaced_names=[layer.name],
            status="normalised",
        )
