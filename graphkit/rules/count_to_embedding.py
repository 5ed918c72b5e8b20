"""Rule: a ``count`` encoding followed by a Dense becomes ``Embedding`` + graphkit's ``TokenSum``.

``CategoryEncoding``/``IntegerLookup``/``StringLookup(output_mode="count")`` turn a row of
tokens ``(batch, tokens)`` into per-index counts ``(batch, depth)``; a Dense then computes
``counts @ kernel + bias``. ``counts @ kernel`` is the sum of the tokens' kernel rows, so
``Embedding(table=kernel)`` on the indices, summed over the token axis, then the bias once
and the activation (``TokenSum``) computes the same thing at O(tokens) instead of
O(depth). Only the float summation order differs (``k + k + k`` for ``3 * k``, rows added
token by token): outputs agree within a few ulps, not bit for bit. Lookups run in
``output_mode="int"`` first (see ``lookup_to_onehot``); a mask token (dropped from the
counts) is index 0 there and gets a zero table row. ``CategoryEncoding`` raises for an
index outside ``0 .. num_tokens - 1``; the Embedding wraps negative ones: equal on valid
indices only, like every Embedding rewrite.

It targets ``--to embedding`` and runs in the normalise phase, beside the rules that keep a
count encoding for every other target, so each layer gets one finding. ``multi_hot`` is never
rewritten: it marks a repeated token once, which no sum of rows reproduces.
"""

from __future__ import annotations

from graphkit.rules.base import Bypass, Chain, Match, Refusal
from graphkit.rules.lookup_to_onehot import (
    dense_consumers,
    depth_of,
    int_lookup,
    is_lookup,
    lookup_check,
    mask_shift,
)

NAME = "count_to_embedding"


def _is_category_encoding(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.CategoryEncoding)


class CountToEmbedding:
    name = NAME
    summary = (
        "CategoryEncoding/IntegerLookup/StringLookup(output_mode='count') -> Dense becomes "
        "Embedding + TokenSum (sum of rows, then bias and activation); equal within ulps"
    )
    targets = ("embedding",)
    phase = "normalise"
    source = None
    anchor_label = "count encoding"
    optional = True
    exact = False  # float summation order differs (see the module docstring)
    inspect = {
        "label": "count encoding",
        "role": "count",
        "member_role": "count-dense",
        "yes": "foldable",
        "becomes": "-> Embedding + TokenSum",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        return (_is_category_encoding(layer) or is_lookup(layer)) and layer.output_mode == "count"

    def index_range(self, layer) -> tuple[int, bool] | None:
        if self.anchors(layer) and _is_category_encoding(layer):
            return (int(layer.num_tokens), False)
        return None  # lookups read tokens: lookup_to_onehot declares their range

    def covers(self, layer, graph) -> list[str]:
        if self.check(layer, graph) is not None:
            return []
        return [c.name for c in dense_consumers(layer, graph)]

    def _shape(self, layer, graph) -> tuple | Refusal:
        import keras

        from graphkit import _keras_api

        if is_lookup(layer):
            return lookup_check(layer, graph)
        if type(layer) is not keras.layers.CategoryEncoding:
            return Refusal(f"{type(layer).__name__} subclasses CategoryEncoding", severity="kept")
        if layer.sparse:
            return Refusal("sparse=True gives a sparse tensor; not rewritten", severity="kept")
        if any(len(node.input_tensors) > 1 for node in _keras_api.inbound_nodes(layer)):
            return Refusal("it is called with count_weights; not rewritten", severity="kept")
        shapes = {s.input_shape for s in graph.call_sites(layer)}
        if len(shapes) != 1 or None in shapes:
            return Refusal("its input shape is unknown or differs between calls", severity="kept")
        return shapes.pop()

    def check(self, layer, graph) -> Refusal | None:
        import keras

        shape = self._shape(layer, graph)
        if isinstance(shape, Refusal):
            return shape
        if len(shape) != 2:
            # Keras counts a rank-1 input over the whole batch, and a rank-3 one over axis 1
            return Refusal(
                f"count over a rank-{len(shape)} input; only (batch, tokens) is folded",
                severity="kept",
            )
        consumers = dense_consumers(layer, graph)
        if isinstance(consumers, Refusal):
            return consumers
        for consumer in consumers:
            if type(consumer) is not keras.layers.Dense:
                return Refusal(f"{consumer.name!r} is not a plain Dense", severity="kept")
            weights = [consumer.kernel] + ([consumer.bias] if consumer.use_bias else [])
            if not all(bool(keras.ops.all(keras.ops.isfinite(w))) for w in weights):
                # 0 * inf is NaN in counts @ kernel, but absent tokens add nothing to a sum
                return Refusal(
                    f"the kernel or bias of {consumer.name!r} holds inf or NaN", severity="kept"
                )
        return None

    def rewrite(self, layer, graph, ctx) -> Match | Refusal:
        import keras
        import numpy as np

        from graphkit.layers import TokenSum

        (shape,) = {s.input_shape for s in graph.call_sites(layer)}
        consumers = dense_consumers(layer, graph)
        ctx.release(layer.name)
        if is_lookup(layer):
            shift = mask_shift(layer)
            depth = depth_of(layer, shape) + shift
            lookup = int_lookup(layer, ctx.unique_name(layer.name))
            if isinstance(lookup, Refusal):
                return lookup
            replacements = {id(layer): Chain([lookup])}
            names = [lookup.name]
        else:
            shift, depth = 0, int(layer.num_tokens)
            replacements = {id(layer): Bypass()}
            names = []
        for dense in consumers:
            kernel = keras.ops.convert_to_numpy(dense.kernel)
            if shift:  # the mask token: index 0 in int mode, absent from the counts
                kernel = np.concatenate([np.zeros_like(kernel[:1]), kernel])
            embedding = keras.layers.Embedding(
                depth,
                dense.units,
                name=ctx.unique_name(f"{layer.name}_embedding"),
                dtype=dense.dtype_policy,
                embeddings_initializer=dense.kernel_initializer,
                embeddings_regularizer=dense.kernel_regularizer,
                embeddings_constraint=dense.kernel_constraint,
            )
            embedding.build()
            embedding.embeddings.assign(kernel.astype(embedding.embeddings.dtype, copy=False))
            ctx.release(dense.name)
            total = TokenSum(
                use_bias=dense.use_bias,
                activation=dense.activation,
                bias_initializer=dense.bias_initializer,
                name=ctx.unique_name(dense.name),  # it gives the Dense's output
                dtype=dense.dtype_policy,
                activity_regularizer=dense.activity_regularizer,
            )
            total.build((None, None, dense.units))
            if dense.use_bias:
                total.bias.assign(keras.ops.convert_to_numpy(dense.bias))
            embedding.trainable = total.trainable = dense.trainable
            replacements[id(dense)] = Chain([embedding, total])
            names += [embedding.name, total.name]
            ctx.note(
                f"counts @ kernel of {dense.name!r} became the sum of the tokens' table rows: "
                "equal up to float summation order (a few ulps), not bit for bit"
            )
        return Match(
            replacements=replacements,
            new_layer_names=names,
            replaced_names=[layer.name] + [c.name for c in consumers],
            status="converted",  # the target's form, though it runs in the normalise phase
        )
