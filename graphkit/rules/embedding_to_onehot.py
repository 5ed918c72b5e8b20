"""Rule: ``Embedding`` -> ``OneHot`` + ``TimeDistributed(Dense(use_bias=False))``.

The Embedding table *is* the Dense kernel: a one-hot row times the kernel picks
one row exactly (every other term is an exact 0 in the sum), so the predictions
are bitwise equal for valid indices. A table holding inf or NaN would break this
(0 * inf is NaN), so such tables are refused.
"""

from __future__ import annotations

from graphkit.rules.base import Chain, Match, Refusal, note_lora_dropped, table_refusal

NAME = "embedding_to_onehot"


class EmbeddingToOneHot:
    name = NAME
    summary = (
        "Embedding -> OneHot + TimeDistributed(Dense(use_bias=False)), table copied bit for bit "
        "(held by a custom layer or subclassed model: swapped in place for OneHotEmbedding)"
    )
    targets = ("onehot-dense",)
    phase = "convert"
    source = "embedding"
    anchor_label = "Embedding"
    optional = False
    exact = True
    inspect = {
        "label": "Embedding",
        "role": "embedding",
        "yes": "convertible",
        "becomes": "-> OneHot + Dense",
        "no": "not convertible",
    }

    def anchors(self, layer) -> bool:
        import keras

        from graphkit.layers.onehot_embedding import embedding_class

        # graphkit's one-hot twins subclass Embedding but are the one-hot form already;
        # ReversibleEmbedding is reversible_embedding_to_onehot's (one finding, its reasons)
        return (
            isinstance(layer, keras.layers.Embedding)
            and embedding_class(type(layer)) is None
            and type(layer) is not keras.layers.ReversibleEmbedding
        )

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.input_dim), bool(layer.mask_zero)) if self.anchors(layer) else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        import keras

        if type(layer) is not keras.layers.Embedding:
            return Refusal(
                f"{type(layer).__name__} subclasses Embedding; its call may differ, so it is not rewritten"
            )
        return self._table_refusal(layer)

    def _table_refusal(self, layer) -> Refusal | None:
        return table_refusal(layer, "Embedding")

    def swap_check(self, layer) -> Refusal | None:
        """``swap``'s checks, without building anything (for ``inspect``)."""
        from graphkit.layers.onehot_embedding import onehot_class

        if onehot_class(type(layer)) is None:
            return Refusal(
                f"{type(layer).__name__} subclasses Embedding; its call may differ, so it is not rewritten"
            )
        return self._table_refusal(layer)

    def swap(self, layer, ctx):
        """A drop-in twin for an Embedding held by a custom layer or model (an attribute):
        ``OneHotEmbedding`` (or ``OneHotReversibleEmbedding``), same config and variable."""
        from graphkit.layers.onehot_embedding import onehot_class
        from graphkit.swaps import twin

        cls = onehot_class(type(layer))
        if cls is None:
            return Refusal(
                f"{type(layer).__name__} subclasses Embedding; its call may differ, so it is not rewritten"
            )
        refusal = self._table_refusal(layer)
        if refusal is not None:
            return refusal
        note_lora_dropped(layer, ctx)
        return twin(layer, cls)

    def rewrite(self, layer, graph, ctx) -> Match:
        import keras

        from graphkit.layers import OneHot, TimeDistributed

        note_lora_dropped(layer, ctx)
        sites = graph.call_sites(layer)
        ranks = [s.input_rank for s in sites]
        use_td = bool(ranks) and all(r is not None and r >= 2 for r in ranks)

        policy = layer.dtype_policy
        # A model output keeps its name (outputs are matched by name): the last new layer takes
        # it over from the Embedding it replaces.
        keep_name = graph.is_output(layer)
        onehot = OneHot(
            layer.input_dim,
            mask_zero=layer.mask_zero,
            name=ctx.unique_name(f"{layer.name}_onehot"),
            dtype=policy,
        )
        dense = keras.layers.Dense(
            layer.output_dim,
            use_bias=False,
            name=layer.name if keep_name and not use_td else ctx.unique_name(f"{layer.name}_dense"),
            dtype=policy,
            kernel_initializer="zeros",  # no random table to draw: the real one is assigned
            kernel_regularizer=layer.embeddings_regularizer,
            kernel_constraint=layer.embeddings_constraint,
            activity_regularizer=None if use_td else layer.activity_regularizer,
        )
        dense.build((None, layer.input_dim))
        # variable to variable: no host copy of a table that may be gigabytes
        dense.kernel.assign(keras.ops.cast(layer.embeddings, dense.kernel.dtype))
        dense.kernel_initializer = layer.embeddings_initializer  # what its config says
        projection = dense
        if use_td:
            projection = TimeDistributed(
                dense,
                name=layer.name if keep_name else ctx.unique_name(f"{layer.name}_timedist"),
                dtype=policy,
                activity_regularizer=layer.activity_regularizer,
            )
            projection.build((None, None, layer.input_dim))
        onehot.trainable = layer.trainable
        projection.trainable = layer.trainable
        return Match(
            replacements={id(layer): Chain([onehot, projection])},
            new_layer_names=[onehot.name, projection.name],
            replaced_names=[layer.name],
        )
